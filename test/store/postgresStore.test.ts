import { afterEach, describe, expect, it } from 'vitest';
import { FencedError, StoreError } from '../../src/errors.js';
import { postgresStore } from '../../src/store/postgres/postgresStore.js';
import type { Store } from '../../src/store/Store.js';
import { describeStore } from './describeStore.js';
import { pgTest } from './pgTest.js';

const pg = await pgTest('pgconf');

const schemas = new WeakMap<Store, string>();

function freshStore(schema = pg.schema()): Store {
  const store = postgresStore({ connectionString: pg.url, schema, shards: 16 });
  schemas.set(store, schema);
  return store;
}

describe.skipIf(!pg.available)('postgresStore', () => {
  describeStore('postgresStore', () => freshStore(), {
    reopen: async (store) => {
      const schema = schemas.get(store)!;
      await store.close();
      return freshStore(schema);
    },
  });
});

const owner = (pid: number) => ({ pid, host: 'host-pg', since: Date.UTC(2026, 0, 2) });
const agent = (id: string) => ({ id, type: 'counter', parent: null, pinned: false, input: { start: 0 }, createdAt: 1_000 });
const msg = (agentId: string, messageId: string, message: Record<string, unknown> = {}) => ({
  agentId,
  messageId,
  message: { type: 'inc', ...message },
  at: 2_000,
});

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const start = performance.now();
  while (!(await predicate())) {
    if (performance.now() - start > timeoutMs) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Everything of a schema that a refused open must leave as it was. */
async function stateOf(schema: string) {
  const tables = await pg.query<{ name: string }>(
    "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1",
    [schema],
  );
  const meta = await pg.query(`SELECT schema_version, shards FROM "${schema}".meta`);
  const agents = await pg.query(`SELECT id, type FROM "${schema}".agents ORDER BY id`);
  return { tables: tables.rows.map((r) => r.name), meta: meta.rows, agents: agents.rows };
}

describe.skipIf(!pg.available)('postgresStore on PostgreSQL', () => {
  const open: Store[] = [];
  function track(store: Store): Store {
    open.push(store);
    return store;
  }
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close().catch(() => {});
  });

  it('refuses a schema written by a newer residency, and leaves it untouched', async () => {
    const schema = pg.schema();
    const first = freshStore(schema);
    await first.createAgent(agent('alice'));
    await first.close();
    await pg.query(`UPDATE "${schema}".meta SET schema_version = 99`);
    const before = await stateOf(schema);
    const store = track(freshStore(schema));
    const error = await store.getAgent('alice').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/newer version of residency \(schema version 99; this version reads up to 1\)/);
    expect((error as Error).message).toContain(`"${schema}"`);
    await expect(store.createAgent(agent('bob'))).rejects.toBeInstanceOf(StoreError);
    expect(await stateOf(schema)).toEqual(before);
  });

  it('refuses another shard count than the schema was made with, naming both', async () => {
    const schema = pg.schema();
    const first = freshStore(schema);
    await first.createAgent(agent('alice'));
    await first.close();
    const before = await stateOf(schema);
    const store = track(postgresStore({ connectionString: pg.url, schema, shards: 8 }));
    const error = await store.listAgents().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/made with 16 shards.*shards: 8/);
    expect(await stateOf(schema)).toEqual(before);
  });

  it("refuses a schema holding another application's tables", async () => {
    const schema = pg.schema();
    await pg.query(`CREATE SCHEMA "${schema}"`);
    await pg.query(`CREATE TABLE "${schema}".orders (id int)`);
    const store = track(freshStore(schema));
    await expect(store.getAgent('a')).rejects.toThrow(/another application's tables \(orders\)/);
  });

  it('two stores opening a new schema at once migrate it once', async () => {
    const schema = pg.schema();
    const [a, b] = [track(freshStore(schema)), track(freshStore(schema))];
    await Promise.all([a.createAgent(agent('a')), b.createAgent(agent('b'))]);
    expect((await a.listAgents()).agents.map((r) => r.id)).toEqual(['a', 'b']);
    expect((await pg.query(`SELECT schema_version, shards FROM "${schema}".meta`)).rows).toEqual([{ schema_version: 1, shards: 16 }]);
  });

  it('refuses bad options and schema names with a TypeError', async () => {
    const bad: unknown[] = [
      undefined,
      null,
      '',
      {},
      { connectionString: 7 },
      { pool: {} },
      ...['Residency', 'a-b', '1abc', 'x"; DROP SCHEMA public; --', 'a'.repeat(41), '', 'é'].map((schema) => ({ connectionString: pg.url, schema })),
      ...[0, 1.5, 65_537, '16', -1].map((shards) => ({ connectionString: pg.url, shards })),
      ...[99, 0, 150.5, '10000'].map((leaseTtl) => ({ connectionString: pg.url, leaseTtl })),
    ];
    for (const options of bad) {
      expect(() => postgresStore(options as never), JSON.stringify(options)).toThrow(TypeError);
    }
    // The limits themselves pass (a store made is migrated at once: each gets a schema of its own).
    const longest = `t_pgconf_${process.pid}_`.padEnd(40, 'x');
    const underscore = `_x9_${process.pid}`;
    try {
      for (const options of [{ schema: longest }, { schema: underscore }, { shards: 1 }, { shards: 65_536 }, { leaseTtl: 100 }]) {
        const store = track(postgresStore({ connectionString: pg.url, schema: pg.schema(), ...options }));
        await store.listAgents();
      }
    } finally {
      for (const store of open.splice(0)) await store.close();
      for (const schema of [longest, underscore]) await pg.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it('a pool given in the options is used and not ended by close()', async () => {
    const { default: Pg } = await import('pg');
    const pool = new Pg.Pool({ connectionString: pg.url, max: 3 });
    pool.on('error', () => {});
    try {
      const store = postgresStore({ pool, schema: pg.schema(), shards: 16 });
      await store.createAgent(agent('alice'));
      await store.close();
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('stores ids, keys and values full of quotes, backslashes and unicode as data', async () => {
    const store = track(freshStore());
    const ids = [`it's "quoted"`, 'back\\slash\\', "'; DROP TABLE agents; --", 'ünï 😀 中文', '$1 %s \\x00 \\u0000', 'a\nb\tc'];
    for (const id of ids) await store.createAgent({ ...agent(id), input: { id, nested: [`${id}'"\\`] } });
    expect((await store.listAgents()).agents.map((a) => a.id)).toEqual([...ids].sort());
    for (const id of ids) {
      expect(await store.getAgent(id)).toEqual({ ...agent(id), input: { id, nested: [`${id}'"\\`] } });
      const text = `${id} says "hi" \\ '😀' \\u0000 (escaped, not NUL)`;
      expect(await store.append([msg(id, `m-${id}`, { text })])).toEqual([{ agentId: id, messageId: `m-${id}`, seq: 1, duplicate: false }]);
      expect((await store.pending(id))[0]).toEqual({ agentId: id, seq: 1, messageId: `m-${id}`, message: { type: 'inc', text }, at: 2_000 });
      await store.batch([{ op: 'schedule', timer: { agentId: id, key: `k'${id}`, at: 5, message: { type: 'tick', text } } }]);
      expect(await store.timers(id)).toEqual([{ agentId: id, key: `k'${id}`, at: 5, message: { type: 'tick', text } }]);
      await store.commitTurn({ agentId: id, seq: 1, outcome: 'done', at: 3_000, durationMs: 1, snapshot: { text }, outputs: [text] });
      expect(await store.loadSnapshot(id)).toEqual({ text });
      expect((await store.rollout(id)).find((e) => e.kind === 'output')).toMatchObject({ output: text });
    }
    // What PostgreSQL cannot store (U+0000, a lone surrogate) fails its own op with a StoreError.
    const [nul, surrogate, fine] = await store.batch([
      { op: 'append', request: msg(ids[0]!, 'nul', { text: 'a\u0000b' }) },
      { op: 'append', request: msg(ids[0]!, 'lone', { text: 'a\ud800b' }) },
      { op: 'append', request: msg(ids[0]!, 'fine', { text: 'a\\u0000b \ud83d\ude00' }) },
    ]);
    expect(nul).toMatchObject({ ok: false, error: { code: 'STORE_ERROR' } });
    expect((nul as { error: Error }).error.message).toMatch(/U\+0000/);
    expect(surrogate).toMatchObject({ ok: false, error: { code: 'STORE_ERROR' } });
    expect(fine).toMatchObject({ ok: true, value: { seq: 2, duplicate: false } });
    await expect(store.createAgent(agent('nul\u0000id'))).rejects.toBeInstanceOf(StoreError);
  });

  it('survives its connections being terminated: no crash, the next calls work or fail retryable', async () => {
    const schema = pg.schema();
    const store = track(freshStore(schema));
    await store.createAgent(agent('alice'));
    await Promise.all([store.getAgent('alice'), store.mailboxSize('alice'), store.pending('alice')]);
    const killed = await pg.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() AND query LIKE $1`,
      [`%"${schema}"%`],
    );
    expect(killed.rowCount).toBeGreaterThan(0);
    // The idle connections learn of it (their 'error' events must not crash the process).
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 3; i++) {
      try {
        await store.append([msg('alice', `m${i}`)]);
      } catch (error) {
        expect(error).toBeInstanceOf(StoreError);
        expect(error).toMatchObject({ retryable: true });
      }
    }
    await store.append([msg('alice', 'after')]);
    expect((await store.pending('alice')).map((m) => m.messageId)).toContain('after');
  });

  it('stores replyTo with the message, and the reply with the commit, for takeReply to take once', async () => {
    const store = track(freshStore());
    await store.createAgent(agent('alice'));
    await store.append([{ ...msg('alice', 'ask'), replyTo: 'member-x' }, msg('alice', 'tell')]);
    const pending = await store.pending('alice');
    expect(pending[0]).toMatchObject({ seq: 1, replyTo: 'member-x' });
    expect('replyTo' in pending[1]!).toBe(false);
    expect(await store.cluster!.takeReply('alice', 1)).toBeNull();
    const reply = { outcome: 'done' as const, state: { n: 1 }, outputs: ['o'] };
    await store.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', at: 3_000, durationMs: 1, reply });
    // A reply for a message without replyTo is not stored.
    await store.commitTurn({ agentId: 'alice', seq: 2, outcome: 'done', at: 3_000, durationMs: 1, reply });
    expect(await store.cluster!.takeReply('alice', 1)).toEqual(reply);
    expect(await store.cluster!.takeReply('alice', 1)).toBeNull();
    expect(await store.cluster!.takeReply('alice', 2)).toBeNull();
  });

  it('answers the same commit written again (its acknowledgement lost with the connection) with what it did, changing nothing; any other commit of a consumed message still fails', async () => {
    const store = track(freshStore());
    await store.acquire({ pid: 1, host: 'h', since: 0 });
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob'));
    await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
    const commit = { agentId: 'alice', seq: 1, outcome: 'done' as const, at: 3_000, durationMs: 7, snapshot: { n: 1 }, outbox: [msg('bob', 'out1')], next: { seq: 2, at: 3_000 } };
    const first = await store.batch([{ op: 'commitTurn', commit }]);
    expect(first[0]).toEqual({ ok: true, value: { outbox: [{ agentId: 'bob', messageId: 'out1', seq: 1, duplicate: false }] } });
    const before = { stats: await store.agentStats(['alice', 'bob']), rollout: await store.rollout('alice'), bob: await store.pending('bob') };
    // The retry of the whole batch, as the write buffer does after a dropped connection.
    expect(await store.batch([{ op: 'commitTurn', commit }])).toEqual(first);
    expect(await store.commitTurn(commit)).toEqual((first[0] as { value: unknown }).value);
    expect({ stats: await store.agentStats(['alice', 'bob']), rollout: await store.rollout('alice'), bob: await store.pending('bob') }).toEqual(before);
    // Another commit of the consumed message (another time, outcome or duration) is refused as before.
    await expect(store.commitTurn({ ...commit, at: 3_001 })).rejects.toBeInstanceOf(StoreError);
    await expect(store.commitTurn({ ...commit, outcome: 'failed' })).rejects.toBeInstanceOf(StoreError);
  });

  it('two processes writing to the same agents in opposite orders never deadlock (counters rows locked in id order)', async () => {
    const schema = pg.schema();
    const one = track(freshStore(schema));
    const two = track(freshStore(schema));
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const id of ids) await one.createAgent(agent(id));
    const errors: unknown[] = [];
    await Promise.all(
      [one, two].map(async (store, k) => {
        for (let i = 0; i < 40; i++) {
          const order = k === 0 ? ids : [...ids].reverse();
          await store.batch(order.map((id) => ({ op: 'append' as const, request: msg(id, `${k}-${i}-${id}`) }))).catch((e: unknown) => errors.push(e));
        }
      }),
    );
    expect(errors).toEqual([]);
    expect((await one.agentStats(ids)).get('a')?.mailbox).toBe(80);
  });

  it('sweeps answers nobody will take (for members no longer live) when a member acquires; keeps those of live members', async () => {
    const schema = pg.schema();
    const store = track(freshStore(schema));
    await store.createAgent(agent('alice'));
    await store.append([{ ...msg('alice', 'a1'), replyTo: 'gone' }, { ...msg('alice', 'a2'), replyTo: 'placeholder' }]);
    const live = track(freshStore(schema));
    await live.acquire({ pid: 1, host: 'h', since: 0 });
    const liveId = live.cluster!.memberId!;
    // The second answer is for the live member; the first for a member that never was (or died).
    await pg.query(`update "${schema}".messages set reply_to = $1 where agent_id = 'alice' and seq = 2`, [liveId]);
    const reply = { outcome: 'done' as const, state: { n: 1 }, outputs: [] };
    await store.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', at: 3_000, durationMs: 1, reply });
    await store.commitTurn({ agentId: 'alice', seq: 2, outcome: 'done', at: 3_000, durationMs: 1, reply });
    expect((await pg.query(`select seq from "${schema}".replies order by seq`)).rows.map((r) => Number(r.seq))).toEqual([1, 2]);
    const other = track(freshStore(schema));
    await other.acquire({ pid: 2, host: 'h', since: 0 });
    let left: number[] = [];
    for (let i = 0; i < 200; i++) {
      left = (await pg.query(`select seq from "${schema}".replies order by seq`)).rows.map((r) => Number(r.seq));
      if (left.length < 2) break;
      await new Promise<void>((r) => setTimeout(r, 10));
    }
    expect(left).toEqual([2]);
    expect(await live.cluster!.takeReply('alice', 2)).toEqual(reply);
  });

  it('fences per shard: an op on a shard taken over gets FencedError in its slot, the rest of the batch commits', async () => {
    const schema = pg.schema();
    const a = track(freshStore(schema));
    const b = track(freshStore(schema));
    const cluster = a.cluster!;
    // Two agents on two shards.
    const x = 'agent-x';
    let y = 'agent-y';
    for (let i = 0; cluster.shardOf(y) === cluster.shardOf(x); i++) y = `agent-y${i}`;
    const events: unknown[] = [];
    cluster.subscribe((event) => events.push(event));
    expect(cluster.memberId).toBeNull();
    const { epoch } = await a.acquire(owner(1));
    expect(cluster.memberId).toBe(epoch.toString(36));
    expect(cluster.owned()).toHaveLength(16);
    expect(cluster.owns(x)).toBe(true);
    for (const id of [x, y]) await a.createAgent(agent(id));
    await a.append([msg(x, 'm1'), msg(x, 'm2'), msg(y, 'm1'), msg(y, 'm2')]);

    // Another member took x's shard (its epoch moved on).
    await pg.query(`UPDATE "${schema}".shard_leases SET epoch = epoch + 1, owner = 'other' WHERE shard = $1`, [cluster.shardOf(x)]);
    const results = await a.batch([
      { op: 'beginTurn', agentId: x, seq: 1, at: 3_000 },
      { op: 'beginTurn', agentId: y, seq: 1, at: 3_000 },
      { op: 'append', request: msg(x, 'client-write') },
    ]);
    expect(results[0]).toMatchObject({ ok: false, error: { code: 'FENCED', agentId: x } });
    expect((results[0] as { error: Error }).error).toBeInstanceOf(FencedError);
    expect(results[1]).toEqual({ ok: true, value: undefined });
    expect(results[2]).toMatchObject({ ok: true, value: { seq: 3, duplicate: false } });
    expect(events).toContainEqual({ type: 'lost', shards: [cluster.shardOf(x)], reason: 'fenced' });
    expect(cluster.owns(x)).toBe(false);
    // The single methods reject with it and write nothing; the reads of the owner skip the shard.
    await expect(a.commitTurn({ agentId: x, seq: 1, outcome: 'done', at: 3_100, durationMs: 1 })).rejects.toBeInstanceOf(FencedError);
    await expect(a.note(x, { kind: 'note', note: 'loaded', at: 3_200 })).rejects.toBeInstanceOf(FencedError);
    expect(await a.turnsInFlight()).toEqual([{ agentId: y, seq: 1 }]);
    expect(await a.agentsWithPending()).toEqual([y]);
    expect((await b.agentStats([x])).get(x)).toMatchObject({ turns: 0, mailbox: 3 });
    // A store never acquired writes unfenced, and reads every shard.
    await b.beginTurn(x, 1, 3_300);
    expect((await b.turnsInFlight()).map((t) => t.agentId).sort()).toEqual([x, y].sort());
    await a.commitTurn({ agentId: y, seq: 1, outcome: 'done', at: 3_400, durationMs: 1 });
  });

  it('a member hears of mail for its shards from another store (NOTIFY), once the mailbox stops being empty', async () => {
    const schema = pg.schema();
    const a = track(freshStore(schema));
    const b = track(freshStore(schema));
    const events: { type: string; agentIds?: string[] }[] = [];
    a.cluster!.subscribe((event) => events.push(event as never));
    await a.acquire(owner(2));
    await b.createAgent(agent('alice'));
    await b.append([msg('alice', 'm1')]);
    await waitFor('a mail hint', () => events.some((e) => e.type === 'mail' && e.agentIds?.includes('alice')));
    await b.destroyAgent('alice');
    await waitFor('a destroyed hint', () => events.some((e) => e.type === 'destroyed' && e.agentIds?.includes('alice')));
  });
});

describe.skipIf(!pg.available)('postgresStore cluster on PostgreSQL', () => {
  it('after cluster.release() the member owns nothing: owner writes are fenced, client writes and reads go on', async () => {
    const store = freshStore();
    try {
      await store.createAgent(agent('alice'));
      await store.append([msg('alice', 'm1')]);
      await store.acquire(owner(3));
      expect(store.cluster!.owns('alice')).toBe(true);
      expect(await store.agentsWithPending()).toEqual(['alice']);
      await store.cluster!.release();
      expect(store.cluster!.owned()).toEqual([]);
      await expect(store.beginTurn('alice', 1, 3_000)).rejects.toBeInstanceOf(FencedError);
      expect(await store.append([msg('alice', 'm2')])).toMatchObject([{ seq: 2 }]);
      expect(await store.agentsWithPending()).toEqual([]);
      expect(await store.cluster!.withPending([store.cluster!.shardOf('alice')])).toEqual(['alice']);
      expect((await store.cluster!.view()).shards).toBe(16);
    } finally {
      await store.close();
    }
  });
});
