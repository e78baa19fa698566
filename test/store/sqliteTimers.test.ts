/**
 * sqliteStore and durable timers (rule 13 of Store.ts), where the conformance suite cannot
 * look: the rows in the file and the deadline index the reads go through, schema version 4
 * migrated from version 3, read-only stores on either version, fencing of the timer ops,
 * a destroyed agent with a long history, and a timer whose message was damaged.
 */
import fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FencedError, StoreCorruptionError, StoreError } from '../../src/errors.js';
import type { AgentRecord, Store, StoreOp, TimerRecord } from '../../src/store/Store.js';
import { SCHEMA_VERSION, TIMED_FROM } from '../../src/store/sqliteSchema.js';
import { setSqlitePurgeBatch, sqlitePurged } from '../../src/store/sqliteStore.js';
import { sqliteFiles, withRaw, sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const { dbFile, track } = sqliteFiles('timers');

function agent(id: string): AgentRecord {
  return { id, type: 'counter', parent: null, pinned: false, input: null, createdAt: 1_000 };
}

function timer(agentId: string, key: string, at: number): TimerRecord {
  return { agentId, key, at, message: { type: 'remind', key } };
}

async function ok(store: Store, ops: StoreOp[]): Promise<unknown[]> {
  return (await store.batch(ops)).map((r) => {
    if (!r.ok) throw r.error;
    return r.value;
  });
}

const keys = (timers: readonly TimerRecord[]) => timers.map((t) => `${t.agentId}/${t.key}@${t.at}`);

describe('sqliteStore: timers in the file', () => {
  it('keeps one row per (agent, key) and the count in agents.timers, exactly, through schedule, replace, cancel and fire', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    await ok(store, [
      { op: 'schedule', timer: timer('alice', 'a', 100) },
      { op: 'schedule', timer: timer('alice', 'b', 200) },
      { op: 'schedule', timer: timer('alice', 'a', 300) },
      { op: 'schedule', timer: timer('alice', 'c', 400) },
      { op: 'cancel', agentId: 'alice', key: 'c' },
      { op: 'cancel', agentId: 'alice', key: 'c' },
    ]);
    const rows = () =>
      withRaw(file, (db) => ({
        timers: db.prepare("SELECT key, at FROM timers WHERE agent_id = 'alice' ORDER BY key").all(),
        count: db.prepare("SELECT timers FROM agents WHERE id = 'alice'").pluck().get(),
      }));
    expect(rows()).toEqual({ timers: [{ key: 'a', at: 300 }, { key: 'b', at: 200 }], count: 2 });
    await ok(store, [{ op: 'fire', agentId: 'alice', key: 'b', at: 200, messageId: 'f', firedAt: 250 }]);
    expect(rows()).toEqual({ timers: [{ key: 'a', at: 300 }], count: 1 });
  });

  it('dueTimers and nextDeadline read the deadline index (timers_due), never the whole table', async () => {
    const file = dbFile();
    await sqliteStore(file).close();
    const plans = withRaw(file, (db) =>
      [
        'SELECT agent_id, key, at, message FROM timers INDEXED BY timers_due WHERE at <= 1 ORDER BY at, agent_id, key LIMIT 10',
        'SELECT min(at) FROM timers',
      ].map((query) => (db.prepare(`EXPLAIN QUERY PLAN ${query}`).all() as { detail: string }[]).map((row) => row.detail).join('; ')),
    );
    // The store's statements (sqliteStore.ts, prepareReads): a range of the index in its
    // order (no sort step), and one seek for the minimum.
    expect(plans[0]).toMatch(/SEARCH timers USING INDEX timers_due \(at<\?\)/);
    expect(plans[0]).not.toMatch(/TEMP B-TREE/);
    expect(plans[1]).toMatch(/SEARCH timers USING COVERING INDEX timers_due/);
  });

  it("a destroyed agent with a long history: its timers go at once, with its rows deleted in the background", async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    setSqlitePurgeBatch(store, 5);
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob'));
    await store.append(Array.from({ length: 30 }, (_, i) => ({ agentId: 'alice', messageId: `m${i}`, message: { type: 'inc' }, at: i })));
    await ok(store, [
      { op: 'schedule', timer: timer('alice', 'a', 100) },
      { op: 'schedule', timer: timer('bob', 'b', 200) },
    ]);
    await store.destroyAgent('alice');
    // Marked destroying, its messages still in the file; its timers gone.
    expect(withRaw(file, (db) => db.prepare("SELECT count(*) FROM messages WHERE agent_id = 'alice'").pluck().get())).toBeGreaterThan(0);
    expect(withRaw(file, (db) => db.prepare("SELECT count(*) FROM timers WHERE agent_id = 'alice'").pluck().get())).toBe(0);
    expect(keys(await store.dueTimers(1_000, 10))).toEqual(['bob/b@200']);
    expect(await store.nextDeadline()).toBe(200);
    expect(await ok(store, [{ op: 'fire', agentId: 'alice', key: 'a', at: 100, messageId: 'f', firedAt: 1 }])).toEqual([null]);
    // Spawned again before the background deletion ended: no timer, a count of 0, schedulable.
    await store.createAgent(agent('alice'));
    expect((await store.agentStats(['alice'])).get('alice')).toMatchObject({ timers: 0, mailbox: 0 });
    await ok(store, [{ op: 'schedule', timer: timer('alice', 'a', 50) }]);
    await sqlitePurged(store);
    expect(keys(await store.dueTimers(1_000, 10))).toEqual(['alice/a@50', 'bob/b@200']);
    expect((await store.agentStats(['alice'])).get('alice')).toMatchObject({ timers: 1 });
  });

  it('a timer whose message is damaged (a manual edit): timers() of its agent rejects StoreCorruptionError, dueTimers leaves it out', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob'));
    await ok(store, [
      { op: 'schedule', timer: timer('alice', 'a', 100) },
      { op: 'schedule', timer: timer('bob', 'b', 200) },
    ]);
    withRaw(file, (db) => db.prepare("UPDATE timers SET message = '{oops' WHERE agent_id = 'alice'").run());
    await expect(store.timers('alice')).rejects.toBeInstanceOf(StoreCorruptionError);
    expect(keys(await store.dueTimers(1_000, 10))).toEqual(['bob/b@200']);
    expect(await store.timers('bob')).toEqual([timer('bob', 'b', 200)]);
    // Cancelling it, or replacing it, works.
    await ok(store, [{ op: 'schedule', timer: timer('alice', 'a', 150) }]);
    expect(await store.timers('alice')).toEqual([timer('alice', 'a', 150)]);
  });
});

