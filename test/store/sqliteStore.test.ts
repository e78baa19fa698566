import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AgentNotFoundError, StoreCorruptionError, StoreError } from '../../src/errors.js';
import type { AgentRecord, AppendRequest, Store } from '../../src/store/Store.js';
import { APPLICATION_ID, SCHEMA_VERSION } from '../../src/store/sqliteSchema.js';
import { sqliteSettings } from '../../src/store/sqliteStore.js';
import { sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';
import { describeStore } from './describeStore.js';

const tempDirs: string[] = [];

/** A fresh folder under the OS temp folder, removed after the file's tests. */
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'residency-sqlite-'));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

const paths = new WeakMap<Store, string>();

function freshStore(): Store {
  const file = path.join(tempDir(), 'agents.db');
  const store = sqliteStore(file);
  paths.set(store, file);
  return store;
}

describeStore('sqliteStore', freshStore, {
  reopen: async (store) => {
    const file = paths.get(store)!;
    await store.close();
    const reopened = sqliteStore(file);
    paths.set(reopened, file);
    return reopened;
  },
});

function agent(id: string, fields: Partial<AgentRecord> = {}): AgentRecord {
  return { id, type: 'counter', parent: null, pinned: false, input: { start: 0 }, createdAt: 1_000, ...fields };
}

function msg(agentId: string, messageId: string, n = 0): AppendRequest {
  return { agentId, messageId, message: { type: 'inc', n }, at: 2_000 };
}

/** The names and bytes of every file in a folder. */
function filesOf(dir: string): Record<string, Buffer> {
  return Object.fromEntries(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(path.join(dir, name))]));
}

/** Runs `work` on a raw connection to the file, then closes it. */
function withRaw<T>(file: string, work: (db: Database.Database) => T): T {
  const db = new Database(file);
  try {
    return work(db);
  } finally {
    db.close();
  }
}

