/**
 * sqliteStore's ownership (one owner per database, fencing), its read-only mode, and the
 * files it refuses to open. Other processes are real child processes
 * (test/store/ownerChild.ts, run with tsx); nothing here waits on a clock: a child says
 * "ready" when it holds the lock, and is killed with SIGKILL.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FencedError, StoreError, StoreLockedError } from '../../src/errors.js';
import type { AgentRecord, AppendRequest, Store, StoreOwner } from '../../src/store/Store.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from '../../src/store/sqliteSchema.js';
import { setSqliteBusyTimeout } from '../../src/store/sqliteStore.js';
import { NO_ACTIVITY, sharedRange, sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const CHILD = fileURLToPath(new URL('./ownerChild.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const tempDirs: string[] = [];
const children: ChildProcess[] = [];
const open: Store[] = [];
/** Paths made immutable (chattr +i) by a test: made mutable again before they are removed. */
const immutable = new Set<string>();

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'residency-owner-'));
  tempDirs.push(dir);
  return dir;
}

function dbFile(): string {
  return path.join(tempDir(), 'agents.db');
}

function track(store: Store): Store {
  open.push(store);
  return store;
}

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const store of open.splice(0)) await store.close().catch(() => {});
  for (const p of immutable) chattr('-i', p);
  immutable.clear();
});

afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function owner(pid: number, host = 'host-a'): StoreOwner {
  return { pid, host, since: Date.UTC(2026, 0, 2, 3, 4, 5) };
}

function agent(id: string, fields: Partial<AgentRecord> = {}): AgentRecord {
  return { id, type: 'counter', parent: null, pinned: false, input: { start: 0 }, createdAt: 1_000, ...fields };
}

function msg(agentId: string, messageId: string): AppendRequest {
  return { agentId, messageId, message: { type: 'inc' }, at: 2_000 };
}

function withRaw<T>(file: string, work: (db: Database.Database) => T): T {
  const db = new Database(file);
  try {
    return work(db);
  } finally {
    db.close();
  }
}

/** The names and bytes of every file in a folder. */
function filesOf(dir: string): Record<string, Buffer> {
  return Object.fromEntries(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(path.join(dir, name))]));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => new Error(`resolved with ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

function thrown(work: () => unknown): unknown {
  try {
    work();
  } catch (error) {
    return error;
  }
  return new Error('did not throw');
}

/** Runs the child helper to its end; resolves with its stdout. */
function runChild(file: string, what: string, options: { uid?: number; gid?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', CHILD, file, what], { cwd: ROOT, ...options }, (error, stdout, stderr) => {
      // `residency-wal` and `foreign-wal` end by killing themselves.
      if (error && error.signal !== 'SIGKILL') reject(new Error(`${what} child failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

async function childResult(file: string, what: string, options: { uid?: number; gid?: number } = {}) {
  const out = (await runChild(file, what, options)).trim().split('\n').pop()!;
  return JSON.parse(out) as { ok: boolean; epoch?: number; name?: string; code?: string; holder?: StoreOwner; message?: string };
}

/** Starts a child that acquires the database and holds it until killed. */
function holdInChild(file: string): Promise<{ child: ChildProcess; pid: number; epoch: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, file, 'hold'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ready = /ready (\d+) (\d+)/.exec(out);
      if (ready) resolve({ child, pid: Number(ready[1]), epoch: Number(ready[2]) });
    });
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('exit', (code, signal) => reject(new Error(`the holding child exited (${code ?? signal}): ${err}`)));
  });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** chattr on a path; false when the file system or the privileges do not allow it. */
function chattr(flag: '+i' | '-i', p: string): boolean {
  try {
    execFileSync('chattr', [flag, p], { stdio: 'ignore' });
    if (flag === '+i') immutable.add(p);
    return true;
  } catch {
    return false;
  }
}