describe('sqliteStore: fencing and read-only stores with timers', () => {
  it('after another owner took over, schedule, cancel, fire and a commit with timers reject FencedError and write nothing', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    await store.append([{ agentId: 'alice', messageId: 'm1', message: { type: 'inc' }, at: 1 }]);
    await ok(store, [{ op: 'schedule', timer: timer('alice', 'a', 100) }]);
    await store.acquire({ pid: 1, host: 'host-a', since: 0 });
    withRaw(file, (db) => db.prepare('UPDATE owner SET epoch = epoch + 1 WHERE id = 1').run());
    const before = { due: await store.dueTimers(1_000, 10), pending: await store.pending('alice') };
    for (const op of [
      { op: 'schedule', timer: timer('alice', 'b', 200) },
      { op: 'cancel', agentId: 'alice', key: 'a' },
      { op: 'fire', agentId: 'alice', key: 'a', at: 100, messageId: 'f', firedAt: 150 },
      { op: 'commitTurn', commit: { agentId: 'alice', seq: 1, outcome: 'done', at: 2, durationMs: 1, timers: { cancel: ['a'] } } },
    ] satisfies StoreOp[]) {
      await expect(store.batch([op]), op.op).rejects.toBeInstanceOf(FencedError);
    }
    expect({ due: await store.dueTimers(1_000, 10), pending: await store.pending('alice') }).toEqual(before);
  });

  it('a read-only store reads the timers of a store that writes them, and refuses the timer ops with StoreError', async () => {
    const file = dbFile();
    const writer = track(sqliteStore(file));
    await writer.createAgent(agent('alice'));
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.nextDeadline()).toBeNull();
    await ok(writer, [{ op: 'schedule', timer: timer('alice', 'a', 100) }]);
    expect(await reader.dueTimers(100, 10)).toEqual([timer('alice', 'a', 100)]);
    expect(await reader.nextDeadline()).toBe(100);
    expect(await reader.timers('alice')).toEqual([timer('alice', 'a', 100)]);
    expect((await reader.agentStats(['alice'])).get('alice')).toMatchObject({ timers: 1 });
    for (const op of [
      { op: 'schedule', timer: timer('alice', 'b', 200) },
      { op: 'cancel', agentId: 'alice', key: 'a' },
      { op: 'fire', agentId: 'alice', key: 'a', at: 100, messageId: 'f', firedAt: 150 },
    ] satisfies StoreOp[]) {
      const error = await reader.batch([op]).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, op.op).toBeInstanceOf(StoreError);
      expect((error as Error).message, op.op).toMatch(/read-only/);
    }
    expect(await writer.timers('alice')).toEqual([timer('alice', 'a', 100)]);
  });
});

