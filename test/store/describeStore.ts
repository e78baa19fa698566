/**
 * The store conformance suite: every store (memoryStore, sqliteStore, postgresStore) runs
 * it unchanged, like a TCK. It checks the rules of the contract in src/store/Store.ts
 * through the `Store` interface only, never through a store's internals.
 *
 * Usage, in a store's test file:
 *   describeStore('sqliteStore', () => sqliteStore({ path }), { reopen: (s) => reopenSomehow(s) });
 *
 * `reopen` (for durable stores) closes the given store and opens a new one on the same
 * data; with it, the suite also checks that everything survives a restart.
 */

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentExistsError, AgentNotFoundError, StoreError, StoreLockedError } from '../../src/errors.js';
import type { ErrorCode } from '../../src/errors.js';
import type {
  AgentRecord,
  AgentStats,
  AppendRequest,
  CommitTurn,
  ListOptions,
  Retention,
  RolloutEntry,
  Store,
  StoreOp,
  StoreOpResult,
  StoreOwner,
  TimerRecord,
} from '../../src/store/Store.js';

export interface DescribeStoreOptions {
  /** Closes `store` and opens a new store on the same data (durable stores only). */
  reopen?: (store: Store) => Promise<Store>;
}

function agent(id: string, fields: Partial<AgentRecord> = {}): AgentRecord {
  return { id, type: 'counter', parent: null, pinned: false, input: { start: 0 }, createdAt: 1_000, ...fields };
}

function msg(agentId: string, messageId: string, n = 0, at = 2_000): AppendRequest {
  return { agentId, messageId, message: { type: 'inc', n }, at };
}

function turn(agentId: string, seq: number, fields: Partial<CommitTurn> = {}): CommitTurn {
  return { agentId, seq, outcome: 'done', at: 3_000, durationMs: 5, ...fields };
}