describe('sqliteStore: one owner per database', () => {
  it('a second store on the same file in this process cannot acquire it: StoreLockedError naming the holder', async () => {
    const file = dbFile();
    const first = track(sqliteStore(file));
    const second = track(sqliteStore(file));
    const { epoch } = await first.acquire(owner(process.pid, os.hostname()));
    const error = await rejection(second.acquire(owner(999)));
    expect(error).toBeInstanceOf(StoreLockedError);
    expect(error).toMatchObject({ code: 'STORE_LOCKED', holder: owner(process.pid, os.hostname()) });
    expect((error as Error).message).toContain(`The residency database "${file}" is owned by another live runtime (pid ${process.pid} on host`);
    expect((error as Error).message).toContain('since 2026-01-02T03:04:05.000Z): stop that runtime first, or give this one another store');
    // The refused attempt did not weaken the first store's lock for other processes either.
    expect(await childResult(file, 'try')).toMatchObject({ ok: false, name: 'StoreLockedError', holder: { pid: process.pid } });
    // The first store still writes; once it closes, the second acquires with the next epoch.
    await first.createAgent(agent('alice'));
    await first.close();
    expect(await second.acquire(owner(999))).toEqual({ epoch: epoch + 1 });
    expect(await second.getAgent('alice')).toEqual(agent('alice'));
  });

  it('another process holding the file makes acquire reject StoreLockedError with its pid; after kill -9 acquire succeeds at once', async () => {
    const file = dbFile();
    const held = await holdInChild(file);
    const store = track(sqliteStore(file));
    const error = await rejection(store.acquire(owner(process.pid)));
    expect(error).toBeInstanceOf(StoreLockedError);
    expect((error as StoreLockedError).holder).toMatchObject({ pid: held.pid, host: os.hostname() });
    expect((error as Error).message).toContain(`(pid ${held.pid} on host ${JSON.stringify(os.hostname())}, since `);

    await killed(held.child);
    // The OS dropped the dead holder's lock: the very next call gets it, no lease to wait out.
    expect(await store.acquire(owner(process.pid))).toEqual({ epoch: held.epoch + 1 });
    await store.createAgent(agent('alice'));
    expect(await childResult(file, 'try')).toMatchObject({ ok: false, code: 'STORE_LOCKED', holder: { pid: process.pid } });
  });

  it('close releases the lock: another process acquires right after, and the -lock file blocks no one', async () => {
    const file = dbFile();
    const store = sqliteStore(file);
    const { epoch } = await store.acquire(owner(process.pid));
    await store.close();
    expect(fs.existsSync(`${file}-lock`)).toBe(true);
    expect(await childResult(file, 'try')).toEqual({ ok: true, epoch: epoch + 1 });
    const again = track(sqliteStore(file));
    expect(await again.acquire(owner(process.pid))).toEqual({ epoch: epoch + 2 });
  });

  it('an in-memory database needs no lock file; a second acquire of the same store is refused', async () => {
    const store = track(sqliteStore(':memory:'));
    expect(await store.acquire(owner(1))).toEqual({ epoch: 1 });
    await expect(store.acquire(owner(2))).rejects.toMatchObject({ code: 'STORE_LOCKED', holder: owner(1) });
    await store.createAgent(agent('alice'));
    expect(fs.existsSync(':memory:-lock')).toBe(false);
  });

  describe('fencing', () => {
    /** A store that acquired the file, with alice (m1 pending) and bob; then a raw takeover bumps the epoch. */
    async function takenOver(): Promise<{ store: Store; file: string; epoch: number }> {
      const file = dbFile();
      const store = track(sqliteStore(file));
      const { epoch } = await store.acquire(owner(process.pid));
      await store.createAgent(agent('alice'));
      await store.createAgent(agent('bob'));
      await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
      return { store, file, epoch };
    }

    async function everythingOf(store: Store) {
      const ids = ['alice', 'bob', 'carol'];
      return {
        records: await store.getAgents(ids),
        pending: await Promise.all(ids.map((id) => store.pending(id))),
        rollout: await Promise.all(ids.map((id) => store.rollout(id))),
        snapshots: await Promise.all(ids.map((id) => store.loadSnapshot(id))),
        inFlight: await store.turnsInFlight(),
      };
    }

    async function expectEveryWriteFenced(store: Store, holder: RegExp): Promise<void> {
      const before = await everythingOf(store);
      const writes: [string, () => Promise<unknown>][] = [
        ['createAgent', () => store.createAgent(agent('carol'))],
        ['append', () => store.append([msg('alice', 'm3')])],
        ['beginTurn', () => store.beginTurn('alice', 1, 3_000)],
        ['commitTurn', () => store.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', snapshot: { n: 1 }, at: 3_000, durationMs: 1 })],
        ['note', () => store.note('alice', { kind: 'note', note: 'loaded', at: 3_000 })],
        ['destroyAgent', () => store.destroyAgent('bob')],
        [
          'batch',
          () =>
            store.batch([
              { op: 'createAgent', record: agent('carol') },
              { op: 'append', request: msg('carol', 'c1') },
              { op: 'note', agentId: 'alice', entry: { kind: 'note', note: 'loaded', at: 3_000 } },
              { op: 'destroyAgent', id: 'bob' },
            ]),
        ],
      ];
      for (const [method, call] of writes) {
        const error = await rejection(call());
        expect(error, method).toBeInstanceOf(FencedError);
        expect(error, method).toMatchObject({ code: 'FENCED', agentId: null });
        expect((error as Error).message, method).toMatch(holder);
      }
      // Nothing of any of them was written.
      expect(await everythingOf(store)).toEqual(before);
    }

    it('after another owner bumped the epoch, every write rejects FencedError and writes nothing', async () => {
      const { store, file, epoch } = await takenOver();
      withRaw(file, (db) =>
        db.prepare('UPDATE owner SET epoch = epoch + 1, pid = 4242, host = ?, since = ? WHERE id = 1').run('host-b', Date.UTC(2026, 0, 3)),
      );
      await expectEveryWriteFenced(store, new RegExp(`taken over by pid 4242 on host "host-b".*owner epoch ${epoch + 1}; this store acquired epoch ${epoch}`));
      // Reads are never fenced.
      expect((await store.pending('alice')).map((m) => m.seq)).toEqual([1, 2]);
    });

    it('a takeover through a deleted -lock file is fenced: the old owner writes nothing, the new one writes', async () => {
      const { store, file } = await takenOver();
      fs.rmSync(`${file}-lock`);
      const next = track(sqliteStore(file));
      await next.acquire(owner(7777, 'host-c'));
      await expectEveryWriteFenced(store, /taken over by pid 7777 on host "host-c"/);
      expect((await next.append([msg('alice', 'm3')]))[0]).toMatchObject({ seq: 3, duplicate: false });
    });

    it('a store that never acquired writes unfenced (tests and tools use stores directly)', async () => {
      const { file } = await takenOver();
      const direct = track(sqliteStore(file));
      withRaw(file, (db) => db.prepare('UPDATE owner SET epoch = epoch + 5 WHERE id = 1').run());
      expect((await direct.append([msg('alice', 'm3')]))[0]).toMatchObject({ seq: 3 });
    });
  });

  it('a busy database rejects with a retryable StoreError; other failures are not retryable', async () => {
    const file = dbFile();
    const store = track(sqliteStore(file));
    await store.createAgent(agent('alice'));
    setSqliteBusyTimeout(store, 0);
    const raw = new Database(file);
    try {
      raw.exec('BEGIN IMMEDIATE');
      const error = await rejection(store.append([msg('alice', 'm1')]));
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'STORE_ERROR', retryable: true, cause: { code: 'SQLITE_BUSY' } });
      raw.exec('ROLLBACK');
    } finally {
      raw.close();
    }
    expect((await store.append([msg('alice', 'm1')]))[0]).toMatchObject({ seq: 1 });
    withRaw(file, (db) => db.exec('DROP TABLE rollout'));
    await expect(store.rollout('alice')).rejects.toMatchObject({ code: 'STORE_ERROR', retryable: false });
  });
});