function expectRefused(file: string, pattern: RegExp): void {
  const dir = path.dirname(file);
  const before = filesOf(dir);
  let error: unknown;
  try {
    sqliteStore(file);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(StoreError);
  expect(error).toMatchObject({ code: 'STORE_ERROR' });
  expect((error as Error).message).toContain(`"${file}"`);
  expect((error as Error).message).toMatch(pattern);
  // Not a byte changed, and no -wal or -shm file appeared next to it.
  expect(filesOf(dir)).toEqual(before);
}

describe('sqliteStore', () => {
  const open: Store[] = [];
  function track(store: Store): Store {
    open.push(store);
    return store;
  }
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close().catch(() => {});
  });

  it('creates the missing folders of the path with mode 0700', () => {
    const root = tempDir();
    const file = path.join(root, 'data', 'residency', 'agents.db');
    track(sqliteStore(file));
    expect(fs.statSync(path.join(root, 'data', 'residency')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(root, 'data')).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(file)).toBe(true);
  });

  it('runs in WAL mode with synchronous=FULL, a busy timeout and foreign keys by default', () => {
    const file = path.join(tempDir(), 'agents.db');
    const store = track(sqliteStore(file));
    expect(sqliteSettings(store)).toEqual({ journalMode: 'wal', synchronous: 'FULL', busyTimeoutMs: 5_000, foreignKeys: true });
    // WAL is recorded in the file itself.
    expect(withRaw(file, (db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
  });

  it('relaxes to synchronous=NORMAL when asked', () => {
    const store = track(sqliteStore(path.join(tempDir(), 'agents.db'), { synchronous: 'NORMAL' }));
    expect(sqliteSettings(store)).toMatchObject({ journalMode: 'wal', synchronous: 'NORMAL' });
  });

  it('marks the file as a residency database of the current schema version', async () => {
    const file = path.join(tempDir(), 'agents.db');
    await track(sqliteStore(file)).close();
    expect(withRaw(file, (db) => [db.pragma('application_id', { simple: true }), db.pragma('user_version', { simple: true })])).toEqual([
      APPLICATION_ID,
      SCHEMA_VERSION,
    ]);
  });

  it('refuses bad arguments with a TypeError', () => {
    expect(() => sqliteStore('')).toThrow(TypeError);
    expect(() => sqliteStore(42 as never)).toThrow(TypeError);
    expect(() => sqliteStore(path.join(tempDir(), 'a.db'), { synchronous: 'OFF' as never })).toThrow(
      "Expected `synchronous` to be 'FULL' or 'NORMAL'",
    );
  });

  it("refuses another application's database, naming the file and its tables, and leaves it untouched", () => {
    const file = path.join(tempDir(), 'notes.db');
    withRaw(file, (db) => {
      db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('keep me')");
    });
    expectRefused(file, /another application's tables \(notes\)/);
    expect(withRaw(file, (db) => db.prepare('SELECT text FROM notes').pluck().all())).toEqual(['keep me']);
  });

  it("refuses another application's database in WAL mode without creating -wal or -shm files", () => {
    const file = path.join(tempDir(), 'notes.db');
    withRaw(file, (db) => {
      db.pragma('journal_mode = WAL');
      db.exec('CREATE TABLE notes (text TEXT)');
    });
    expectRefused(file, /another application's tables/);
  });

  it('refuses a database with another application id, even without tables', () => {
    const file = path.join(tempDir(), 'other.db');
    withRaw(file, (db) => db.pragma('application_id = 42'));
    expectRefused(file, /another application \(application id 0x2a/);
  });

  it('refuses a file that is not an SQLite database', () => {
    const file = path.join(tempDir(), 'agents.db');
    fs.writeFileSync(file, 'these are my notes, not a database\n'.repeat(10));
    expectRefused(file, /not an SQLite database/);
  });

  it('refuses a residency database of a newer schema version and leaves it untouched', async () => {
    const file = path.join(tempDir(), 'agents.db');
    const store = sqliteStore(file);
    await store.createAgent(agent('alice'));
    await store.close();
    withRaw(file, (db) => db.pragma(`user_version = ${SCHEMA_VERSION + 1}`));
    expectRefused(file, new RegExp(`newer version of residency \\(schema version ${SCHEMA_VERSION + 1}`));
  });

  it('opens an empty file as a new database', async () => {
    const file = path.join(tempDir(), 'agents.db');
    fs.writeFileSync(file, '');
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    expect(await store.getAgent('alice')).toEqual(agent('alice'));
  });

  it('keeps everything across close and reopen', async () => {
    const file = path.join(tempDir(), 'agents.db');
    const first = sqliteStore(file);
    await first.createAgent(agent('alice', { input: { name: 'Alice' } }));
    await first.append([msg('alice', 'm1'), msg('alice', 'm2')]);
    await first.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', snapshot: { count: 1 }, at: 3_000, durationMs: 1 });
    await first.close();

    const second = track(sqliteStore(file));
    expect(await second.getAgent('alice')).toEqual(agent('alice', { input: { name: 'Alice' } }));
    expect(await second.loadSnapshot('alice')).toEqual({ count: 1 });
    expect((await second.pending('alice')).map((m) => m.messageId)).toEqual(['m2']);
    expect((await second.append([msg('alice', 'm3')]))[0]).toMatchObject({ seq: 3, duplicate: false });
  });

  it('shares the file with a second store without reusing seqs', async () => {
    const file = path.join(tempDir(), 'agents.db');
    const a = track(sqliteStore(file));
    const b = track(sqliteStore(file));
    await a.createAgent(agent('alice'));
    expect((await a.append([msg('alice', 'm1')]))[0]?.seq).toBe(1);
    expect((await b.append([msg('alice', 'm2'), msg('alice', 'm1')])).map((r) => [r.seq, r.duplicate])).toEqual([
      [2, false],
      [1, true],
    ]);
    expect((await a.pending('alice')).map((m) => m.seq)).toEqual([1, 2]);
  });

  it('appends a batch of 1,000 messages atomically: one missing target at the end stores none of it', async () => {
    const store = track(freshStore());
    await store.createAgent(agent('alice'));
    const batch = Array.from({ length: 999 }, (_, i) => msg('alice', `m${i}`, i));
    await expect(store.append([...batch, msg('ghost', 'last')])).rejects.toMatchObject({
      name: 'AgentNotFoundError',
      agentId: 'ghost',
    });
    await expect(store.append([...batch, msg('ghost', 'last')])).rejects.toBeInstanceOf(AgentNotFoundError);
    expect(await store.mailboxSize('alice')).toBe(0);
    expect(await store.rollout('alice')).toEqual([]);

    const results = await store.append([...batch, msg('alice', 'last')]);
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 1_000 }, (_, i) => i + 1));
    expect(await store.mailboxSize('alice')).toBe(1_000);
  });

  describe('a damaged row quarantines its agent only', () => {
    async function twoAgents(): Promise<{ store: Store; file: string }> {
      const file = path.join(tempDir(), 'agents.db');
      const store = track(sqliteStore(file));
      for (const id of ['alice', 'bob']) {
        await store.createAgent(agent(id));
        await store.append([msg(id, 'm1'), msg(id, 'm2')]);
        await store.commitTurn({ agentId: id, seq: 1, outcome: 'done', snapshot: { count: 1 }, at: 3_000, durationMs: 1 });
      }
      return { store, file };
    }

    async function expectBobWorks(store: Store): Promise<void> {
      expect(await store.getAgent('bob')).toEqual(agent('bob'));
      expect(await store.loadSnapshot('bob')).toEqual({ count: 1 });
      expect((await store.pending('bob')).map((m) => m.seq)).toEqual([2]);
      expect((await store.append([msg('bob', 'm3')]))[0]?.seq).toBe(3);
      await store.commitTurn({ agentId: 'bob', seq: 2, outcome: 'done', snapshot: { count: 2 }, at: 4_000, durationMs: 1 });
      expect(await store.loadSnapshot('bob')).toEqual({ count: 2 });
      expect((await store.rollout('bob')).length).toBeGreaterThan(0);
    }

    async function expectCorrupt(call: Promise<unknown>, what: RegExp): Promise<void> {
      const error = await call.then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StoreCorruptionError);
      expect(error).toMatchObject({ code: 'STORE_CORRUPTION', agentId: 'alice' });
      expect((error as StoreCorruptionError).what).toMatch(what);
    }

    it('a snapshot that is not valid JSON makes loadSnapshot of that agent reject StoreCorruptionError', async () => {
      const { store, file } = await twoAgents();
      withRaw(file, (db) => db.prepare("UPDATE snapshots SET snapshot = '{\"count\": 1' WHERE agent_id = 'alice'").run());
      await expectCorrupt(store.loadSnapshot('alice'), /^its snapshot is not valid JSON/);
      await expectBobWorks(store);
      expect((await store.listAgents()).agents.map((a) => a.id)).toEqual(['alice', 'bob']);
    });

    it('a pending message that is not valid JSON makes pending of that agent reject StoreCorruptionError', async () => {
      const { store, file } = await twoAgents();
      withRaw(file, (db) => db.prepare("UPDATE messages SET message = 'garbage' WHERE agent_id = 'alice' AND seq = 2").run());
      await expectCorrupt(store.pending('alice'), /message #2 of its mailbox is not valid JSON/);
      expect(await store.mailboxSize('alice')).toBe(1);
      await expectBobWorks(store);
    });

    it('a record that is not valid JSON makes getAgent of that agent reject StoreCorruptionError', async () => {
      const { store, file } = await twoAgents();
      withRaw(file, (db) => db.prepare("UPDATE agents SET input = '{' WHERE id = 'alice'").run());
      await expectCorrupt(store.getAgent('alice'), /the input in its record is not valid JSON/);
      await expectBobWorks(store);
      // Multi-agent reads leave the damaged record out instead of failing for bob too.
      expect(await store.getAgents(['alice', 'bob'])).toEqual([agent('bob')]);
      await store.createAgent(agent('carol'));
      const first = await store.listAgents({ limit: 1 });
      expect(first).toEqual({ agents: [], cursor: 'alice' });
      expect(await store.listAgents({ cursor: first.cursor })).toEqual({ agents: [agent('bob'), agent('carol')], cursor: null });
    });

    it('a rollout entry that is not valid JSON makes rollout of that agent reject StoreCorruptionError', async () => {
      const { store, file } = await twoAgents();
      withRaw(file, (db) => db.prepare("UPDATE rollout SET entry = 'x' WHERE agent_id = 'alice'").run());
      await expectCorrupt(store.rollout('alice'), /an entry of its rollout is not valid JSON/);
      await expectBobWorks(store);
    });
  });

  it('rejects with StoreError, carrying the SQLite error as its cause, when SQLite fails', async () => {
    const file = path.join(tempDir(), 'agents.db');
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    withRaw(file, (db) => db.exec('DROP TABLE rollout'));
    const error = await store.rollout('alice').then(
      () => new Error('resolved'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toContain(`"${file}"`);
    expect((error as StoreError).cause).toMatchObject({ name: 'SqliteError' });
  });
});
