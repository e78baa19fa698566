/**
 * sqliteStore and bounded history (rules 5, 11 and 12 of Store.ts), where the conformance
 * suite cannot look: the rows in the file (retention deletes them; a destroyed agent's go
 * in background steps), schema version 3 migrated from version 2 with its counters
 * backfilled, and read-only stores on either version.
 */
import fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { AgentRecord, AppendRequest, CommitTurn, Retention, Store, StoreOp } from '../../src/store/Store.js';
import { SCHEMA_VERSION } from '../../src/store/sqliteSchema.js';
import { setSqlitePurgeBatch, sqlitePurged } from '../../src/store/sqliteStore.js';
import { sqliteFiles, agent, withRaw, NO_ACTIVITY, sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const { dbFile, track } = sqliteFiles('history');

function msg(agentId: string, messageId: string, at = 2_000): AppendRequest {
  return { agentId, messageId, message: { type: 'inc' }, at };
}

function turn(agentId: string, seq: number, fields: Partial<CommitTurn> = {}): CommitTurn {
  return { agentId, seq, outcome: 'done', at: 3_000, durationMs: 5, ...fields };
}

/** Turns `from`..`to` of the agent in one batch: each message appended, begun, committed (snapshot, output). */
async function turns(store: Store, id: string, from: number, to: number, retain?: Retention): Promise<void> {
  const ops: StoreOp[] = [];
  for (let seq = from; seq <= to; seq++) {
    ops.push({ op: 'append', request: msg(id, `m${seq}`, seq * 10) });
    ops.push({ op: 'beginTurn', agentId: id, seq, at: seq * 10 + 1 });
    const commit = turn(id, seq, { snapshot: { seq }, outputs: [`out ${seq}`], at: seq * 10 + 2 });
    ops.push({ op: 'commitTurn', commit: retain === undefined ? commit : { ...commit, retain } });
  }
  const results = await store.batch(ops);
  expect(results.filter((r) => !r.ok)).toEqual([]);
}

/** The agent's rows in each table, counted on a raw connection. */
function rowsOf(file: string, id: string): { agents: number; messages: number; rollout: number; snapshots: number } {
  return withRaw(file, (db) => {
    const count = (table: string, column: string) =>
      db.prepare(`SELECT count(*) FROM ${table} WHERE ${column} = ?`).pluck().get(id) as number;
    return {
      agents: count('agents', 'id'),
      messages: count('messages', 'agent_id'),
      rollout: count('rollout', 'agent_id'),
      snapshots: count('snapshots', 'agent_id'),
    };
  });
}

describe('sqliteStore: retention keeps the file bounded', () => {
  it('deletes the rollout entries and message rows older than the window, and the file stops growing', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    const usedPages = () =>
      withRaw(file, (db) => (db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number));
    for (let from = 1; from <= 1_500; from += 100) await turns(store, 'alice', from, from + 99, { keepTurns: 100 });
    const halfway = usedPages();
    for (let from = 1_501; from <= 3_000; from += 100) await turns(store, 'alice', from, from + 99, { keepTurns: 100 });
    await store.append([msg('alice', 'pending')]);
    // The window: 100 turns of 5 entries (and the pending message's); 100 consumed message rows and the pending one.
    expect(rowsOf(file, 'alice')).toEqual({ agents: 1, messages: 101, rollout: 501, snapshots: 1 });
    expect(usedPages()).toBeLessThanOrEqual(halfway + 2);
    expect((await store.agentStats(['alice'])).get('alice')).toEqual({
      turns: 3_000,
      failed: 0,
      crashed: 0,
      interrupted: 0,
      mailbox: 1,
      timers: 0,
      lastActiveAt: 2_000,
    });
  });
});