describe('sqliteStore: schema version 4 from version 3', () => {
  /** What a version 3 database held: no timers table, no timer count. */
  function downgradeToVersion3(file: string): void {
    withRaw(file, (db) => {
      db.exec('DROP TABLE timers; ALTER TABLE agents DROP COLUMN timers;');
      db.pragma('user_version = 3');
    });
  }

  async function version3(): Promise<string> {
    const file = dbFile();
    const store = sqliteStore(file);
    await store.createAgent(agent('alice'));
    await store.append([{ agentId: 'alice', messageId: 'm1', message: { type: 'inc' }, at: 1 }]);
    await store.close();
    downgradeToVersion3(file);
    return file;
  }

  it('version 4 is the one that added the timers', () => {
    expect(TIMED_FROM).toBe(4);
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(TIMED_FROM);
  });

  it('a read-only store reads version 3 as it is: no timers, a count of 0, the file untouched', async () => {
    const file = await version3();
    const before = fs.readFileSync(file);
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.dueTimers(Number.MAX_VALUE, 10)).toEqual([]);
    expect(await reader.nextDeadline()).toBeNull();
    expect(await reader.timers('alice')).toEqual([]);
    expect((await reader.agentStats(['alice'])).get('alice')).toEqual({
      turns: 0,
      failed: 0,
      crashed: 0,
      interrupted: 0,
      mailbox: 1,
      timers: 0,
      lastActiveAt: 1,
    });
    expect(await reader.mailboxSize('alice')).toBe(1);
    await reader.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('a writer migrates it; a reader opened before the migration then reads the timers', async () => {
    const file = await version3();
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.nextDeadline()).toBeNull();
    const writer = track(sqliteStore(file));
    expect(withRaw(file, (db) => db.pragma('user_version', { simple: true }))).toBe(SCHEMA_VERSION);
    expect((await writer.agentStats(['alice'])).get('alice')).toMatchObject({ mailbox: 1, timers: 0 });
    await ok(writer, [{ op: 'schedule', timer: timer('alice', 'a', 100) }]);
    expect(await reader.nextDeadline()).toBe(100);
    expect(await reader.dueTimers(100, 10)).toEqual([timer('alice', 'a', 100)]);
    expect((await reader.agentStats(['alice'])).get('alice')).toMatchObject({ mailbox: 1, timers: 1 });
    expect(await ok(writer, [{ op: 'fire', agentId: 'alice', key: 'a', at: 100, messageId: 'f', firedAt: 150 }])).toEqual([
      { agentId: 'alice', messageId: 'f', seq: 2, duplicate: false },
    ]);
    expect((await reader.pending('alice')).map((m) => m.messageId)).toEqual(['m1', 'f']);
  });
});
