/**
 * sqliteStore's group commit (`batch`), beyond the conformance suite: a batch is ONE
 * transaction (one commit in the WAL, so one sync), a failure of the transaction itself
 * stores nothing of it, a busy database is retryable, and a statement SQLite refuses on its
 * own fails its op alone. (Fencing of a batch is checked with every other write in
 * ownership.test.ts.) Nothing here measures time.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AgentExistsError, StoreError } from '../../src/errors.js';
import type { AgentRecord, AppendRequest, CommitTurn, Store, StoreOp } from '../../src/store/Store.js';
import { readWal } from '../../src/store/sqliteSchema.js';
import { setSqliteBusyTimeout } from '../../src/store/sqliteStore.js';
import { sqliteFiles, agent, withRaw, sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const { dbFile, track } = sqliteFiles('batch');

function msg(agentId: string, messageId: string): AppendRequest {
  return { agentId, messageId, message: { type: 'inc' }, at: 2_000 };
}

function turn(agentId: string, seq: number, fields: Partial<CommitTurn> = {}): CommitTurn {
  return { agentId, seq, outcome: 'done', at: 3_000, durationMs: 1, ...fields };
}

/** How many transactions the WAL holds (each one synced once at synchronous=FULL). */
function walCommits(file: string): number {
  return readWal(`${file}-wal`)?.commits ?? 0;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => new Error(`expected a rejection, got ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

/** A store on a new file with agents a0…a{n-1}, each with message m1 pending. */
async function withAgents(n: number): Promise<{ store: Store; file: string }> {
  const file = dbFile();
  const store = track(sqliteStore(file));
  for (let i = 0; i < n; i++) await store.createAgent(agent(`a${i}`));
  await store.append(Array.from({ length: n }, (_, i) => msg(`a${i}`, 'm1')));
  return { store, file };
}

describe('sqliteStore batch', () => {
  it('is one transaction: 1 + 2×32 ops add one commit to the WAL, as many single calls add one each', async () => {
    const { store, file } = await withAgents(32);
    const ops: StoreOp[] = [{ op: 'createAgent', record: agent('extra') }];
    for (let i = 0; i < 32; i++) {
      ops.push({ op: 'beginTurn', agentId: `a${i}`, seq: 1, at: 2_500 });
      ops.push({ op: 'commitTurn', commit: turn(`a${i}`, 1, { snapshot: { i } }) });
    }
    const before = walCommits(file);
    const results = await store.batch(ops);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(walCommits(file)).toBe(before + 1);
    expect(await store.agentsWithPending()).toEqual([]);

    // The same work one call at a time: one transaction per call.
    await store.append(Array.from({ length: 32 }, (_, i) => msg(`a${i}`, 'm2')));
    const single = walCommits(file);
    for (let i = 0; i < 32; i++) await store.commitTurn(turn(`a${i}`, 2));
    expect(walCommits(file)).toBe(single + 32);
  });

  it('a batch whose ops all fail on their checks writes nothing to the WAL', async () => {
    const { store, file } = await withAgents(1);
    const before = walCommits(file);
    const results = await store.batch([
      { op: 'createAgent', record: agent('a0') },
      { op: 'commitTurn', commit: turn('a0', 7) },
    ]);
    expect(results.map((r) => r.ok)).toEqual([false, false]);
    expect(walCommits(file)).toBe(before);
    expect(await store.mailboxSize('a0')).toBe(1);
  });

  it('when the transaction itself fails, the call rejects StoreError and nothing of the batch is stored', async () => {
    const { store, file } = await withAgents(2);
    // The rollout table gone: the note's statement fails for the transaction, not for its op.
    withRaw(file, (db) => db.exec('DROP TABLE rollout'));
    const error = await rejection(
      store.batch([
        { op: 'createAgent', record: agent('carol') },
        { op: 'destroyAgent', id: 'a1' },
        { op: 'note', agentId: 'a0', entry: { kind: 'note', note: 'loaded', at: 0 } },
        { op: 'createAgent', record: agent('dave') },
      ]),
    );
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'STORE_ERROR', retryable: false, cause: { name: 'SqliteError' } });
    expect((error as Error).message).toMatch(/could not write a batch of 4 operations/);
    expect(await store.getAgents(['carol', 'dave', 'a1'])).toEqual([agent('a1')]);
  });

  it('a busy database rejects the whole batch with a retryable StoreError; retried, it stores everything', async () => {
    const { store, file } = await withAgents(1);
    setSqliteBusyTimeout(store, 0);
    const ops: StoreOp[] = [
      { op: 'createAgent', record: agent('carol') },
      { op: 'append', request: msg('carol', 'c1') },
      { op: 'commitTurn', commit: turn('a0', 1) },
    ];
    const raw = new Database(file);
    try {
      raw.exec('BEGIN IMMEDIATE');
      const error = await rejection(store.batch(ops));
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'STORE_ERROR', retryable: true, cause: { code: 'SQLITE_BUSY' } });
      raw.exec('ROLLBACK');
    } finally {
      raw.close();
    }
    expect(await store.getAgent('carol')).toBeNull();
    expect(await store.mailboxSize('a0')).toBe(1);
    expect((await store.batch(ops)).map((r) => r.ok)).toEqual([true, true, true]);
    expect(await store.mailboxSize('carol')).toBe(1);
    expect(await store.mailboxSize('a0')).toBe(0);
  });

  it('a statement SQLite refuses on its own (a constraint) fails its op alone, in a batch and as a single call', async () => {
    const { store, file } = await withAgents(1);
    withRaw(file, (db) =>
      db.exec(`
        CREATE TRIGGER refuse_evicted BEFORE INSERT ON rollout
        WHEN json_extract(NEW.entry, '$.note') = 'evicted'
        BEGIN SELECT RAISE(ABORT, 'evicted notes are refused'); END`),
    );
    const results = await store.batch([
      { op: 'createAgent', record: agent('carol') },
      { op: 'note', agentId: 'a0', entry: { kind: 'note', note: 'evicted', at: 1 } },
      { op: 'note', agentId: 'a0', entry: { kind: 'note', note: 'loaded', at: 2 } },
    ]);
    expect(results[0]).toEqual({ ok: true, value: undefined });
    expect(results[1]).toMatchObject({ ok: false, error: { code: 'STORE_ERROR', cause: { code: 'SQLITE_CONSTRAINT_TRIGGER' } } });
    expect((results[1] as { error: Error }).error.message).toMatch(/could not write a note for agent "a0": evicted notes are refused/);
    expect(results[2]).toEqual({ ok: true, value: undefined });
    expect(await store.getAgent('carol')).toEqual(agent('carol'));
    expect((await store.rollout('a0')).map((e) => e.kind)).toEqual(['accepted', 'note']);

    await expect(store.note('a0', { kind: 'note', note: 'evicted', at: 3 })).rejects.toMatchObject({
      code: 'STORE_ERROR',
      cause: { code: 'SQLITE_CONSTRAINT_TRIGGER' },
    });
    expect(await store.rollout('a0')).toHaveLength(2);
  });

  it('a single write is a batch of one: it rejects with its op error and writes nothing', async () => {
    const { store, file } = await withAgents(1);
    const before = walCommits(file);
    await expect(store.createAgent(agent('a0'))).rejects.toBeInstanceOf(AgentExistsError);
    await expect(store.commitTurn(turn('a0', 1, { snapshot: (() => 1) as unknown }))).rejects.toThrow(/not JSON/);
    // A lone op that fails rolls its transaction back: nothing reaches the WAL.
    expect(walCommits(file)).toBe(before);
    expect(await store.mailboxSize('a0')).toBe(1);
  });

  it('a read-only store refuses a batch with StoreError', async () => {
    const { file } = await withAgents(1);
    const reader = track(sqliteStore(file, { readonly: true }));
    await expect(reader.batch([{ op: 'createAgent', record: agent('carol') }])).rejects.toMatchObject({
      code: 'STORE_ERROR',
      message: expect.stringMatching(/read-only/),
    });
    await expect(reader.batch([])).rejects.toBeInstanceOf(StoreError);
  });
});