it("opening the same file again in this process keeps the first store's SQLite locks (it is not re-read with fs)", async (context) => {
  const file = dbFile();
  const first = track(sqliteStore(file));
  await first.createAgent(agent('alice'));
  const before = sharedRange(file);
  if (before === null) {
    context.skip('python3 is not available to ask for POSIX locks');
    return;
  }
  expect(before).toBe('held');
  await sqliteStore(file, { readonly: true }).close();
  await sqliteStore(file).close();
  expect(sharedRange(file)).toBe('held');
});

describe('sqliteStore: read-only', () => {
  it('reads while another store owns and writes the file, and refuses to acquire or write', async () => {
    const file = dbFile();
    const writer = track(sqliteStore(file));
    await writer.acquire(owner(process.pid));
    await writer.createAgent(agent('alice'));
    await writer.append([msg('alice', 'm1')]);
    await writer.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', snapshot: { n: 1 }, at: 3_000, durationMs: 1 });

    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.getAgent('alice')).toEqual(agent('alice'));
    expect(await reader.loadSnapshot('alice')).toEqual({ n: 1 });
    // A write the owner makes later is visible to the reader.
    await writer.append([msg('alice', 'm2')]);
    expect((await reader.pending('alice')).map((m) => m.seq)).toEqual([2]);
    expect(await reader.mailboxSize('alice')).toBe(1);
    expect((await reader.listAgents()).agents).toEqual([agent('alice')]);
    expect(await reader.getAgents(['alice'])).toEqual([agent('alice')]);
    expect((await reader.rollout('alice')).map((e) => e.kind)).toEqual(['accepted', 'snapshot', 'turn.finished', 'accepted']);
    expect(await reader.agentsWithPending()).toEqual(['alice']);
    expect(await reader.turnsInFlight()).toEqual([]);
    const error = await rejection(reader.acquire(owner(1)));
    expect(error).toBeInstanceOf(StoreError);
    expect(error).not.toBeInstanceOf(StoreLockedError);
    expect((error as Error).message).toMatch(/opened read-only \(\{ readonly: true \}\): it cannot be acquired/);
    // The owner is still the owner, unfenced.
    await writer.note('alice', { kind: 'note', note: 'loaded', at: 4_000 });
  });

  it('refuses every write with StoreError and leaves the database file byte for byte as it was', async () => {
    const file = dbFile();
    const writer = sqliteStore(file);
    await writer.createAgent(agent('alice'));
    await writer.append([msg('alice', 'm1')]);
    await writer.close();
    const before = fs.readFileSync(file);

    const reader = track(sqliteStore(file, { readonly: true }));
    const writes: [string, () => Promise<unknown>][] = [
      ['createAgent', () => reader.createAgent(agent('bob'))],
      ['destroyAgent', () => reader.destroyAgent('alice')],
      ['append', () => reader.append([msg('alice', 'm2')])],
      ['beginTurn', () => reader.beginTurn('alice', 1, 0)],
      ['commitTurn', () => reader.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', at: 0, durationMs: 0 })],
      ['note', () => reader.note('alice', { kind: 'note', note: 'loaded', at: 0 })],
      ['acquire', () => reader.acquire(owner(1))],
    ];
    for (const [method, call] of writes) {
      const error = await rejection(call());
      expect(error, method).toBeInstanceOf(StoreError);
      expect((error as Error).message, method).toContain(`"${file}" was opened read-only`);
    }
    expect((await reader.pending('alice')).map((m) => m.messageId)).toEqual(['m1']);
    await reader.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.existsSync(`${file}-lock`)).toBe(false);
  });

  it('reads a WAL database whose -wal and -shm files are gone (its last runtime closed), without changing it', async () => {
    const file = dbFile();
    const writer = sqliteStore(file);
    await writer.createAgent(agent('alice'));
    await writer.close();
    expect(fs.existsSync(`${file}-wal`) || fs.existsSync(`${file}-shm`)).toBe(false);
    const before = fs.readFileSync(file);
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.getAgent('alice')).toEqual(agent('alice'));
    await reader.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    // SQLite made an empty WAL to read through; it holds nothing.
    expect(fs.statSync(`${file}-wal`).size).toBe(0);
    // A writer opens it afterwards as usual.
    const again = track(sqliteStore(file));
    await again.acquire(owner(1));
    await again.append([msg('alice', 'm1')]);
  });

  it('reads a residency database whose writer died before a checkpoint (its header only in the -wal file)', async () => {
    const file = dbFile();
    await runChild(file, 'residency-wal');
    // The file's own header still says "empty": only the WAL says it is ours.
    expect(withHeader(file).applicationId).toBe(0);
    const wal = fs.readFileSync(`${file}-wal`);
    const main = fs.readFileSync(file);
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.getAgent('alice')).toEqual(agent('alice', { type: 'chat', input: { n: 1 }, createdAt: 1 }));
    await reader.close();
    expect(fs.readFileSync(file).equals(main)).toBe(true);
    expect(fs.readFileSync(`${file}-wal`).equals(wal)).toBe(true);
  });

  it('refuses an empty file, leaving it 0 bytes and creating nothing next to it', () => {
    const file = dbFile();
    fs.writeFileSync(file, '');
    const before = filesOf(path.dirname(file));
    const error = thrown(() => sqliteStore(file, { readonly: true }));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(new RegExp(`^Cannot open "${escape(file)}" as a residency database: it is empty`));
    expect(fs.statSync(file).size).toBe(0);
    expect(filesOf(path.dirname(file))).toEqual(before);
  });

  it('refuses a missing file without creating it', () => {
    const file = dbFile();
    const error = thrown(() => sqliteStore(file, { readonly: true }));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(`"${file}"`);
    expect((error as Error).message).toMatch(/there is no such file/);
    expect(fs.readdirSync(path.dirname(file))).toEqual([]);
  });

  it("refuses another application's database, an SQLite file with no tables, and a newer schema, writing nothing", async () => {
    const dir = tempDir();
    const notes = path.join(dir, 'notes.db');
    withRaw(notes, (db) => db.exec('CREATE TABLE notes (text TEXT)'));
    const blank = path.join(dir, 'blank.db');
    withRaw(blank, (db) => db.pragma('page_size = 4096') && db.exec('VACUUM'));
    const newer = path.join(dir, 'newer.db');
    await sqliteStore(newer).close();
    withRaw(newer, (db) => db.pragma(`user_version = ${SCHEMA_VERSION + 1}`));
    const before = filesOf(dir);
    for (const [file, why] of [
      [notes, /another application's tables \(notes\)/],
      [blank, /it holds no residency data/],
      [newer, /newer version of residency/],
    ] as const) {
      const error = thrown(() => sqliteStore(file, { readonly: true }));
      expect(error, file).toBeInstanceOf(StoreError);
      expect((error as Error).message, file).toContain(`"${file}"`);
      expect((error as Error).message, file).toMatch(why);
    }
    expect(filesOf(dir)).toEqual(before);
  });

  it('reads a database of schema version 1 as it is (no migration); a writer then migrates it', async () => {
    const file = dbFile();
    withRaw(file, (db) => {
      db.pragma('journal_mode = WAL');
      db.exec(MIGRATIONS[0]!);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma('user_version = 1');
      db.prepare("INSERT INTO agents (id, type, parent, pinned, input, created_at) VALUES ('alice', 'counter', NULL, 0, '{\"start\":0}', 1000)").run();
    });
    const before = fs.readFileSync(file);
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.getAgent('alice')).toEqual(agent('alice'));
    expect((await reader.listAgents()).agents).toEqual([agent('alice')]);
    expect((await reader.listAgents({ hasMail: false, pinned: false })).agents).toEqual([agent('alice')]);
    expect((await reader.agentStats(['alice'])).get('alice')).toEqual(NO_ACTIVITY);
    await reader.close();
    expect(fs.readFileSync(file).equals(before)).toBe(true);

    const writer = track(sqliteStore(file));
    expect(await writer.acquire(owner(1))).toEqual({ epoch: 1 });
    expect(await writer.getAgent('alice')).toEqual(agent('alice'));
    await writer.close();
    expect(withHeader(file)).toEqual({ applicationId: APPLICATION_ID, version: SCHEMA_VERSION });
  });

  it('says why when the folder cannot be written and the -shm file is missing (chattr +i; skipped where unavailable)', async (context) => {
    const file = dbFile();
    await sqliteStore(file).close();
    if (!chattr('+i', path.dirname(file))) {
      context.skip('chattr +i is not available here: cannot make a folder unwritable for root');
      return;
    }
    const error = thrown(() => sqliteStore(file, { readonly: true }));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(`"${file}"`);
    expect((error as Error).message).toMatch(/-wal" and "-shm" files, which a reader creates when they are missing .*make its folder writable/);
  });
});