function owner(pid: number, fields: Partial<StoreOwner> = {}): StoreOwner {
  return { pid, host: 'host-a', since: Date.UTC(2026, 0, 2, 3, 4, 5), ...fields };
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Awaits a promise that must reject, and checks the error's class and code. */
async function expectError(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  code: ErrorCode,
  fields: Record<string, unknown> = {},
): Promise<void> {
  const error = await promise.then(
    (value) => {
      throw new Error(`Expected a rejection with ${type.name}, but it resolved with ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(type);
  expect(error).toMatchObject({ code, ...fields });
}

/** Everything the store says about these agents, to check that a refused call changed nothing. */
async function observe(store: Store, ids: readonly string[]) {
  const perAgent = [];
  for (const id of ids) {
    perAgent.push({
      id,
      record: await store.getAgent(id),
      pending: await store.pending(id),
      mailboxSize: await store.mailboxSize(id),
      snapshot: await store.loadSnapshot(id),
      rollout: await store.rollout(id),
      stats: (await store.agentStats([id])).get(id) ?? null,
    });
  }
  // Copied, so that a store that wrongly returns its own objects cannot make before and after alike.
  return structuredClone({
    perAgent,
    list: await store.listAgents(),
    withPending: (await store.agentsWithPending()).sort(),
    inFlight: (await store.turnsInFlight()).sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : a.seq - b.seq)),
  });
}

/** Checks that one op of a batch failed with the error its single method rejects with. */
function expectOpError(
  result: StoreOpResult | undefined,
  type: abstract new (...args: never[]) => Error,
  code: ErrorCode,
  fields: Record<string, unknown> = {},
): void {
  expect(result?.ok, `expected a failed op with ${type.name}, got ${JSON.stringify(result)}`).toBe(false);
  const error = (result as { ok: false; error: Error }).error;
  expect(error).toBeInstanceOf(type);
  expect(error).toMatchObject({ code, ...fields });
}

/** A value JSON cannot hold and structuredClone cannot copy: every store refuses it. */
const NOT_JSON = (() => 'not data') as unknown;

const seqs = (messages: readonly { seq: number }[]) => messages.map((m) => m.seq);

/** The counters of a new agent (rule 11), with `fields` changed. */
function stats(fields: Partial<AgentStats> = {}): AgentStats {
  return { turns: 0, failed: 0, crashed: 0, interrupted: 0, mailbox: 0, timers: 0, lastActiveAt: null, ...fields };
}
const kinds = (entries: readonly RolloutEntry[]) => entries.map((e) => e.kind);

function timer(agentId: string, key: string, at: number, fields: Partial<TimerRecord> = {}): TimerRecord {
  return { agentId, key, at, message: { type: 'remind', key }, ...fields };
}
const timerKeys = (timers: readonly TimerRecord[]) => timers.map((t) => `${t.agentId}/${t.key}@${t.at}`);

export function describeStore(
  name: string,
  makeStore: () => Promise<Store> | Store,
  options: DescribeStoreOptions = {},
): void {
  describe(`${name} keeps the store contract`, () => {
    let store: Store;
    let open: boolean;
    const reopen = options.reopen;

    beforeEach(async () => {
      store = await makeStore();
      open = true;
    });

    afterEach(async () => {
      if (open) await store.close();
    });

    describe('registry', () => {
      it('creates an agent and reads its record back', async () => {
        const record = agent('alice', { type: 'chat', parent: 'root', pinned: true, input: { name: 'Alice', tags: ['a'] } });
        await store.createAgent(record);
        expect(await store.getAgent('alice')).toEqual(record);
        expect(await store.getAgent('bob')).toBeNull();
      });

      it('getAgents returns the records of the ids that exist', async () => {
        await store.createAgent(agent('a'));
        await store.createAgent(agent('b', { type: 'other' }));
        await store.createAgent(agent('c'));
        const found = await store.getAgents(['b', 'missing', 'a']);
        expect(found.sort(byId)).toEqual([agent('a'), agent('b', { type: 'other' })]);
        expect(await store.getAgents([])).toEqual([]);
      });

      it('refuses a taken id with AgentExistsError and keeps the first record', async () => {
        await store.createAgent(agent('alice', { type: 'chat' }));
        await expectError(store.createAgent(agent('alice', { type: 'other' })), AgentExistsError, 'AGENT_EXISTS', {
          agentId: 'alice',
        });
        expect(await store.getAgent('alice')).toEqual(agent('alice', { type: 'chat' }));
      });

      it('lists agents ordered by id', async () => {
        for (const id of ['carol', 'alice', 'dave', 'bob']) await store.createAgent(agent(id));
        const page = await store.listAgents();
        expect(page.agents.map((a) => a.id)).toEqual(['alice', 'bob', 'carol', 'dave']);
        expect(page.agents[0]).toEqual(agent('alice'));
        expect(page.cursor).toBeNull();
      });

      it('lists agents created or destroyed since the previous listing', async () => {
        for (const id of ['b', 'd']) await store.createAgent(agent(id));
        expect((await store.listAgents()).agents.map((a) => a.id)).toEqual(['b', 'd']);
        await store.createAgent(agent('c'));
        await store.createAgent(agent('a'));
        expect((await store.listAgents()).agents.map((a) => a.id)).toEqual(['a', 'b', 'c', 'd']);
        await store.destroyAgent('b');
        expect((await store.listAgents()).agents.map((a) => a.id)).toEqual(['a', 'c', 'd']);
      });

      it('lists an empty registry as no agents and a null cursor', async () => {
        expect(await store.listAgents()).toEqual({ agents: [], cursor: null });
      });

      it('filters the listing by type and by parent', async () => {
        await store.createAgent(agent('a1', { type: 'a', parent: 'p1' }));
        await store.createAgent(agent('a2', { type: 'a', parent: 'p2' }));
        await store.createAgent(agent('b1', { type: 'b', parent: 'p1' }));
        await store.createAgent(agent('b2', { type: 'b', parent: null }));
        const ids = async (o: { type?: string; parent?: string }) => (await store.listAgents(o)).agents.map((a) => a.id);
        expect(await ids({ type: 'a' })).toEqual(['a1', 'a2']);
        expect(await ids({ parent: 'p1' })).toEqual(['a1', 'b1']);
        expect(await ids({ type: 'b', parent: 'p1' })).toEqual(['b1']);
        expect(await ids({ type: 'none' })).toEqual([]);
      });

      it('pages through 250 agents with limit 100, returning every agent exactly once', async () => {
        // Created out of order, so that the order comes from the store.
        const all = Array.from({ length: 250 }, (_, i) => `agent-${String((i * 97) % 250).padStart(3, '0')}`);
        for (const id of all) await store.createAgent(agent(id));
        const pages: string[][] = [];
        let cursor: string | null = null;
        do {
          const page = await store.listAgents({ limit: 100, cursor });
          pages.push(page.agents.map((a) => a.id));
          cursor = page.cursor;
          expect(typeof cursor === 'string' || cursor === null).toBe(true);
        } while (cursor !== null && pages.length < 10);
        expect(pages.map((p) => p.length)).toEqual([100, 100, 50]);
        expect(pages.flat()).toEqual([...all].sort());
      });

      it('pages a filtered listing without skipping or repeating an agent', async () => {
        for (let i = 0; i < 30; i++) {
          await store.createAgent(agent(`x${String(i).padStart(2, '0')}`, { type: i % 3 === 0 ? 'even' : 'odd' }));
        }
        const seen: string[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages < 20; pages++) {
          const page = await store.listAgents({ type: 'even', limit: 4, cursor });
          expect(page.agents.length).toBeLessThanOrEqual(4);
          seen.push(...page.agents.map((a) => a.id));
          cursor = page.cursor;
          if (cursor === null) break;
        }
        expect(cursor).toBeNull();
        expect(seen).toEqual(['x00', 'x03', 'x06', 'x09', 'x12', 'x15', 'x18', 'x21', 'x24', 'x27']);
      });

      it('returns at most 100 agents per page when no limit is given', async () => {
        for (let i = 0; i < 130; i++) await store.createAgent(agent(`a${String(i).padStart(3, '0')}`));
        const first = await store.listAgents();
        expect(first.agents).toHaveLength(100);
        expect(first.cursor).not.toBeNull();
        const second = await store.listAgents({ cursor: first.cursor });
        expect(second.agents.map((a) => a.id)[0]).toBe('a100');
        expect(second.agents).toHaveLength(30);
        expect(second.cursor).toBeNull();
      });

      it('filters by pinned and by mail before paging: every page is full while more agents match', async () => {
        const ids = Array.from({ length: 30 }, (_, i) => `x${String(i).padStart(2, '0')}`);
        for (const [i, id] of ids.entries()) {
          await store.createAgent(agent(id, { pinned: i % 5 === 0, type: i % 2 === 0 ? 'even' : 'odd' }));
          if (i % 3 === 0) await store.append([msg(id, 'm1')]);
        }
        /** Every page of the listing, limit 4: all full but the last. */
        const listed = async (filters: ListOptions) => {
          const pages: string[][] = [];
          let cursor: string | null = null;
          do {
            const page = await store.listAgents({ ...filters, limit: 4, cursor });
            pages.push(page.agents.map((a) => a.id));
            cursor = page.cursor;
          } while (cursor !== null && pages.length < 20);
          expect(pages.slice(0, -1).every((p) => p.length === 4), JSON.stringify(pages)).toBe(true);
          return pages.flat();
        };
        const where = (keep: (i: number) => boolean) => ids.filter((_, i) => keep(i));
        expect(await listed({ hasMail: true })).toEqual(where((i) => i % 3 === 0));
        expect(await listed({ hasMail: false })).toEqual(where((i) => i % 3 !== 0));
        expect(await listed({ pinned: true })).toEqual(where((i) => i % 5 === 0));
        expect(await listed({ pinned: false, hasMail: true, type: 'even' })).toEqual(where((i) => i % 5 !== 0 && i % 3 === 0 && i % 2 === 0));
        expect(await listed({ pinned: true, hasMail: false })).toEqual(where((i) => i % 5 === 0 && i % 3 !== 0));
      });

      it('hasMail follows the mailbox: an agent leaves that listing when its last message is consumed', async () => {
        await store.createAgent(agent('a', { parent: 'p' }));
        await store.createAgent(agent('b', { parent: 'p' }));
        await store.append([msg('a', 'm1'), msg('a', 'm2')]);
        const withMail = async () => (await store.listAgents({ hasMail: true, parent: 'p' })).agents.map((r) => r.id);
        expect(await withMail()).toEqual(['a']);
        await store.commitTurn(turn('a', 1, { outbox: [msg('b', 'x')] }));
        expect(await withMail()).toEqual(['a', 'b']);
        await store.commitTurn(turn('a', 2));
        expect(await withMail()).toEqual(['b']);
        expect((await store.listAgents({ hasMail: false })).agents.map((r) => r.id)).toEqual(['a']);
      });

      it('refuses a pinned or hasMail filter that is not a boolean with a TypeError', async () => {
        await store.createAgent(agent('a'));
        await expect(store.listAgents({ pinned: 'yes' as never })).rejects.toBeInstanceOf(TypeError);
        await expect(store.listAgents({ hasMail: 1 as never })).rejects.toBeInstanceOf(TypeError);
      });

      it('refuses a limit that is not a positive integer with a TypeError', async () => {
        await store.createAgent(agent('a'));
        await expect(store.listAgents({ limit: 0 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.listAgents({ limit: 1.5 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.pending('a', 0)).rejects.toBeInstanceOf(TypeError);
        await expect(store.rollout('a', { limit: -1 })).rejects.toBeInstanceOf(TypeError);
      });

      it('a limit beyond 2^53 (even 2^63 and more) means all, for listAgents, pending and rollout', async () => {
        await store.createAgent(agent('a'));
        await store.createAgent(agent('b'));
        await store.append([msg('a', 'm1'), msg('a', 'm2')]);
        for (const limit of [Number.MAX_SAFE_INTEGER, 2 ** 63, 2 ** 64, 1e300]) {
          expect(await store.listAgents({ limit }), String(limit)).toEqual({ agents: [agent('a'), agent('b')], cursor: null });
          expect(seqs(await store.pending('a', limit)), String(limit)).toEqual([1, 2]);
          expect(await store.rollout('a', { limit }), String(limit)).toHaveLength(2);
        }
      });

      it('destroyAgent resolves true when the agent existed and false when it did not', async () => {
        await store.createAgent(agent('alice'));
        expect(await store.destroyAgent('alice')).toBe(true);
        expect(await store.getAgent('alice')).toBeNull();
        expect(await store.destroyAgent('alice')).toBe(false);
        expect(await store.destroyAgent('never')).toBe(false);
        expect((await store.listAgents()).agents).toEqual([]);
      });

      it('destroyAgent removes the mailbox, snapshot, rollout and turns in flight, and no other agent', async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('bob', 'm1')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 } }));
        await store.beginTurn('alice', 2, 3_100);
        await store.beginTurn('bob', 1, 3_100);
        const bobBefore = await observe(store, ['bob']);

        await store.destroyAgent('alice');

        expect(await store.pending('alice')).toEqual([]);
        expect(await store.mailboxSize('alice')).toBe(0);
        expect(await store.loadSnapshot('alice')).toBeNull();
        expect(await store.rollout('alice')).toEqual([]);
        expect(await store.agentsWithPending()).toEqual(['bob']);
        expect(await store.turnsInFlight()).toEqual([{ agentId: 'bob', seq: 1 }]);
        expect((await observe(store, ['bob'])).perAgent).toEqual(bobBefore.perAgent);
      });

      it('an id can be spawned again after destroy, with seq restarting at 1 and old message ids forgotten', async () => {
        await store.createAgent(agent('alice', { type: 'old' }));
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1));
        await store.destroyAgent('alice');

        await store.createAgent(agent('alice', { type: 'new' }));
        expect(await store.getAgent('alice')).toEqual(agent('alice', { type: 'new' }));
        expect(await store.append([msg('alice', 'm2'), msg('alice', 'm3')])).toEqual([
          { agentId: 'alice', messageId: 'm2', seq: 1, duplicate: false },
          { agentId: 'alice', messageId: 'm3', seq: 2, duplicate: false },
        ]);
        expect(seqs(await store.pending('alice'))).toEqual([1, 2]);
        expect(kinds(await store.rollout('alice'))).toEqual(['accepted', 'accepted']);
      });
    });

    describe('destroying a long history', () => {
      it('destroyAgent of an agent with a long history: gone at once for every read and write, its id free at once', async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
        await store.append(Array.from({ length: 700 }, (_, i) => msg('alice', `m${i + 1}`)));
        const ops: StoreOp[] = [];
        for (let seq = 1; seq <= 300; seq++) {
          ops.push({ op: 'commitTurn', commit: turn('alice', seq, { snapshot: { seq }, outputs: ['o'] }) });
        }
        expect((await store.batch(ops)).every((r) => r.ok)).toBe(true);
        await store.beginTurn('alice', 301, 3_100);
        await store.append([msg('bob', 'b1')]);
        const bobBefore = await observe(store, ['bob']);

        expect(await store.destroyAgent('alice')).toBe(true);

        expect(await store.getAgent('alice')).toBeNull();
        expect(await store.getAgents(['alice', 'bob'])).toEqual([agent('bob')]);
        expect((await store.listAgents()).agents.map((a) => a.id)).toEqual(['bob']);
        expect((await store.listAgents({ hasMail: true })).agents.map((a) => a.id)).toEqual(['bob']);
        expect([...(await store.agentStats(['alice', 'bob'])).keys()]).toEqual(['bob']);
        expect(await store.pending('alice')).toEqual([]);
        expect(await store.mailboxSize('alice')).toBe(0);
        expect(await store.rollout('alice')).toEqual([]);
        expect(await store.rollout('alice', { limit: 5 })).toEqual([]);
        expect(await store.loadSnapshot('alice')).toBeNull();
        expect(await store.agentsWithPending()).toEqual(['bob']);
        expect(await store.turnsInFlight()).toEqual([]);
        // Writes find no agent, even with the id of a message it had.
        for (const write of [
          () => store.append([msg('alice', 'm1')]),
          () => store.append([msg('alice', 'new')]),
          () => store.beginTurn('alice', 302, 0),
          () => store.commitTurn(turn('alice', 301)),
          () => store.note('alice', { kind: 'note', note: 'loaded', at: 0 }),
        ]) {
          await expectError(write(), AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'alice' });
        }
        expect(await store.destroyAgent('alice')).toBe(false);
        expect((await observe(store, ['bob'])).perAgent).toEqual(bobBefore.perAgent);

        // Spawned again at once: a new agent with nothing of the old one.
        await store.createAgent(agent('alice', { type: 'new' }));
        expect(await store.getAgent('alice')).toEqual(agent('alice', { type: 'new' }));
        expect(await store.append([msg('alice', 'm1')])).toEqual([{ agentId: 'alice', messageId: 'm1', seq: 1, duplicate: false }]);
        expect(kinds(await store.rollout('alice'))).toEqual(['accepted']);
        expect(seqs(await store.pending('alice'))).toEqual([1]);
        expect(await store.loadSnapshot('alice')).toBeNull();
        expect((await store.agentStats(['alice'])).get('alice')).toEqual(stats({ mailbox: 1, lastActiveAt: 2_000 }));
        expect(await store.turnsInFlight()).toEqual([]);
        expect((await store.agentsWithPending()).sort()).toEqual(['alice', 'bob']);
      });
    });

    describe('mailbox', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
      });

      it('assigns seq 1, 2, 3 per agent', async () => {
        const a1 = await store.append([msg('alice', 'a1')]);
        const b1 = await store.append([msg('bob', 'b1')]);
        const a23 = await store.append([msg('alice', 'a2'), msg('alice', 'a3')]);
        expect(a1).toEqual([{ agentId: 'alice', messageId: 'a1', seq: 1, duplicate: false }]);
        expect(b1).toEqual([{ agentId: 'bob', messageId: 'b1', seq: 1, duplicate: false }]);
        expect(a23.map((r) => r.seq)).toEqual([2, 3]);
      });

      it('stores a batch across several agents in order, with results in request order', async () => {
        const results = await store.append([
          msg('alice', 'x', 1, 10),
          msg('bob', 'y', 2, 11),
          msg('alice', 'z', 3, 12),
          msg('bob', 'w', 4, 13),
        ]);
        expect(results.map((r) => [r.agentId, r.messageId, r.seq, r.duplicate])).toEqual([
          ['alice', 'x', 1, false],
          ['bob', 'y', 1, false],
          ['alice', 'z', 2, false],
          ['bob', 'w', 2, false],
        ]);
        expect(await store.pending('alice')).toEqual([
          { agentId: 'alice', seq: 1, messageId: 'x', message: { type: 'inc', n: 1 }, at: 10 },
          { agentId: 'alice', seq: 2, messageId: 'z', message: { type: 'inc', n: 3 }, at: 12 },
        ]);
        expect((await store.pending('bob')).map((m) => m.messageId)).toEqual(['y', 'w']);
      });

      it('resolves an empty batch to no results', async () => {
        expect(await store.append([])).toEqual([]);
      });

      it('returns pending messages oldest first, at most limit', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3')]);
        expect(seqs(await store.pending('alice'))).toEqual([1, 2, 3]);
        expect(seqs(await store.pending('alice', 2))).toEqual([1, 2]);
        expect(seqs(await store.pending('alice', 10))).toEqual([1, 2, 3]);
        expect(await store.pending('bob')).toEqual([]);
      });

      it('mailboxSize counts the unconsumed messages', async () => {
        expect(await store.mailboxSize('alice')).toBe(0);
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3')]);
        expect(await store.mailboxSize('alice')).toBe(3);
        await store.commitTurn(turn('alice', 1));
        expect(await store.mailboxSize('alice')).toBe(2);
        expect(await store.mailboxSize('bob')).toBe(0);
      });

      it('appending a pending message id again returns the original seq with duplicate: true and stores nothing', async () => {
        await store.append([msg('alice', 'm1', 1), msg('alice', 'm2', 2)]);
        const before = await observe(store, ['alice', 'bob']);
        expect(await store.append([msg('alice', 'm1', 99)])).toEqual([
          { agentId: 'alice', messageId: 'm1', seq: 1, duplicate: true },
        ]);
        expect(await observe(store, ['alice', 'bob'])).toEqual(before);
        expect((await store.pending('alice'))[0]?.message).toEqual({ type: 'inc', n: 1 });
      });

      it('appending a consumed message id again is still a duplicate', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1));
        const before = await observe(store, ['alice']);
        expect(await store.append([msg('alice', 'm1')])).toEqual([
          { agentId: 'alice', messageId: 'm1', seq: 1, duplicate: true },
        ]);
        expect(await observe(store, ['alice'])).toEqual(before);
      });

      it('stores a message id repeated within one batch once', async () => {
        const results = await store.append([msg('alice', 'm1', 1), msg('alice', 'm2'), msg('alice', 'm1', 2)]);
        expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
          [1, false],
          [2, false],
          [1, true],
        ]);
        expect(await store.mailboxSize('alice')).toBe(2);
      });

      it('keys idempotency by agent: the same message id to two agents is two messages', async () => {
        const results = await store.append([msg('alice', 'same'), msg('bob', 'same')]);
        expect(results.map((r) => r.duplicate)).toEqual([false, false]);
        expect(await store.mailboxSize('alice')).toBe(1);
        expect(await store.mailboxSize('bob')).toBe(1);
      });

      it('refuses a batch naming a missing agent with AgentNotFoundError and stores nothing of it', async () => {
        await store.append([msg('alice', 'm0')]);
        const before = await observe(store, ['alice', 'bob', 'ghost']);
        await expectError(
          store.append([msg('alice', 'm1'), msg('bob', 'm1'), msg('ghost', 'm1'), msg('alice', 'm2')]),
          AgentNotFoundError,
          'AGENT_NOT_FOUND',
          { agentId: 'ghost' },
        );
        expect(await observe(store, ['alice', 'bob', 'ghost'])).toEqual(before);
        // Nothing was half-stored: the same ids are fresh afterwards.
        expect((await store.append([msg('alice', 'm1')]))[0]).toMatchObject({ seq: 2, duplicate: false });
      });

      it('never reuses a seq after its message is consumed', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1));
        await store.commitTurn(turn('alice', 2));
        expect(await store.mailboxSize('alice')).toBe(0);
        expect((await store.append([msg('alice', 'm3')]))[0]?.seq).toBe(3);
        expect(seqs(await store.pending('alice'))).toEqual([3]);
      });

      it('never reuses the seq of a message consumed out of order', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3')]);
        await store.commitTurn(turn('alice', 3));
        await store.commitTurn(turn('alice', 2));
        expect((await store.append([msg('alice', 'm4')]))[0]?.seq).toBe(4);
        expect(seqs(await store.pending('alice'))).toEqual([1, 4]);
      });

      it('writes an accepted entry to the rollout at append', async () => {
        await store.append([msg('alice', 'm1', 7, 42)]);
        expect(await store.rollout('alice')).toEqual([
          { kind: 'accepted', seq: 1, messageId: 'm1', message: { type: 'inc', n: 7 }, at: 42 },
        ]);
      });

      it('reads of an unknown agent are empty', async () => {
        expect(await store.pending('ghost')).toEqual([]);
        expect(await store.mailboxSize('ghost')).toBe(0);
        expect(await store.loadSnapshot('ghost')).toBeNull();
        expect(await store.rollout('ghost')).toEqual([]);
      });

      it('keeps many messages in order while consuming from the head', async () => {
        const n = 1_200;
        for (let i = 1; i <= n; i += 100) {
          await store.append(Array.from({ length: 100 }, (_, j) => msg('alice', `m${i + j}`)));
        }
        for (let seq = 1; seq <= n - 10; seq++) await store.commitTurn(turn('alice', seq));
        expect(seqs(await store.pending('alice'))).toEqual(Array.from({ length: 10 }, (_, i) => n - 9 + i));
        expect((await store.append([msg('alice', 'last')]))[0]?.seq).toBe(n + 1);
        expect((await store.append([msg('alice', 'm5')]))[0]).toMatchObject({ seq: 5, duplicate: true });
      });
    });

    describe('turns', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
      });

      it('beginTurn marks the turn in flight until it is committed', async () => {
        await store.append([msg('alice', 'm1')]);
        expect(await store.turnsInFlight()).toEqual([]);
        await store.beginTurn('alice', 1, 2_500);
        expect(await store.turnsInFlight()).toEqual([{ agentId: 'alice', seq: 1 }]);
        await store.commitTurn(turn('alice', 1));
        expect(await store.turnsInFlight()).toEqual([]);
      });

      it("commitTurn with `next` begins the agent's next turn in the same transaction (the dequeue rides with the commit)", async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.beginTurn('alice', 1, 2_500);
        await store.commitTurn({ ...turn('alice', 1), next: { seq: 2, at: 2_600 } });
        expect(await store.turnsInFlight()).toEqual([{ agentId: 'alice', seq: 2 }]);
        expect(seqs(await store.pending('alice'))).toEqual([2]);
        expect((await store.rollout('alice')).at(-1)).toEqual({ kind: 'turn.started', seq: 2, at: 2_600 });
      });

      it('commitTurn with a `next` that is not pending rejects with StoreError and commits nothing', async () => {
        await store.append([msg('alice', 'm1')]);
        const before = await store.rollout('alice');
        await expect(store.commitTurn({ ...turn('alice', 1), next: { seq: 2, at: 2_600 } })).rejects.toBeInstanceOf(StoreError);
        await expect(store.commitTurn({ ...turn('alice', 1), next: { seq: 1, at: 2_600 } })).rejects.toBeInstanceOf(StoreError);
        expect(seqs(await store.pending('alice'))).toEqual([1]);
        expect(await store.rollout('alice')).toEqual(before);
      });

      it('commitTurn consumes exactly the handled message, even one that is not the oldest', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3'), msg('bob', 'm1')]);
        await store.commitTurn(turn('alice', 2));
        expect(seqs(await store.pending('alice'))).toEqual([1, 3]);
        expect(seqs(await store.pending('bob'))).toEqual([1]);
        await store.commitTurn(turn('alice', 1));
        expect(seqs(await store.pending('alice'))).toEqual([3]);
        await store.commitTurn(turn('alice', 3));
        expect(await store.pending('alice')).toEqual([]);
      });

      it('commitTurn stores the snapshot and writes the outputs to the rollout in order', async () => {
        await store.append([msg('alice', 'm1')]);
        expect(await store.loadSnapshot('alice')).toBeNull();
        const result = await store.commitTurn(
          turn('alice', 1, { snapshot: { value: 'counting', context: { count: 1 } }, outputs: [{ n: 1 }, 'two', 3] }),
        );
        expect(result).toEqual({ outbox: [] });
        expect(await store.loadSnapshot('alice')).toEqual({ value: 'counting', context: { count: 1 } });
        const outputs = (await store.rollout('alice')).filter((e) => e.kind === 'output');
        expect(outputs).toEqual([
          { kind: 'output', seq: 1, output: { n: 1 }, at: 3_000 },
          { kind: 'output', seq: 1, output: 'two', at: 3_000 },
          { kind: 'output', seq: 1, output: 3, at: 3_000 },
        ]);
      });

      it('the rollout of a turn reads accepted, turn.started, output, snapshot, turn.finished', async () => {
        await store.append([msg('alice', 'm1', 1, 100)]);
        await store.beginTurn('alice', 1, 200);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 }, outputs: ['out'], at: 300, durationMs: 100 }));
        expect(await store.rollout('alice')).toEqual([
          { kind: 'accepted', seq: 1, messageId: 'm1', message: { type: 'inc', n: 1 }, at: 100 },
          { kind: 'turn.started', seq: 1, at: 200 },
          { kind: 'output', seq: 1, output: 'out', at: 300 },
          { kind: 'snapshot', seq: 1, at: 300 },
          { kind: 'turn.finished', seq: 1, outcome: 'done', at: 300, durationMs: 100 },
        ]);
      });

      it("a turn's state value, when given, is repeated in the rollout's snapshot entry (not without a snapshot)", async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { value: { working: 'reviewing' } }, value: { working: 'reviewing' }, at: 300 }));
        await store.commitTurn(turn('alice', 2, { snapshot: { count: 2 }, at: 400 }));
        await store.commitTurn(turn('alice', 3, { value: 'ignored', at: 500 }));
        const entries = (await store.rollout('alice')).filter((r) => r.kind === 'snapshot');
        expect(entries).toEqual([
          { kind: 'snapshot', seq: 1, at: 300, value: { working: 'reviewing' } },
          { kind: 'snapshot', seq: 2, at: 400 },
        ]);
      });

      it('a failed turn records its outcome and error and keeps the previous snapshot', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 } }));
        await store.commitTurn(turn('alice', 2, { outcome: 'failed', error: 'boom' }));
        expect(await store.loadSnapshot('alice')).toEqual({ count: 1 });
        const last = (await store.rollout('alice', { limit: 1 }))[0];
        expect(last).toEqual({ kind: 'turn.finished', seq: 2, outcome: 'failed', error: 'boom', at: 3_000, durationMs: 5 });
      });

      it('a crashed turn without a snapshot keeps the previous snapshot', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 } }));
        await store.beginTurn('alice', 2, 3_500);
        await store.commitTurn(turn('alice', 2, { outcome: 'crashed' }));
        expect(await store.loadSnapshot('alice')).toEqual({ count: 1 });
        expect(await store.pending('alice')).toEqual([]);
        const rollout = await store.rollout('alice', { limit: 2 });
        expect(kinds(rollout)).toEqual(['turn.started', 'turn.finished']);
        expect(rollout[1]).toMatchObject({ seq: 2, outcome: 'crashed' });
      });

      it('committing an already consumed message rejects with StoreError and changes nothing', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 } }));
        const before = await observe(store, ['alice', 'bob', 'carol']);
        await expectError(
          store.commitTurn(
            turn('alice', 1, {
              snapshot: { count: 99 },
              outputs: ['again'],
              outbox: [msg('bob', 'from-alice')],
              spawned: [agent('carol')],
            }),
          ),
          StoreError,
          'STORE_ERROR',
        );
        expect(await observe(store, ['alice', 'bob', 'carol'])).toEqual(before);
      });

      it('committing a message that was never appended rejects with StoreError and changes nothing', async () => {
        await store.append([msg('alice', 'm1')]);
        const before = await observe(store, ['alice']);
        await expectError(store.commitTurn(turn('alice', 2, { snapshot: { count: 2 } })), StoreError, 'STORE_ERROR');
        await expectError(store.commitTurn(turn('bob', 1)), StoreError, 'STORE_ERROR');
        expect(await observe(store, ['alice'])).toEqual(before);
      });

      it('turns of a missing agent are refused with AgentNotFoundError', async () => {
        await expectError(store.beginTurn('ghost', 1, 0), AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'ghost' });
        await expectError(store.commitTurn(turn('ghost', 1)), AgentNotFoundError, 'AGENT_NOT_FOUND', {
          agentId: 'ghost',
        });
      });

      it('beginTurn on a message that is not pending rejects with StoreError and changes nothing', async () => {
        await store.append([msg('alice', 'm1')]);
        await store.commitTurn(turn('alice', 1));
        const before = await observe(store, ['alice']);
        await expectError(store.beginTurn('alice', 1, 0), StoreError, 'STORE_ERROR');
        await expectError(store.beginTurn('alice', 7, 0), StoreError, 'STORE_ERROR');
        expect(await observe(store, ['alice'])).toEqual(before);
      });

      it('commitTurn appends the outbox with the commit and returns its seqs in order', async () => {
        await store.append([msg('alice', 'm1'), msg('bob', 'b1')]);
        const result = await store.commitTurn(
          turn('alice', 1, {
            outbox: [msg('bob', 'o1', 1, 3_000), msg('alice', 'self', 2, 3_000), msg('bob', 'o2', 3, 3_000), msg('bob', 'b1')],
          }),
        );
        expect(result.outbox).toEqual([
          { agentId: 'bob', messageId: 'o1', seq: 2, duplicate: false },
          { agentId: 'alice', messageId: 'self', seq: 2, duplicate: false },
          { agentId: 'bob', messageId: 'o2', seq: 3, duplicate: false },
          { agentId: 'bob', messageId: 'b1', seq: 1, duplicate: true },
        ]);
        expect((await store.pending('bob')).map((m) => m.messageId)).toEqual(['b1', 'o1', 'o2']);
        expect(await store.pending('alice')).toEqual([
          { agentId: 'alice', seq: 2, messageId: 'self', message: { type: 'inc', n: 2 }, at: 3_000 },
        ]);
        expect((await store.rollout('bob', { limit: 1 }))[0]).toEqual({
          kind: 'accepted',
          seq: 3,
          messageId: 'o2',
          message: { type: 'inc', n: 3 },
          at: 3_000,
        });
      });

      it('an outbox message to a missing agent rejects AgentNotFoundError and nothing of the turn is committed', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 } }));
        await store.beginTurn('alice', 2, 3_100);
        const before = await observe(store, ['alice', 'bob', 'newborn', 'ghost']);
        await expectError(
          store.commitTurn(
            turn('alice', 2, {
              snapshot: { count: 2 },
              outputs: ['out'],
              spawned: [agent('newborn', { parent: 'alice' })],
              outbox: [msg('bob', 'o1'), msg('newborn', 'hello'), msg('ghost', 'o2')],
            }),
          ),
          AgentNotFoundError,
          'AGENT_NOT_FOUND',
          { agentId: 'ghost' },
        );
        const after = await observe(store, ['alice', 'bob', 'newborn', 'ghost']);
        expect(after).toEqual(before);
        expect(seqs(await store.pending('alice'))).toEqual([2]);
        expect(await store.loadSnapshot('alice')).toEqual({ count: 1 });
        expect(await store.turnsInFlight()).toEqual([{ agentId: 'alice', seq: 2 }]);
      });

      it('commitTurn creates the spawned agents, which can receive the outbox of the same commit', async () => {
        await store.append([msg('alice', 'm1')]);
        const kids = [agent('kid-1', { type: 'child', parent: 'alice' }), agent('kid-2', { type: 'child', parent: 'alice' })];
        const result = await store.commitTurn(
          turn('alice', 1, { spawned: kids, outbox: [msg('kid-1', 'hello'), msg('kid-2', 'hello'), msg('kid-1', 'again')] }),
        );
        expect(result.outbox.map((r) => [r.agentId, r.seq, r.duplicate])).toEqual([
          ['kid-1', 1, false],
          ['kid-2', 1, false],
          ['kid-1', 2, false],
        ]);
        expect((await store.getAgents(['kid-1', 'kid-2'])).sort(byId)).toEqual(kids);
        expect((await store.listAgents({ parent: 'alice' })).agents).toEqual(kids);
        expect(seqs(await store.pending('kid-1'))).toEqual([1, 2]);
        expect((await store.agentsWithPending()).sort()).toEqual(['kid-1', 'kid-2']);
      });

      it('spawning an agent that exists rejects AgentExistsError and nothing of the turn is committed', async () => {
        await store.append([msg('alice', 'm1')]);
        const before = await observe(store, ['alice', 'bob', 'kid']);
        await expectError(
          store.commitTurn(
            turn('alice', 1, {
              snapshot: { count: 1 },
              outputs: ['out'],
              spawned: [agent('kid'), agent('bob', { type: 'impostor' })],
              outbox: [msg('kid', 'hello'), msg('bob', 'hi')],
            }),
          ),
          AgentExistsError,
          'AGENT_EXISTS',
          { agentId: 'bob' },
        );
        expect(await observe(store, ['alice', 'bob', 'kid'])).toEqual(before);
      });

      it('spawning the same id twice in one commit rejects AgentExistsError and creates neither', async () => {
        await store.append([msg('alice', 'm1')]);
        await expectError(
          store.commitTurn(turn('alice', 1, { spawned: [agent('twin'), agent('twin', { type: 'other' })] })),
          AgentExistsError,
          'AGENT_EXISTS',
          { agentId: 'twin' },
        );
        expect(await store.getAgent('twin')).toBeNull();
        expect(await store.mailboxSize('alice')).toBe(1);
      });

      it('rollout with a limit returns the last entries, oldest first', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3')]);
        const all = await store.rollout('alice');
        expect(all.map((e) => (e.kind === 'accepted' ? e.messageId : e.kind))).toEqual(['m1', 'm2', 'm3']);
        expect(await store.rollout('alice', { limit: 2 })).toEqual(all.slice(1));
        expect(await store.rollout('alice', { limit: 10 })).toEqual(all);
      });

      it('note appends a lifecycle note to the rollout', async () => {
        await store.note('alice', { kind: 'note', note: 'spawned', at: 1 });
        await store.append([msg('alice', 'm1', 0, 2)]);
        await store.note('alice', { kind: 'note', note: 'evicted', reason: 'idle', at: 3 });
        const rollout = await store.rollout('alice');
        expect(kinds(rollout)).toEqual(['note', 'accepted', 'note']);
        expect(rollout[0]).toEqual({ kind: 'note', note: 'spawned', at: 1 });
        expect(rollout[2]).toEqual({ kind: 'note', note: 'evicted', reason: 'idle', at: 3 });
        expect(await store.rollout('bob')).toEqual([]);
      });

      it('note for a missing agent rejects with AgentNotFoundError', async () => {
        await expectError(store.note('ghost', { kind: 'note', note: 'loaded', at: 0 }), AgentNotFoundError, 'AGENT_NOT_FOUND', {
          agentId: 'ghost',
        });
      });
    });

    describe('recovery queries', () => {
      beforeEach(async () => {
        for (const id of ['a', 'b', 'c']) await store.createAgent(agent(id));
      });

      it('agentsWithPending lists exactly the agents with unconsumed messages', async () => {
        expect(await store.agentsWithPending()).toEqual([]);
        await store.append([msg('a', 'm1'), msg('c', 'm1'), msg('c', 'm2')]);
        expect((await store.agentsWithPending()).sort()).toEqual(['a', 'c']);
        await store.commitTurn(turn('a', 1));
        await store.commitTurn(turn('c', 1));
        expect(await store.agentsWithPending()).toEqual(['c']);
        await store.commitTurn(turn('c', 2));
        expect(await store.agentsWithPending()).toEqual([]);
      });

      it('turnsInFlight lists turns begun and never committed, until recovery commits them as crashed', async () => {
        await store.append([msg('a', 'm1'), msg('b', 'm1'), msg('b', 'm2'), msg('c', 'm1')]);
        await store.beginTurn('a', 1, 10);
        await store.beginTurn('b', 1, 11);
        await store.beginTurn('b', 2, 12);
        await store.commitTurn(turn('a', 1));
        const inFlight = (await store.turnsInFlight()).sort((x, y) => x.seq - y.seq);
        expect(inFlight).toEqual([
          { agentId: 'b', seq: 1 },
          { agentId: 'b', seq: 2 },
        ]);
        for (const { agentId, seq } of inFlight) await store.commitTurn(turn(agentId, seq, { outcome: 'crashed' }));
        expect(await store.turnsInFlight()).toEqual([]);
        expect(await store.agentsWithPending()).toEqual(['c']);
        expect((await store.rollout('b')).filter((e) => e.kind === 'turn.finished').map((e) => e.seq)).toEqual([1, 2]);
      });
    });

    describe('copies', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice', { input: { tags: ['x'] } }));
        await store.append([msg('alice', 'm1', 1), msg('alice', 'm2', 2)]);
        await store.commitTurn(turn('alice', 1, { snapshot: { context: { items: [1] } }, outputs: [{ said: 'hi' }] }));
      });

      it('mutating a returned record does not change the store', async () => {
        const one = await store.getAgent('alice');
        (one!.input as { tags: string[] }).tags.push('mutated');
        one!.type = 'mutated';
        const [many] = await store.getAgents(['alice']);
        many!.parent = 'mutated';
        const listed = (await store.listAgents()).agents[0];
        listed!.pinned = true;
        expect(await store.getAgent('alice')).toEqual(agent('alice', { input: { tags: ['x'] } }));
      });

      it('mutating a returned message does not change the store', async () => {
        const [pending] = await store.pending('alice');
        pending!.message.n = 99;
        pending!.seq = 99;
        expect(await store.pending('alice')).toEqual([
          { agentId: 'alice', seq: 2, messageId: 'm2', message: { type: 'inc', n: 2 }, at: 2_000 },
        ]);
      });

      it('mutating a returned snapshot does not change the store', async () => {
        const snapshot = (await store.loadSnapshot('alice')) as { context: { items: number[] } };
        snapshot.context.items.push(2);
        expect(await store.loadSnapshot('alice')).toEqual({ context: { items: [1] } });
      });

      it('mutating a returned rollout entry does not change the store', async () => {
        const before = structuredClone(await store.rollout('alice'));
        const mutated = await store.rollout('alice');
        for (const entry of mutated) {
          entry.at = -1;
          if (entry.kind === 'accepted') entry.message.type = 'mutated';
          if (entry.kind === 'output') (entry.output as { said: string }).said = 'mutated';
        }
        mutated.length = 0;
        expect(await store.rollout('alice')).toEqual(before);
      });

      it('mutating an object after passing it in does not change the store', async () => {
        const record = agent('bob', { input: { list: [1] } });
        const request = msg('bob', 'b1', 1);
        const snapshot = { deep: { value: 1 } };
        const output = { said: 'hi' };
        await store.createAgent(record);
        await store.append([request]);
        await store.append([msg('bob', 'b2')]);
        await store.commitTurn(turn('bob', 2, { snapshot, outputs: [output] }));
        (record.input as { list: number[] }).list.push(2);
        request.message.n = 99;
        snapshot.deep.value = 99;
        output.said = 'mutated';
        expect(await store.getAgent('bob')).toEqual(agent('bob', { input: { list: [1] } }));
        expect((await store.pending('bob'))[0]?.message).toEqual({ type: 'inc', n: 1 });
        expect(await store.loadSnapshot('bob')).toEqual({ deep: { value: 1 } });
        expect((await store.rollout('bob')).find((e) => e.kind === 'output')).toMatchObject({ output: { said: 'hi' } });
      });
    });

    describe('batch (group commit)', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
      });

      it('runs mixed ops in order, each seeing what the earlier ones wrote, with results in op order', async () => {
        await store.append([msg('bob', 'b1')]);
        const results = await store.batch([
          { op: 'createAgent', record: agent('carol', { parent: 'alice' }) },
          { op: 'append', request: msg('carol', 'c1', 1, 2_100) },
          { op: 'beginTurn', agentId: 'carol', seq: 1, at: 2_200 },
          {
            op: 'commitTurn',
            commit: turn('carol', 1, { snapshot: { count: 1 }, outputs: ['out'], outbox: [msg('alice', 'from-carol', 5, 3_000)], at: 3_000 }),
          },
          { op: 'note', agentId: 'carol', entry: { kind: 'note', note: 'evicted', reason: 'idle', at: 4_000 } },
          { op: 'destroyAgent', id: 'bob' },
          { op: 'destroyAgent', id: 'bob' },
        ]);
        expect(results).toEqual([
          { ok: true, value: undefined },
          { ok: true, value: { agentId: 'carol', messageId: 'c1', seq: 1, duplicate: false } },
          { ok: true, value: undefined },
          { ok: true, value: { outbox: [{ agentId: 'alice', messageId: 'from-carol', seq: 1, duplicate: false }] } },
          { ok: true, value: undefined },
          { ok: true, value: true },
          { ok: true, value: false },
        ]);
        expect(await store.getAgent('carol')).toEqual(agent('carol', { parent: 'alice' }));
        expect(await store.pending('carol')).toEqual([]);
        expect(await store.turnsInFlight()).toEqual([]);
        expect(await store.loadSnapshot('carol')).toEqual({ count: 1 });
        expect(await store.rollout('carol')).toEqual([
          { kind: 'accepted', seq: 1, messageId: 'c1', message: { type: 'inc', n: 1 }, at: 2_100 },
          { kind: 'turn.started', seq: 1, at: 2_200 },
          { kind: 'output', seq: 1, output: 'out', at: 3_000 },
          { kind: 'snapshot', seq: 1, at: 3_000 },
          { kind: 'turn.finished', seq: 1, outcome: 'done', at: 3_000, durationMs: 5 },
          { kind: 'note', note: 'evicted', reason: 'idle', at: 4_000 },
        ]);
        expect(await store.pending('alice')).toEqual([
          { agentId: 'alice', seq: 1, messageId: 'from-carol', message: { type: 'inc', n: 5 }, at: 3_000 },
        ]);
        expect(await store.getAgent('bob')).toBeNull();
        expect(await store.pending('bob')).toEqual([]);
        expect((await store.agentsWithPending()).sort()).toEqual(['alice']);
      });

      it('a failing op gets its typed error in its slot, changes nothing, and the ops before and after it are stored', async () => {
        await store.append([msg('alice', 'm0')]);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 0 } }));
        const results = await store.batch([
          { op: 'append', request: msg('alice', 'm1', 1) },
          { op: 'append', request: msg('ghost', 'g1') },
          { op: 'createAgent', record: agent('alice', { type: 'impostor' }) },
          { op: 'commitTurn', commit: turn('alice', 1, { snapshot: { count: 99 }, outputs: ['again'] }) },
          { op: 'commitTurn', commit: turn('alice', 2, { snapshot: NOT_JSON }) },
          { op: 'beginTurn', agentId: 'alice', seq: 7, at: 0 },
          { op: 'beginTurn', agentId: 'ghost', seq: 1, at: 0 },
          { op: 'note', agentId: 'ghost', entry: { kind: 'note', note: 'loaded', at: 0 } },
          { op: 'createAgent', record: agent('carol') },
          { op: 'append', request: msg('alice', 'm2', 2) },
          { op: 'commitTurn', commit: turn('alice', 2, { snapshot: { count: 1 } }) },
          { op: 'note', agentId: 'alice', entry: { kind: 'note', note: 'loaded', at: 5_000 } },
        ]);
        expect(results).toHaveLength(12);
        expect(results[0]).toEqual({ ok: true, value: { agentId: 'alice', messageId: 'm1', seq: 2, duplicate: false } });
        expectOpError(results[1], AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'ghost' });
        expectOpError(results[2], AgentExistsError, 'AGENT_EXISTS', { agentId: 'alice' });
        expectOpError(results[3], StoreError, 'STORE_ERROR');
        expectOpError(results[4], StoreError, 'STORE_ERROR');
        expectOpError(results[5], StoreError, 'STORE_ERROR');
        expectOpError(results[6], AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'ghost' });
        expectOpError(results[7], AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'ghost' });
        expect(results.slice(8)).toEqual([
          { ok: true, value: undefined },
          { ok: true, value: { agentId: 'alice', messageId: 'm2', seq: 3, duplicate: false } },
          { ok: true, value: { outbox: [] } },
          { ok: true, value: undefined },
        ]);
        // The failed ops left nothing: the impostor, the commit of a consumed message, the
        // commit whose snapshot is not JSON (m1 was committed by the later op instead).
        expect(await store.getAgent('alice')).toEqual(agent('alice'));
        expect(await store.getAgent('ghost')).toBeNull();
        expect(await store.getAgent('carol')).toEqual(agent('carol'));
        expect(await store.loadSnapshot('alice')).toEqual({ count: 1 });
        expect(seqs(await store.pending('alice'))).toEqual([3]);
        expect(await store.turnsInFlight()).toEqual([]);
        const rollout = await store.rollout('alice');
        expect(rollout.map((e) => `${e.kind}${'seq' in e ? `#${e.seq}` : ''}`)).toEqual([
          'accepted#1',
          'snapshot#1',
          'turn.finished#1',
          'accepted#2',
          'accepted#3',
          'snapshot#2',
          'turn.finished#2',
          'note',
        ]);
        expect(rollout.some((e) => e.kind === 'output')).toBe(false);
      });

      it('a commit that fails half way (an outbox message to a missing agent) is rolled back alone', async () => {
        await store.append([msg('alice', 'm1')]);
        await store.beginTurn('alice', 1, 2_500);
        const before = await observe(store, ['alice', 'bob', 'kid', 'ghost']);
        const failing = turn('alice', 1, {
          snapshot: { count: 1 },
          outputs: ['out'],
          spawned: [agent('kid', { parent: 'alice' })],
          outbox: [msg('bob', 'o1'), msg('kid', 'hello'), msg('ghost', 'o2')],
        });
        const results = await store.batch([
          { op: 'commitTurn', commit: failing },
          { op: 'commitTurn', commit: turn('alice', 1, { spawned: [agent('kid', { type: 'second' })] }) },
        ]);
        expectOpError(results[0], AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'ghost' });
        expect(results[1]).toEqual({ ok: true, value: { outbox: [] } });
        // Only the second commit is stored: none of the first one's outputs, snapshot, outbox or spawn.
        expect(await store.getAgent('kid')).toEqual(agent('kid', { type: 'second' }));
        expect(await store.loadSnapshot('alice')).toBeNull();
        expect(await store.pending('bob')).toEqual([]);
        expect(await store.pending('kid')).toEqual([]);
        expect(await store.turnsInFlight()).toEqual([]);
        const after = await store.rollout('alice');
        expect(kinds(after)).toEqual([...kinds(before.perAgent[0]!.rollout), 'turn.finished']);
      });

      it('appends inside a batch are idempotent: the same message id again is a duplicate with the first seq', async () => {
        await store.append([msg('alice', 'old', 1)]);
        const results = await store.batch([
          { op: 'append', request: msg('alice', 'm1', 1) },
          { op: 'append', request: msg('bob', 'm1', 2) },
          { op: 'append', request: msg('alice', 'm1', 99) },
          { op: 'append', request: msg('alice', 'old', 99) },
        ]);
        expect(results).toEqual([
          { ok: true, value: { agentId: 'alice', messageId: 'm1', seq: 2, duplicate: false } },
          { ok: true, value: { agentId: 'bob', messageId: 'm1', seq: 1, duplicate: false } },
          { ok: true, value: { agentId: 'alice', messageId: 'm1', seq: 2, duplicate: true } },
          { ok: true, value: { agentId: 'alice', messageId: 'old', seq: 1, duplicate: true } },
        ]);
        expect((await store.pending('alice')).map((m) => [m.seq, m.message.n])).toEqual([
          [1, 1],
          [2, 1],
        ]);
        expect(await store.rollout('alice')).toHaveLength(2);
      });

      it('an empty batch resolves to no results and writes nothing', async () => {
        await store.append([msg('alice', 'm1')]);
        const before = await observe(store, ['alice', 'bob']);
        expect(await store.batch([])).toEqual([]);
        expect(await observe(store, ['alice', 'bob'])).toEqual(before);
      });

      it('refuses ops that are not an array of store operations with a TypeError, storing nothing', async () => {
        const before = await observe(store, ['alice', 'bob', 'carol']);
        await expect(store.batch(null as never)).rejects.toBeInstanceOf(TypeError);
        await expect(store.batch({ op: 'createAgent', record: agent('carol') } as never)).rejects.toBeInstanceOf(TypeError);
        const mixed = [{ op: 'createAgent', record: agent('carol') }, { op: 'drop', id: 'alice' }, null];
        await expect(store.batch(mixed as never)).rejects.toThrow(/ops\[1\]/);
        expect(await observe(store, ['alice', 'bob', 'carol'])).toEqual(before);
      });

      it('the results are the stores own values, not shared: mutating them changes nothing', async () => {
        const [result] = await store.batch([{ op: 'append', request: msg('alice', 'm1') }]);
        (result as { ok: true; value: { seq: number } }).value.seq = 99;
        expect(await store.append([msg('alice', 'm1')])).toEqual([{ agentId: 'alice', messageId: 'm1', seq: 1, duplicate: true }]);
      });

      it('after close, a batch rejects with StoreError', async () => {
        await store.close();
        open = false;
        await expectError(store.batch([{ op: 'createAgent', record: agent('carol') }]), StoreError, 'STORE_ERROR');
        await expectError(store.batch([]), StoreError, 'STORE_ERROR');
      });
    });

    describe('ownership', () => {
      it('acquire makes the caller the owner and returns an epoch ≥ 1; writes and reads work as before', async () => {
        const { epoch } = await store.acquire(owner(101));
        expect(Number.isInteger(epoch) && epoch >= 1).toBe(true);
        await store.createAgent(agent('alice'));
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.beginTurn('alice', 1, 3_000);
        await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 } }));
        await store.note('alice', { kind: 'note', note: 'loaded', at: 4_000 });
        expect(seqs(await store.pending('alice'))).toEqual([2]);
        expect(await store.destroyAgent('alice')).toBe(true);
      });

      it('a second acquire of an owned store rejects StoreLockedError naming the holder, and changes nothing', async () => {
        const first = owner(101, { host: 'host-a' });
        const { epoch } = await store.acquire(first);
        await expectError(store.acquire(owner(202, { host: 'host-b' })), StoreLockedError, 'STORE_LOCKED', { holder: first });
        const error = await store.acquire(owner(303)).catch((e: unknown) => e);
        expect((error as Error).message).toMatch(/is owned by another live runtime \(pid 101 on host "host-a", since 2026-01-02T03:04:05.000Z\)/);
        // The first owner still owns it and writes unfenced.
        await store.createAgent(agent('alice'));
        expect(await store.getAgent('alice')).toEqual(agent('alice'));
        if (reopen !== undefined) {
          open = false;
          store = await reopen(store);
          open = true;
          expect((await store.acquire(owner(404))).epoch).toBeGreaterThan(epoch);
        }
      });

      it('refuses an owner that is not { pid, host, since } with a TypeError', async () => {
        await expect(store.acquire(null as never)).rejects.toBeInstanceOf(TypeError);
        await expect(store.acquire({ pid: -1, host: 'h', since: 0 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.acquire({ pid: 1, host: 7 as never, since: 0 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.acquire({ pid: 1, host: 'h', since: Number.NaN })).rejects.toBeInstanceOf(TypeError);
        // Nothing was acquired by the refused calls.
        expect((await store.acquire(owner(1))).epoch).toBeGreaterThanOrEqual(1);
      });

      it('close releases ownership: a store opened afterwards acquires it, with a higher epoch when the data survives', async () => {
        const { epoch } = await store.acquire(owner(101));
        if (reopen !== undefined) {
          open = false;
          store = await reopen(store);
          open = true;
          const next = await store.acquire(owner(202));
          expect(next.epoch).toBeGreaterThan(epoch);
          await expectError(store.acquire(owner(303)), StoreLockedError, 'STORE_LOCKED', { holder: owner(202) });
        } else {
          await store.close();
          store = await makeStore();
          expect((await store.acquire(owner(202))).epoch).toBeGreaterThanOrEqual(1);
        }
      });
    });

    describe('counters (agentStats)', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
      });

      const statsOf = async (id: string) => (await store.agentStats([id])).get(id);

      it('a new agent has zero counters and no last activity; ids that do not exist are left out', async () => {
        expect(await store.agentStats(['alice', 'ghost', 'bob', 'alice'])).toEqual(
          new Map([
            ['alice', stats()],
            ['bob', stats()],
          ]),
        );
        expect(await store.agentStats([])).toEqual(new Map());
      });

      it('counts turns by outcome and the mailbox, and keeps the time of the last accepted message, turn record or note', async () => {
        await store.append([1, 2, 3, 4, 5].map((n) => msg('alice', `m${n}`, n, 10 + n)));
        expect(await statsOf('alice')).toEqual(stats({ mailbox: 5, lastActiveAt: 15 }));
        await store.beginTurn('alice', 1, 20);
        expect(await statsOf('alice')).toEqual(stats({ mailbox: 5, lastActiveAt: 20 }));
        await store.commitTurn(turn('alice', 1, { at: 30 }));
        await store.commitTurn(turn('alice', 2, { outcome: 'failed', error: 'boom', at: 31 }));
        await store.commitTurn(turn('alice', 3, { outcome: 'crashed', at: 32 }));
        await store.commitTurn(turn('alice', 4, { outcome: 'interrupted', at: 33 }));
        expect(await statsOf('alice')).toEqual(stats({ turns: 4, failed: 1, crashed: 1, interrupted: 1, mailbox: 1, lastActiveAt: 33 }));
        await store.note('alice', { kind: 'note', note: 'evicted', reason: 'idle', at: 40 });
        expect(await statsOf('alice')).toEqual(stats({ turns: 4, failed: 1, crashed: 1, interrupted: 1, mailbox: 1, lastActiveAt: 40 }));
        expect(await store.mailboxSize('alice')).toBe(1);
        expect(await statsOf('bob')).toEqual(stats());
      });

      it("a commit's outbox, spawns and next turn count where they land, the last written last", async () => {
        await store.append([msg('alice', 'm1', 0, 10), msg('alice', 'm2', 0, 11)]);
        await store.commitTurn(
          turn('alice', 1, {
            at: 30,
            spawned: [agent('kid')],
            outbox: [msg('bob', 'o1', 0, 31), msg('kid', 'o2', 0, 32), msg('alice', 'o3', 0, 33)],
            next: { seq: 2, at: 34 },
          }),
        );
        const all = await store.agentStats(['alice', 'bob', 'kid']);
        expect(all.get('alice')).toEqual(stats({ turns: 1, mailbox: 2, lastActiveAt: 34 }));
        expect(all.get('bob')).toEqual(stats({ mailbox: 1, lastActiveAt: 31 }));
        expect(all.get('kid')).toEqual(stats({ mailbox: 1, lastActiveAt: 32 }));
      });

      it('a refused op changes no counter', async () => {
        await store.append([msg('alice', 'm1', 0, 10)]);
        const before = await store.agentStats(['alice', 'bob']);
        const results = await store.batch([
          { op: 'commitTurn', commit: turn('alice', 9, { at: 50 }) },
          { op: 'commitTurn', commit: turn('alice', 1, { at: 51, outbox: [msg('ghost', 'x')] }) },
          { op: 'commitTurn', commit: turn('alice', 1, { at: 51, spawned: [agent('bob')] }) },
          { op: 'append', request: msg('ghost', 'g') },
          { op: 'beginTurn', agentId: 'alice', seq: 7, at: 52 },
          { op: 'note', agentId: 'ghost', entry: { kind: 'note', note: 'loaded', at: 53 } },
        ]);
        expect(results.map((r) => r.ok)).toEqual([false, false, false, false, false, false]);
        expect(await store.agentStats(['alice', 'bob'])).toEqual(before);
      });

      it('counters start over when the id is spawned again after destroy', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await store.commitTurn(turn('alice', 1, { outcome: 'failed' }));
        await store.destroyAgent('alice');
        expect(await store.agentStats(['alice'])).toEqual(new Map());
        await store.createAgent(agent('alice'));
        expect(await statsOf('alice')).toEqual(stats());
      });
    });

    describe('history retention (CommitTurn.retain)', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
      });

      /** Message `n` appended to the agent, its turn begun and committed (a snapshot, one output) under `retain`. */
      async function oneTurn(id: string, n: number, retain?: Retention): Promise<void> {
        await store.append([msg(id, `m${n}`, n, n * 10)]);
        await store.beginTurn(id, n, n * 10 + 1);
        const fields: Partial<CommitTurn> = { snapshot: { n }, outputs: [`out ${n}`], at: n * 10 + 2 };
        await store.commitTurn(turn(id, n, retain === undefined ? fields : { ...fields, retain }));
      }
      const TURN_KINDS = ['accepted', 'turn.started', 'output', 'snapshot', 'turn.finished'];
      const seqOf = (e: RolloutEntry) => ('seq' in e ? e.seq : null);

      it("keeps everything without a policy and with 'all'", async () => {
        for (let n = 1; n <= 12; n++) await oneTurn('alice', n, n % 2 === 0 ? 'all' : undefined);
        expect(kinds(await store.rollout('alice'))).toEqual(Array.from({ length: 12 }, () => TURN_KINDS).flat());
        expect((await store.append([msg('alice', 'm1')]))[0]).toMatchObject({ seq: 1, duplicate: true });
      });

      it('{ keepTurns: k } keeps what the rollout received since the turn k turns before the last one finished', async () => {
        for (let n = 1; n <= 4; n++) await oneTurn('bob', n);
        const bob = await observe(store, ['bob']);
        for (let n = 1; n <= 10; n++) await oneTurn('alice', n, { keepTurns: 3 });
        const entries = await store.rollout('alice');
        expect(kinds(entries)).toEqual([...TURN_KINDS, ...TURN_KINDS, ...TURN_KINDS]);
        expect(entries.map(seqOf)).toEqual([8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10]);
        expect(entries[0]).toEqual({ kind: 'accepted', seq: 8, messageId: 'm8', message: { type: 'inc', n: 8 }, at: 80 });
        expect(await store.rollout('alice', { limit: 2 })).toEqual(entries.slice(-2));
        // Counters and the latest snapshot are not history; another agent keeps all of its own.
        expect((await store.agentStats(['alice'])).get('alice')).toEqual(stats({ turns: 10, lastActiveAt: 102 }));
        expect(await store.loadSnapshot('alice')).toEqual({ n: 10 });
        expect((await observe(store, ['bob'])).perAgent).toEqual(bob.perAgent);
      });

      it('forgets the ids of messages consumed before the window (appended again, they are new); remembers the others', async () => {
        for (let n = 1; n <= 10; n++) await oneTurn('alice', n, { keepTurns: 3 });
        await store.append([msg('alice', 'p1'), msg('alice', 'p2')]);
        expect(await store.append([msg('alice', 'm8'), msg('alice', 'm10'), msg('alice', 'p1')])).toEqual([
          { agentId: 'alice', messageId: 'm8', seq: 8, duplicate: true },
          { agentId: 'alice', messageId: 'm10', seq: 10, duplicate: true },
          { agentId: 'alice', messageId: 'p1', seq: 11, duplicate: true },
        ]);
        expect(await store.append([msg('alice', 'm7'), msg('alice', 'm1')])).toEqual([
          { agentId: 'alice', messageId: 'm7', seq: 13, duplicate: false },
          { agentId: 'alice', messageId: 'm1', seq: 14, duplicate: false },
        ]);
        expect(seqs(await store.pending('alice'))).toEqual([11, 12, 13, 14]);
      });

      it('never touches pending messages, the turn in flight or the latest snapshot, even with keepTurns 0', async () => {
        // A backlog: 30 messages accepted before the first turn.
        await store.append(Array.from({ length: 30 }, (_, i) => msg('alice', `m${i + 1}`, i + 1, 100 + i)));
        const backlog = await store.pending('alice');
        await store.commitTurn(turn('alice', 1, { snapshot: { n: 1 }, retain: { keepTurns: 0 } }));
        for (let seq = 2; seq <= 10; seq++) {
          await store.commitTurn(turn('alice', seq, { retain: { keepTurns: 0 }, ...(seq === 10 ? { next: { seq: 11, at: 4_000 } } : {}) }));
        }
        expect(await store.pending('alice')).toEqual(backlog.slice(10));
        expect(await store.mailboxSize('alice')).toBe(20);
        expect(await store.turnsInFlight()).toEqual([{ agentId: 'alice', seq: 11 }]);
        expect(await store.loadSnapshot('alice')).toEqual({ n: 1 });
        // What came after the last turn finished: the next turn's start.
        expect(await store.rollout('alice')).toEqual([{ kind: 'turn.started', seq: 11, at: 4_000 }]);
        // Recovery still finds and records the turn in flight.
        await store.commitTurn(turn('alice', 11, { outcome: 'crashed', retain: { keepTurns: 0 } }));
        expect((await store.agentStats(['alice'])).get('alice')).toEqual(stats({ turns: 11, crashed: 1, mailbox: 19, lastActiveAt: 3_000 }));
        expect(await store.turnsInFlight()).toEqual([]);
        expect(await store.rollout('alice')).toEqual([]);
        expect((await store.append([msg('alice', 'm30')]))[0]).toMatchObject({ seq: 30, duplicate: true });
      });

      it('prunes a bounded batch per commit, oldest first, and converges to the window over the next commits', async () => {
        for (let n = 1; n <= 80; n++) await oneTurn('alice', n);
        await store.append([msg('alice', 'm81', 81, 810)]);
        const before = await store.rollout('alice');
        // One commit writes one entry and prunes the 64 oldest (pruneBatch of a commit without outputs).
        await store.commitTurn(turn('alice', 81, { retain: { keepTurns: 0 } }));
        expect(await store.rollout('alice')).toEqual([
          ...before.slice(64),
          { kind: 'turn.finished', seq: 81, outcome: 'done', at: 3_000, durationMs: 5 },
        ]);
        // Later commits go on until only the window is left.
        let commits = 0;
        for (let n = 82; commits < 20; n++) {
          await oneTurn('alice', n, { keepTurns: 2 });
          commits++;
          if ((await store.rollout('alice')).length === 2 * TURN_KINDS.length) break;
        }
        expect(commits).toBeLessThan(10);
        const last = 81 + commits;
        expect((await store.rollout('alice')).map(seqOf)).toEqual([...Array(5).fill(last - 1), ...Array(5).fill(last)]);
        expect((await store.agentStats(['alice'])).get('alice')).toMatchObject({ turns: last, mailbox: 0 });
      });

      it('a commit forgets at most a batch of message ids, the oldest first', async () => {
        for (let n = 1; n <= 80; n++) await oneTurn('alice', n);
        await store.append([msg('alice', 'm81', 81, 810)]);
        await store.commitTurn(turn('alice', 81, { retain: { keepTurns: 0 } }));
        expect(await store.append([msg('alice', 'm65'), msg('alice', 'm81'), msg('alice', 'm64')])).toEqual([
          { agentId: 'alice', messageId: 'm65', seq: 65, duplicate: true },
          { agentId: 'alice', messageId: 'm81', seq: 81, duplicate: true },
          { agentId: 'alice', messageId: 'm64', seq: 82, duplicate: false },
        ]);
      });

      it("refuses a retain that is neither 'all' nor { keepTurns: an integer ≥ 0 } with a TypeError, committing nothing", async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        const before = await observe(store, ['alice']);
        for (const retain of [{ keepTurns: -1 }, { keepTurns: 1.5 }, { keepTurns: '3' }, {}, 'some', null, 3]) {
          await expect(store.commitTurn(turn('alice', 1, { retain: retain as never })), JSON.stringify(retain)).rejects.toBeInstanceOf(TypeError);
        }
        expect(await observe(store, ['alice'])).toEqual(before);
        // In a batch, that op alone fails.
        const results = await store.batch([
          { op: 'commitTurn', commit: turn('alice', 1, { retain: { keepTurns: -1 } }) },
          { op: 'commitTurn', commit: turn('alice', 2, { retain: { keepTurns: 0 } }) },
        ]);
        expect(results[0]?.ok).toBe(false);
        expect((results[0] as { error: Error }).error).toBeInstanceOf(TypeError);
        expect(results[1]?.ok).toBe(true);
        expect(seqs(await store.pending('alice'))).toEqual([1]);
      });
    });

    describe('durable timers', () => {
      beforeEach(async () => {
        await store.createAgent(agent('alice'));
        await store.createAgent(agent('bob'));
      });

      const statsOf = async (id: string) => (await store.agentStats([id])).get(id);
      const values = (results: StoreOpResult[]) =>
        results.map((r) => {
          if (!r.ok) throw r.error;
          return r.value;
        });
      async function schedule(...timers: TimerRecord[]): Promise<void> {
        expect(values(await store.batch(timers.map((t): StoreOp => ({ op: 'schedule', timer: t }))))).toEqual(timers.map(() => undefined));
      }
      async function fire(agentId: string, key: string, at: number, messageId: string, firedAt = 5_000) {
        const [result] = await store.batch([{ op: 'fire', agentId, key, at, messageId, firedAt }]);
        if (!result!.ok) throw result!.error;
        return result!.value;
      }
      async function cancel(agentId: string, key: string) {
        const [result] = await store.batch([{ op: 'cancel', agentId, key }]);
        if (!result!.ok) throw result!.error;
        return result!.value;
      }

      it('schedule stores a timer, a second schedule with the same key replaces it, cancel deletes it', async () => {
        expect(await store.nextDeadline()).toBeNull();
        expect(await store.timers('alice')).toEqual([]);
        await schedule(timer('alice', 'r1', 100, { message: { type: 'remind', n: 1 } }));
        expect(await store.timers('alice')).toEqual([timer('alice', 'r1', 100, { message: { type: 'remind', n: 1 } })]);
        expect(await statsOf('alice')).toEqual(stats({ timers: 1 }));
        // Replaced: the deadline and the message, one timer still.
        await schedule(timer('alice', 'r1', 300, { message: { type: 'remind', n: 2 } }));
        expect(await store.timers('alice')).toEqual([timer('alice', 'r1', 300, { message: { type: 'remind', n: 2 } })]);
        expect(await store.nextDeadline()).toBe(300);
        expect(await statsOf('alice')).toEqual(stats({ timers: 1 }));
        // Keys are per agent.
        await schedule(timer('bob', 'r1', 200));
        expect(await store.nextDeadline()).toBe(200);
        expect(await cancel('alice', 'r1')).toBe(true);
        expect(await cancel('alice', 'r1')).toBe(false);
        expect(await cancel('ghost', 'r1')).toBe(false);
        expect(await store.timers('alice')).toEqual([]);
        expect(await store.timers('bob')).toEqual([timer('bob', 'r1', 200)]);
        expect(await statsOf('alice')).toEqual(stats());
        expect(await statsOf('bob')).toEqual(stats({ timers: 1 }));
        // Scheduling is not activity, and leaves the mailbox and rollout alone.
        expect(await store.rollout('alice')).toEqual([]);
        expect(await store.mailboxSize('bob')).toBe(0);
      });

      it("fire appends the timer's message as an accept would: the agent's next seq, an accepted entry, the counters", async () => {
        await store.append([msg('alice', 'm1', 1, 10)]);
        await schedule(timer('alice', 'r1', 100), timer('alice', 'r2', 200));
        expect(await fire('alice', 'r1', 100, 'fire-1', 150)).toEqual({ agentId: 'alice', messageId: 'fire-1', seq: 2, duplicate: false });
        expect(await store.pending('alice')).toEqual([
          { agentId: 'alice', seq: 1, messageId: 'm1', message: { type: 'inc', n: 1 }, at: 10 },
          { agentId: 'alice', seq: 2, messageId: 'fire-1', message: { type: 'remind', key: 'r1' }, at: 150 },
        ]);
        expect((await store.rollout('alice')).at(-1)).toEqual({
          kind: 'accepted',
          seq: 2,
          messageId: 'fire-1',
          message: { type: 'remind', key: 'r1' },
          at: 150,
        });
        expect(await statsOf('alice')).toEqual(stats({ mailbox: 2, timers: 1, lastActiveAt: 150 }));
        expect(await store.agentsWithPending()).toContain('alice');
        expect(await store.timers('alice')).toEqual([timer('alice', 'r2', 200)]);
        expect(await store.nextDeadline()).toBe(200);
        // The fired message is handled like any other.
        await store.commitTurn(turn('alice', 2));
        expect(seqs(await store.pending('alice'))).toEqual([1]);
      });

      it('fires exactly once: a second fire, or a fire of a cancelled timer, stores nothing and returns null', async () => {
        await schedule(timer('alice', 'r1', 100), timer('alice', 'r2', 100));
        expect(await fire('alice', 'r1', 100, 'fire-1')).toMatchObject({ seq: 1, duplicate: false });
        const after = await observe(store, ['alice', 'bob']);
        expect(await fire('alice', 'r1', 100, 'fire-2')).toBeNull();
        expect(await fire('alice', 'r1', 100, 'fire-1')).toBeNull();
        expect(await cancel('alice', 'r2')).toBe(true);
        const cancelled = await observe(store, ['alice', 'bob']);
        expect(await fire('alice', 'r2', 100, 'fire-3')).toBeNull();
        expect(await fire('ghost', 'r1', 100, 'fire-4')).toBeNull();
        expect(await fire('bob', 'r1', 100, 'fire-5')).toBeNull();
        expect(await observe(store, ['alice', 'bob'])).toEqual(cancelled);
        expect(after.perAgent[0]!.pending).toHaveLength(1);
        expect(seqs(await store.pending('alice'))).toEqual([1]);
        // Two fires of one timer in one batch: the first stores the message, the second nothing.
        await schedule(timer('bob', 'r1', 50));
        const results = await store.batch([
          { op: 'fire', agentId: 'bob', key: 'r1', at: 50, messageId: 'b-1', firedAt: 60 },
          { op: 'fire', agentId: 'bob', key: 'r1', at: 50, messageId: 'b-2', firedAt: 61 },
        ]);
        expect(values(results)).toEqual([{ agentId: 'bob', messageId: 'b-1', seq: 1, duplicate: false }, null]);
        expect(await store.mailboxSize('bob')).toBe(1);
        expect(await statsOf('bob')).toEqual(stats({ mailbox: 1, lastActiveAt: 60 }));
      });

      it('a fire with the deadline of a replaced timer returns null and leaves the new timer; the new deadline fires it', async () => {
        await schedule(timer('alice', 'r1', 100, { message: { type: 'old' } }));
        await schedule(timer('alice', 'r1', 400, { message: { type: 'new' } }));
        const before = await observe(store, ['alice']);
        expect(await fire('alice', 'r1', 100, 'fire-old')).toBeNull();
        expect(await observe(store, ['alice'])).toEqual(before);
        expect(await store.timers('alice')).toEqual([timer('alice', 'r1', 400, { message: { type: 'new' } })]);
        expect(await fire('alice', 'r1', 400, 'fire-new', 401)).toMatchObject({ seq: 1, duplicate: false });
        expect((await store.pending('alice')).map((m) => m.message)).toEqual([{ type: 'new' }]);
        expect(await store.nextDeadline()).toBeNull();
      });

      it('dueTimers lists the timers due at or before now, earliest first, ties by agent then key, at most limit', async () => {
        await store.createAgent(agent('carol'));
        await schedule(
          timer('carol', 'b', 300),
          timer('bob', 'z', 100),
          timer('alice', 'late', 900),
          timer('carol', 'a', 300),
          timer('alice', 'x', 300),
          timer('bob', 'a', 50),
        );
        expect(timerKeys(await store.dueTimers(300, 100))).toEqual(['bob/a@50', 'bob/z@100', 'alice/x@300', 'carol/a@300', 'carol/b@300']);
        expect(timerKeys(await store.dueTimers(299, 100))).toEqual(['bob/a@50', 'bob/z@100']);
        expect(timerKeys(await store.dueTimers(300, 3))).toEqual(['bob/a@50', 'bob/z@100', 'alice/x@300']);
        expect(timerKeys(await store.dueTimers(49, 10))).toEqual([]);
        expect(timerKeys(await store.dueTimers(10_000, 1))).toEqual(['bob/a@50']);
        expect(await store.dueTimers(10_000, 100)).toHaveLength(6);
        expect((await store.dueTimers(50, 1))[0]).toEqual(timer('bob', 'a', 50));
        // Fired, cancelled and replaced timers leave the order.
        await fire('bob', 'a', 50, 'f1');
        await cancel('bob', 'z');
        await schedule(timer('alice', 'x', 1_000));
        expect(timerKeys(await store.dueTimers(300, 100))).toEqual(['carol/a@300', 'carol/b@300']);
        expect(timerKeys(await store.dueTimers(Number.MAX_VALUE, 100))).toEqual(['carol/a@300', 'carol/b@300', 'alice/late@900', 'alice/x@1000']);
      });

      it('nextDeadline is the earliest deadline of all timers, null when none is left', async () => {
        expect(await store.nextDeadline()).toBeNull();
        await schedule(timer('alice', 'a', 700), timer('bob', 'b', 500), timer('bob', 'c', 900));
        expect(await store.nextDeadline()).toBe(500);
        await cancel('bob', 'b');
        expect(await store.nextDeadline()).toBe(700);
        await schedule(timer('alice', 'a', 100.5));
        expect(await store.nextDeadline()).toBe(100.5);
        await fire('alice', 'a', 100.5, 'f1');
        expect(await store.nextDeadline()).toBe(900);
        await cancel('bob', 'c');
        expect(await store.nextDeadline()).toBeNull();
      });

      it("timers(agentId) lists one agent's pending timers, earliest first (ties by key), at most limit", async () => {
        await schedule(timer('alice', 'c', 300), timer('alice', 'b', 100), timer('bob', 'a', 50), timer('alice', 'a', 300));
        expect(timerKeys(await store.timers('alice'))).toEqual(['alice/b@100', 'alice/a@300', 'alice/c@300']);
        expect(timerKeys(await store.timers('alice', 2))).toEqual(['alice/b@100', 'alice/a@300']);
        expect(await store.timers('ghost')).toEqual([]);
        await expect(store.timers('alice', 0)).rejects.toBeInstanceOf(TypeError);
        await expect(store.dueTimers(100, 0)).rejects.toBeInstanceOf(TypeError);
        await expect(store.dueTimers(Number.NaN, 10)).rejects.toBeInstanceOf(TypeError);
      });

      it('destroyAgent drops the agent’s timers at once; the id spawned again has none', async () => {
        await schedule(timer('alice', 'r1', 100), timer('alice', 'r2', 200), timer('bob', 'r1', 300));
        expect(await store.destroyAgent('alice')).toBe(true);
        expect(timerKeys(await store.dueTimers(1_000, 10))).toEqual(['bob/r1@300']);
        expect(await store.nextDeadline()).toBe(300);
        expect(await store.timers('alice')).toEqual([]);
        expect(await fire('alice', 'r1', 100, 'f1')).toBeNull();
        await store.createAgent(agent('alice'));
        expect(await store.timers('alice')).toEqual([]);
        expect(await statsOf('alice')).toEqual(stats());
        expect(await fire('alice', 'r1', 100, 'f2')).toBeNull();
        expect(await store.mailboxSize('alice')).toBe(0);
      });

      it('a commit schedules and cancels its agent’s timers with the turn (cancels first, then schedules)', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await schedule(timer('alice', 'old', 100), timer('alice', 'keep', 150));
        await store.commitTurn(
          turn('alice', 1, {
            timers: {
              cancel: ['old', 'again', 'missing'],
              schedule: [timer('alice', 'new', 500), timer('alice', 'again', 600), timer('alice', 'keep', 250)],
            },
          }),
        );
        expect(timerKeys(await store.timers('alice'))).toEqual(['alice/keep@250', 'alice/new@500', 'alice/again@600']);
        expect(await statsOf('alice')).toMatchObject({ turns: 1, timers: 3 });
        expect(await store.nextDeadline()).toBe(250);
        // Empty lists, or none, change nothing.
        await store.commitTurn(turn('alice', 2, { timers: {} }));
        expect(await store.timers('alice')).toHaveLength(3);
      });

      it('a commit that fails schedules and cancels nothing, alone or in a batch', async () => {
        await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
        await schedule(timer('alice', 'old', 100));
        const before = await observe(store, ['alice', 'bob']);
        const timers = { cancel: ['old'], schedule: [timer('alice', 'new', 500)] };
        // A failing op of a batch: an outbox message to a missing agent.
        const results = await store.batch([
          { op: 'commitTurn', commit: turn('alice', 1, { timers, outbox: [msg('ghost', 'x')] }) },
          { op: 'schedule', timer: timer('bob', 'b', 700) },
        ]);
        expectOpError(results[0], AgentNotFoundError, 'AGENT_NOT_FOUND');
        expect(results[1]).toEqual({ ok: true, value: undefined });
        expect(timerKeys(await store.timers('alice'))).toEqual(['alice/old@100']);
        expect(timerKeys(await store.dueTimers(1_000, 10))).toEqual(['alice/old@100', 'bob/b@700']);
        // A commit of a message not pending; a timer message that is not JSON.
        await expectError(store.commitTurn(turn('alice', 9, { timers })), StoreError, 'STORE_ERROR');
        const notJson = { cancel: ['old'], schedule: [timer('alice', 'new', 500, { message: NOT_JSON as never })] };
        await expectError(store.commitTurn(turn('alice', 1, { timers: notJson })), StoreError, 'STORE_ERROR');
        // A timer of another agent is refused.
        const other = { schedule: [timer('bob', 'new', 500)] };
        await expect(store.commitTurn(turn('alice', 1, { timers: other }))).rejects.toBeInstanceOf(TypeError);
        await expect(store.commitTurn(turn('alice', 1, { timers: { cancel: [7 as never] } }))).rejects.toBeInstanceOf(TypeError);
        await store.batch([{ op: 'cancel', agentId: 'bob', key: 'b' }]);
        expect(await observe(store, ['alice', 'bob'])).toEqual(before);
        expect(timerKeys(await store.dueTimers(1_000, 10))).toEqual(['alice/old@100']);
        expect(await statsOf('alice')).toEqual(stats({ mailbox: 2, timers: 1, lastActiveAt: 2_000 }));
      });

      it('schedule for a missing agent fails with AgentNotFoundError, a message that is not JSON with StoreError, bad fields with TypeError', async () => {
        const before = await observe(store, ['alice', 'bob']);
        const results = await store.batch([
          { op: 'schedule', timer: timer('ghost', 'r1', 100) },
          { op: 'schedule', timer: timer('alice', 'r1', 100, { message: NOT_JSON as never }) },
          { op: 'schedule', timer: timer('alice', 'r1', Number.NaN) },
          { op: 'schedule', timer: timer('alice', 7 as never, 100) },
          { op: 'schedule', timer: null as never },
          { op: 'cancel', agentId: 'alice', key: null as never },
          { op: 'fire', agentId: 'alice', key: 'r1', at: 'soon' as never, messageId: 'f', firedAt: 1 },
          { op: 'schedule', timer: timer('bob', 'ok', 100) },
        ]);
        expectOpError(results[0], AgentNotFoundError, 'AGENT_NOT_FOUND', { agentId: 'ghost' });
        expectOpError(results[1], StoreError, 'STORE_ERROR');
        for (const result of results.slice(2, 7)) {
          expect(result?.ok).toBe(false);
          expect((result as { error: Error }).error).toBeInstanceOf(TypeError);
        }
        expect(results[7]).toEqual({ ok: true, value: undefined });
        expect(await store.timers('alice')).toEqual([]);
        expect(await store.timers('ghost')).toEqual([]);
        expect(timerKeys(await store.dueTimers(1_000, 10))).toEqual(['bob/ok@100']);
        // Alone, the error is the batch's only result.
        const [alone] = await store.batch([{ op: 'schedule', timer: timer('ghost', 'r1', 100) }]);
        expectOpError(alone, AgentNotFoundError, 'AGENT_NOT_FOUND');
        await store.batch([{ op: 'cancel', agentId: 'bob', key: 'ok' }]);
        expect(await observe(store, ['alice', 'bob'])).toEqual(before);
      });

      it('reads return copies of timers, and a timer is copied when scheduled', async () => {
        const record = timer('alice', 'r1', 100, { message: { type: 'remind', list: [1] } });
        await schedule(record);
        (record.message.list as number[]).push(2);
        const [read] = await store.timers('alice');
        (read!.message.list as number[]).push(3);
        const [due] = await store.dueTimers(100, 1);
        expect(due!.message).toEqual({ type: 'remind', list: [1] });
        (due!.message.list as number[]).push(4);
        expect((await store.timers('alice'))[0]!.message).toEqual({ type: 'remind', list: [1] });
        await fire('alice', 'r1', 100, 'f1');
        expect((await store.pending('alice'))[0]!.message).toEqual({ type: 'remind', list: [1] });
      });

      it('finds the due ones among many timers, in order', async () => {
        const timers: TimerRecord[] = [];
        for (let i = 0; i < 500; i++) timers.push(timer(i % 2 === 0 ? 'alice' : 'bob', `k${i}`, ((i * 7919) % 500) * 10));
        await schedule(...timers);
        const sorted = [...timers].sort((a, b) => a.at - b.at || (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : a.key < b.key ? -1 : 1));
        expect(timerKeys(await store.dueTimers(1_000, 1_000))).toEqual(timerKeys(sorted.filter((t) => t.at <= 1_000)));
        expect(timerKeys(await store.dueTimers(Number.POSITIVE_INFINITY, 7))).toEqual(timerKeys(sorted.slice(0, 7)));
        expect(await store.nextDeadline()).toBe(0);
        expect((await store.agentStats(['alice', 'bob'])).get('bob')).toMatchObject({ timers: 250 });
      });
    });

    describe('close', () => {
      it('every method rejects with StoreError after close', async () => {
        await store.createAgent(agent('alice'));
        await store.append([msg('alice', 'm1')]);
        await store.close();
        open = false;
        const calls: [string, () => Promise<unknown>][] = [
          ['createAgent', () => store.createAgent(agent('bob'))],
          ['getAgent', () => store.getAgent('alice')],
          ['getAgents', () => store.getAgents(['alice'])],
          ['listAgents', () => store.listAgents()],
          ['agentStats', () => store.agentStats(['alice'])],
          ['destroyAgent', () => store.destroyAgent('alice')],
          ['append', () => store.append([msg('alice', 'm2')])],
          ['pending', () => store.pending('alice')],
          ['mailboxSize', () => store.mailboxSize('alice')],
          ['beginTurn', () => store.beginTurn('alice', 1, 0)],
          ['commitTurn', () => store.commitTurn(turn('alice', 1))],
          ['loadSnapshot', () => store.loadSnapshot('alice')],
          ['note', () => store.note('alice', { kind: 'note', note: 'loaded', at: 0 })],
          ['rollout', () => store.rollout('alice')],
          ['agentsWithPending', () => store.agentsWithPending()],
          ['turnsInFlight', () => store.turnsInFlight()],
          ['dueTimers', () => store.dueTimers(0, 10)],
          ['nextDeadline', () => store.nextDeadline()],
          ['timers', () => store.timers('alice')],
          ['batch', () => store.batch([{ op: 'note', agentId: 'alice', entry: { kind: 'note', note: 'loaded', at: 0 } }])],
          ['acquire', () => store.acquire(owner(1))],
          ['close', () => store.close()],
        ];
        for (const [method, call] of calls) {
          const error = await call().then(
            () => new Error(`${method} resolved after close`),
            (e: unknown) => e,
          );
          expect(error, method).toBeInstanceOf(StoreError);
          expect(error, method).toMatchObject({ code: 'STORE_ERROR' });
        }
      });
    });

    if (reopen !== undefined) {
      describe('durability', () => {
        it('agents, mailboxes, seqs, snapshots, rollouts and turns in flight survive reopen', async () => {
          await store.createAgent(agent('alice', { input: { x: 1 } }));
          await store.createAgent(agent('kid', { parent: 'alice' }));
          await store.append([msg('alice', 'm1'), msg('alice', 'm2'), msg('alice', 'm3'), msg('kid', 'k1')]);
          await store.commitTurn(turn('alice', 1, { snapshot: { count: 1 }, outputs: ['o'] }));
          await store.beginTurn('alice', 2, 3_100);
          await store.note('kid', { kind: 'note', note: 'evicted', at: 4_000 });
          const before = await observe(store, ['alice', 'kid']);

          open = false;
          store = await reopen(store);
          open = true;

          expect(await observe(store, ['alice', 'kid'])).toEqual(before);
          // What a batch wrote survives too.
          const results = await store.batch([
            { op: 'commitTurn', commit: turn('alice', 2, { snapshot: { count: 2 } }) },
            { op: 'createAgent', record: agent('carol') },
            { op: 'append', request: msg('carol', 'c1') },
          ]);
          expect(results.every((r) => r.ok)).toBe(true);
          const afterBatch = await observe(store, ['alice', 'kid', 'carol']);
          open = false;
          store = await reopen(store);
          open = true;
          expect(await observe(store, ['alice', 'kid', 'carol'])).toEqual(afterBatch);
          // Idempotency and seq counters survived too.
          expect(await store.append([msg('alice', 'm1'), msg('alice', 'm4')])).toEqual([
            { agentId: 'alice', messageId: 'm1', seq: 1, duplicate: true },
            { agentId: 'alice', messageId: 'm4', seq: 4, duplicate: false },
          ]);
          await expectError(store.commitTurn(turn('alice', 1)), StoreError, 'STORE_ERROR');
        });

        it('timers survive reopen, with their counts, and fire once afterwards', async () => {
          await store.createAgent(agent('alice'));
          await store.createAgent(agent('bob'));
          await store.batch([
            { op: 'schedule', timer: timer('alice', 'r1', 100, { message: { type: 'remind', deep: { n: 1.5 } } }) },
            { op: 'schedule', timer: timer('bob', 'r2', 50) },
          ]);
          await store.batch([{ op: 'fire', agentId: 'bob', key: 'r2', at: 50, messageId: 'f0', firedAt: 60 }]);
          const before = {
            due: await store.dueTimers(1_000, 10),
            next: await store.nextDeadline(),
            stats: await store.agentStats(['alice', 'bob']),
          };
          open = false;
          store = await reopen(store);
          open = true;
          expect({
            due: await store.dueTimers(1_000, 10),
            next: await store.nextDeadline(),
            stats: await store.agentStats(['alice', 'bob']),
          }).toEqual(before);
          expect(before.due).toEqual([timer('alice', 'r1', 100, { message: { type: 'remind', deep: { n: 1.5 } } })]);
          const fire = (messageId: string): StoreOp => ({ op: 'fire', agentId: 'alice', key: 'r1', at: 100, messageId, firedAt: 200 });
          expect((await store.batch([fire('f1')]))[0]).toEqual({ ok: true, value: { agentId: 'alice', messageId: 'f1', seq: 1, duplicate: false } });
          expect((await store.batch([fire('f2')]))[0]).toEqual({ ok: true, value: null });
          expect((await store.batch([{ op: 'fire', agentId: 'bob', key: 'r2', at: 50, messageId: 'f3', firedAt: 70 }]))[0]).toEqual({ ok: true, value: null });
        });
      });
    }
  });
}