describe('sqliteStore: destroying a long history in background steps', () => {
  it('hides the agent at once (for a reader too), deletes its rows step by step, and a short one at once', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    setSqlitePurgeBatch(store, 10);
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob'));
    await turns(store, 'alice', 1, 100);
    await store.append([msg('alice', 'left'), msg('bob', 'b1')]);
    await store.beginTurn('alice', 101, 5_000);

    expect(await store.destroyAgent('alice')).toBe(true);
    expect(await store.destroyAgent('bob')).toBe(true);

    // No turn of the event loop has passed: alice's rows are mostly there, bob's (a few) are gone.
    expect(rowsOf(file, 'bob')).toEqual({ agents: 0, messages: 0, rollout: 0, snapshots: 0 });
    const left = rowsOf(file, 'alice');
    expect(left).toMatchObject({ agents: 1, snapshots: 0 });
    expect(left.rollout).toBe(502 - 10);
    expect(left.messages).toBe(101 - 10);
    const reader = track(sqliteStore(file, { readonly: true }));
    for (const s of [store, reader]) {
      expect(await s.getAgent('alice')).toBeNull();
      expect(await s.listAgents()).toEqual({ agents: [], cursor: null });
      expect(await s.agentStats(['alice'])).toEqual(new Map());
      expect(await s.pending('alice')).toEqual([]);
      expect(await s.rollout('alice')).toEqual([]);
      expect(await s.agentsWithPending()).toEqual([]);
      expect(await s.turnsInFlight()).toEqual([]);
    }

    await sqlitePurged(store);
    expect(rowsOf(file, 'alice')).toEqual({ agents: 0, messages: 0, rollout: 0, snapshots: 0 });
  });

  it('spawning the id again before its rows are gone deletes what is left first, in the same transaction', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    setSqlitePurgeBatch(store, 10);
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('carol'));
    await turns(store, 'alice', 1, 50);
    await turns(store, 'carol', 1, 50);
    await store.destroyAgent('alice');
    await store.destroyAgent('carol');

    await store.createAgent(agent('alice', { type: 'new' }));
    expect(rowsOf(file, 'alice')).toEqual({ agents: 1, messages: 0, rollout: 0, snapshots: 0 });
    expect(await store.append([msg('alice', 'm1')])).toEqual([{ agentId: 'alice', messageId: 'm1', seq: 1, duplicate: false }]);
    expect(await store.rollout('alice')).toHaveLength(1);

    await sqlitePurged(store);
    expect(rowsOf(file, 'carol')).toEqual({ agents: 0, messages: 0, rollout: 0, snapshots: 0 });
    expect(rowsOf(file, 'alice')).toEqual({ agents: 1, messages: 1, rollout: 1, snapshots: 0 });
  });

  it('a store closed before its rows are gone leaves them; the next store opened for writing deletes them', async () => {
    const file = dbFile();
    const first = sqliteStore(file);
    setSqlitePurgeBatch(first, 10);
    await first.createAgent(agent('alice'));
    await turns(first, 'alice', 1, 50);
    await first.destroyAgent('alice');
    await first.close();
    await sqlitePurged(first);
    expect(rowsOf(file, 'alice').rollout).toBeGreaterThan(0);

    // A reader neither deletes them nor shows them.
    const reader = track(sqliteStore(file, { readonly: true }));
    await sqlitePurged(reader);
    expect(await reader.getAgent('alice')).toBeNull();
    expect(rowsOf(file, 'alice').rollout).toBeGreaterThan(0);

    const second = track(sqliteStore(file));
    await sqlitePurged(second);
    expect(rowsOf(file, 'alice')).toEqual({ agents: 0, messages: 0, rollout: 0, snapshots: 0 });
  });
});

describe('sqliteStore: retention and a rollout entry that is not valid JSON (a manual edit)', () => {
  it('prunes past it: the commits of that agent, and the others in their batch, go on', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob'));
    await turns(store, 'alice', 1, 3);
    withRaw(file, (db) => db.prepare("UPDATE rollout SET entry = 'x' WHERE agent_id = 'alice' AND turn = 3").run());
    const ops: StoreOp[] = [];
    for (const id of ['alice', 'bob']) {
      ops.push({ op: 'append', request: msg(id, `${id}-next`) });
      ops.push({ op: 'commitTurn', commit: turn(id, id === 'alice' ? 4 : 1, { retain: { keepTurns: 1 } }) });
    }
    expect((await store.batch(ops)).map((r) => r.ok)).toEqual([true, true, true, true]);
    expect((await store.rollout('alice')).map((e) => e.kind)).toEqual(['accepted', 'turn.finished']);
    expect((await store.agentStats(['alice'])).get('alice')).toMatchObject({ turns: 4 });
  });
});