describe('sqliteStore: files it cannot write', () => {
  it('refuses an immutable database file at open, naming it, and still reads it read-only (chattr +i; skipped where unavailable)', async (context) => {
    const file = dbFile();
    const first = sqliteStore(file);
    await first.createAgent(agent('alice'));
    await first.close();
    if (!chattr('+i', file)) {
      context.skip('chattr +i is not available here');
      return;
    }
    const error = thrown(() => sqliteStore(file));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(`Cannot open the residency database "${file}" for writing: the file cannot be written`);
    expect((error as Error).message).toMatch(/open it with \{ readonly: true \} to read it/);
    const reader = track(sqliteStore(file, { readonly: true }));
    expect(await reader.getAgent('alice')).toEqual(agent('alice'));
  });

  it('refuses a database in a folder it cannot create files in (chattr +i; skipped where unavailable)', async (context) => {
    const file = dbFile();
    await sqliteStore(file).close();
    if (!chattr('+i', path.dirname(file))) {
      context.skip('chattr +i is not available here');
      return;
    }
    const error = thrown(() => sqliteStore(file));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(`"${file}" for writing: its folder "${path.dirname(file)}" cannot be written`);
  });

  it('refuses a read-only (0444) file and a read-only (0555) folder by their mode bits (as another user when run as root)', async (context) => {
    const root = process.getuid?.() === 0;
    const nobody = { uid: 65534, gid: 65534 };
    const dir = tempDir();
    const fileDir = path.join(dir, 'f');
    const folderDir = path.join(dir, 'd');
    fs.mkdirSync(fileDir);
    fs.mkdirSync(folderDir);
    const readOnlyFile = path.join(fileDir, 'agents.db');
    const inReadOnlyFolder = path.join(folderDir, 'agents.db');
    for (const file of [readOnlyFile, inReadOnlyFolder]) await sqliteStore(file).close();
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(readOnlyFile, 0o444);
    fs.chmodSync(fileDir, 0o777);
    fs.chmodSync(inReadOnlyFolder, 0o666);
    fs.chmodSync(folderDir, 0o555);
    try {
      if (root) {
        // Root writes whatever the mode bits say: run the open as the user nobody.
        let result;
        try {
          result = await childResult(readOnlyFile, 'open', nobody);
        } catch (error) {
          context.skip(`cannot run a child process as nobody here (${(error as Error).message.split('\n')[0]})`);
          return;
        }
        expect(result).toMatchObject({ ok: false, name: 'StoreError' });
        expect(result.message).toContain(`"${readOnlyFile}" for writing: the file cannot be written (EACCES`);
        const folder = await childResult(inReadOnlyFolder, 'open', nobody);
        expect(folder).toMatchObject({ ok: false, name: 'StoreError' });
        expect(folder.message).toContain(`its folder "${folderDir}" cannot be written (EACCES`);
      } else {
        expect((thrown(() => sqliteStore(readOnlyFile)) as Error).message).toContain('the file cannot be written (EACCES');
        expect((thrown(() => sqliteStore(inReadOnlyFolder)) as Error).message).toContain('cannot be written (EACCES');
      }
    } finally {
      fs.chmodSync(folderDir, 0o755);
    }
  });
});

describe("sqliteStore: another application's WAL database whose writer died", () => {
  it('is refused with its -wal and -shm files left byte for byte, and not checkpointed into the file', async () => {
    const file = dbFile();
    await runChild(file, 'foreign-wal');
    const dir = path.dirname(file);
    expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(0);
    expect(fs.existsSync(`${file}-shm`)).toBe(true);
    // Its own header says "an empty database": the tables are only in the WAL.
    expect(withHeader(file)).toEqual({ applicationId: 0, version: 0 });
    const before = filesOf(dir);
    for (const readonly of [false, true]) {
      const error = thrown(() => sqliteStore(file, { readonly }));
      expect(error).toBeInstanceOf(StoreError);
      expect((error as Error).message).toContain(`"${file}"`);
      expect((error as Error).message).toMatch(/another application's tables/);
      expect(filesOf(dir)).toEqual(before);
    }
    // The other application's data is all still there.
    expect(withRaw(file, (db) => db.prepare('SELECT text FROM notes').pluck().all())).toEqual(['keep me']);
  });

  it('opens a residency database whose writer died before a checkpoint, with its data', async () => {
    const file = dbFile();
    await runChild(file, 'residency-wal');
    const store = track(sqliteStore(file));
    await store.acquire(owner(1));
    expect(await store.getAgent('alice')).toMatchObject({ id: 'alice', input: { n: 1 } });
  });
});

/** The application id and user version in the file's own header (not the WAL's). */
function withHeader(file: string): { applicationId: number; version: number } {
  const header = fs.readFileSync(file).subarray(0, 100);
  return { applicationId: header.readInt32BE(68), version: header.readInt32BE(60) };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