describe('sqliteStore: schema version 3 from version 2', () => {
  /** What a version 2 database held: the tables and columns of before, the counters (and the timers of version 4) not kept. */
  function downgradeToVersion2(file: string): void {
    withRaw(file, (db) => {
      db.exec(`
        DROP TABLE timers; ALTER TABLE agents DROP COLUMN timers;
        DROP INDEX rollout_turns; DROP INDEX agents_pinned; DROP INDEX agents_with_mail; DROP INDEX agents_destroying;
        ALTER TABLE agents DROP COLUMN turns; ALTER TABLE agents DROP COLUMN failed; ALTER TABLE agents DROP COLUMN crashed;
        ALTER TABLE agents DROP COLUMN interrupted; ALTER TABLE agents DROP COLUMN mailbox;
        ALTER TABLE agents DROP COLUMN last_active_at; ALTER TABLE agents DROP COLUMN destroying;
        ALTER TABLE rollout DROP COLUMN turn; ALTER TABLE messages DROP COLUMN turn;
      `);
      db.pragma('user_version = 2');
    });
  }

  /** A database with a bit of everything, written by this version, then taken back to version 2. */
  async function version2(): Promise<{ file: string; expected: Awaited<ReturnType<typeof everything>> }> {
    const file = dbFile();
    const store = sqliteStore(file);
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob', { pinned: true }));
    await store.createAgent(agent('carol', { parent: 'alice' }));
    await turns(store, 'alice', 1, 6);
    await store.append([msg('alice', 'm7', 70), msg('alice', 'm8', 80), msg('alice', 'm9', 90), msg('alice', 'm10', 100)]);
    await store.commitTurn(turn('alice', 7, { outcome: 'failed', error: 'boom', at: 71 }));
    await store.commitTurn(turn('alice', 8, { outcome: 'interrupted', at: 81 }));
    await store.beginTurn('alice', 9, 91);
    await store.commitTurn(turn('alice', 9, { outcome: 'crashed', at: 92 }));
    await store.beginTurn('alice', 10, 101);
    await store.append([msg('bob', 'b1', 5)]);
    await store.note('carol', { kind: 'note', note: 'evicted', reason: 'idle', at: 7 });
    const expected = await everything(store);
    expect(expected.stats.get('alice')).toEqual({ turns: 9, failed: 1, crashed: 1, interrupted: 1, mailbox: 1, timers: 0, lastActiveAt: 101 });
    await store.close();
    downgradeToVersion2(file);
    return { file, expected };
  }

  /** What the reads say about the three agents. */
  async function everything(store: Store) {
    const ids = ['alice', 'bob', 'carol'];
    const names = async (filters: Parameters<Store['listAgents']>[0]) => (await store.listAgents(filters)).agents.map((a) => a.id);
    return {
      stats: await store.agentStats(ids),
      withMail: await names({ hasMail: true }),
      withoutMail: await names({ hasMail: false }),
      pinned: await names({ pinned: true }),
      notPinned: await names({ pinned: false, limit: 1 }),
      mailboxes: await Promise.all(ids.map((id) => store.mailboxSize(id))),
      rollouts: await Promise.all(ids.map((id) => store.rollout(id))),
      pending: await Promise.all(ids.map((id) => store.pending(id))),
      inFlight: await store.turnsInFlight(),
      withPending: (await store.agentsWithPending()).sort(),
    };
  }

  it('a read-only store reads version 2 as it is, counting from the rollout, and leaves the file untouched', async () => {
    const { file, expected } = await version2();
    const before = fs.readFileSync(file);
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await everything(reader)).toEqual(expected);
    await reader.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('a rollout entry that is not valid JSON counts for nothing in the migration, rather than failing it', async () => {
    const { file } = await version2();
    withRaw(file, (db) => db.prepare("UPDATE rollout SET entry = 'x' WHERE agent_id = 'carol'").run());
    const writer = track(sqliteStore(file));
    expect((await writer.agentStats(['carol'])).get('carol')).toEqual(NO_ACTIVITY);
    expect((await writer.agentStats(['alice'])).get('alice')).toMatchObject({ turns: 9, lastActiveAt: 101 });
  });

  it('a writer migrates it, backfilling the counters and turn numbers, and retention then works on the old rows', async () => {
    const { file, expected } = await version2();
    // A reader opened before the migration moves to the counters once it happened.
    const reader = track(sqliteStore(file, { readonly: true }));
    const writer = track(sqliteStore(file));
    expect(withRaw(file, (db) => db.pragma('user_version', { simple: true }))).toBe(SCHEMA_VERSION);
    expect(await everything(writer)).toEqual(expected);
    expect(await everything(reader)).toEqual(expected);

    // Turn numbers go on from the backfilled ones: keepTurns 2 keeps turns 9 and 10.
    const before = await writer.rollout('alice');
    const lastBefore = before.findIndex((e) => e.kind === 'turn.finished' && e.seq === 8);
    await writer.commitTurn(turn('alice', 10, { at: 110, retain: { keepTurns: 2 } }));
    expect(await writer.rollout('alice')).toEqual([
      ...before.slice(lastBefore + 1),
      { kind: 'turn.finished', seq: 10, outcome: 'done', at: 110, durationMs: 5 },
    ]);
    // The ids of the messages consumed before the window are forgotten, not the others'.
    expect((await writer.append([msg('alice', 'm9'), msg('alice', 'm8')])).map((r) => [r.seq, r.duplicate])).toEqual([
      [9, true],
      [11, false],
    ]);
    const counters = { turns: 10, failed: 1, crashed: 1, interrupted: 1, mailbox: 1, timers: 0, lastActiveAt: 2_000 };
    expect((await writer.agentStats(['alice'])).get('alice')).toEqual(counters);
    expect((await reader.agentStats(['alice'])).get('alice')).toEqual(counters);
    expect(rowsOf(file, 'alice').messages).toBe(3);
  });
});
