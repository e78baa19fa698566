/**
 * sqliteStore with its writer on a worker thread (`{ writer: 'thread' }`,
 * src/store/sqliteThreadStore.ts): the conformance suite unchanged, with reopen; ownership
 * and fencing across the thread; errors rebuilt with their classes and fields; a write's
 * result visible to a read as soon as it resolved; the event loop free while the writer
 * waits; a writer thread that dies; the process not kept alive by an idle writer; SQLite's
 * locks kept when the file is opened again in this process; the worker file loaded from
 * the built package (ES module and CommonJS builds).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { build, type Options } from 'tsup';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import tsupConfig from '../../tsup.config.js';
import {
  AgentExistsError,
  AgentNotFoundError,
  FencedError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
} from '../../src/errors.js';
import type { AppendRequest, Store, StoreOpResult, StoreOwner } from '../../src/store/Store.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import { sqliteWriterThread, writerThreadAvailable } from '../../src/store/sqliteThreadStore.js';
import { describeStore } from './describeStore.js';
import { agent, sharedRange, sqliteFiles, withRaw } from './sqliteFiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./threadChild.ts', import.meta.url));
const OWNER_CHILD = fileURLToPath(new URL('./ownerChild.ts', import.meta.url));

const { dbFile, track } = sqliteFiles('thread');

const paths = new WeakMap<Store, string>();

function freshStore(): Store {
  const file = dbFile();
  const store = sqliteStore(file, { writer: 'thread' });
  paths.set(store, file);
  return store;
}

describeStore('sqliteStore, writer thread', freshStore, {
  reopen: async (store) => {
    const file = paths.get(store)!;
    await store.close();
    const reopened = sqliteStore(file, { writer: 'thread' });
    paths.set(reopened, file);
    return reopened;
  },
});

function owner(pid: number, host = 'host-a'): StoreOwner {
  return { pid, host, since: Date.UTC(2026, 0, 2, 3, 4, 5) };
}

function msg(agentId: string, messageId: string): AppendRequest {
  return { agentId, messageId, message: { type: 'inc' }, at: 2_000 };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => new Error(`resolved with ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function thread(file: string): Store {
  return track(sqliteStore(file, { writer: 'thread' }));
}

/** Runs ownerChild.ts `try` (a store on the main thread of another process): its JSON line. */
function tryInChild(file: string): Promise<{ ok: boolean; epoch?: number; name?: string; code?: string; holder?: StoreOwner }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', OWNER_CHILD, file, 'try'], { cwd: ROOT }, (error, stdout, stderr) => {
      if (error) reject(new Error(`try child failed: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!));
    });
  });
}

describe('sqliteStore, writer thread: how it opens', () => {
  it('refuses what sqliteStore refuses, synchronously, leaving the file untouched', () => {
    const file = dbFile();
    withRaw(file, (db) => db.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me')"));
    const before = fs.readFileSync(file);
    expect(() => sqliteStore(file, { writer: 'thread' })).toThrow(StoreError);
    expect(() => sqliteStore(file, { writer: 'thread' })).toThrow(/another application's tables \(notes\)/);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(() => sqliteStore(dbFile(), { writer: 'elsewhere' as never })).toThrow("Expected `writer` to be 'main' or 'thread'");
  });

  it("':memory:' and a read-only store have no writer thread: they work as without the option", async () => {
    const memory = track(sqliteStore(':memory:', { writer: 'thread' }));
    expect(sqliteWriterThread(memory)).toBeUndefined();
    await memory.createAgent(agent('alice'));
    expect(await memory.getAgent('alice')).toEqual(agent('alice'));
    const file = dbFile();
    await sqliteStore(file).close();
    const reader = track(sqliteStore(file, { readonly: true, writer: 'thread' }));
    expect(sqliteWriterThread(reader)).toBeUndefined();
    await expect(reader.createAgent(agent('bob'))).rejects.toThrow(/opened read-only/);
  });

  it("closes like sqliteStore: the WAL checkpointed into the file, and every later call rejects with StoreError", async () => {
    const file = dbFile();
    const store = sqliteStore(file, { writer: 'thread' });
    await store.createAgent(agent('alice'));
    await store.close();
    // The writer's connection closed last: it checkpointed and removed the WAL.
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    for (const call of [() => store.getAgent('alice'), () => store.createAgent(agent('bob')), () => store.batch([]), () => store.close()]) {
      const error = await rejection(call());
      expect(error).toBeInstanceOf(StoreError);
      expect((error as Error).message).toContain('is closed');
    }
    expect(withRaw(file, (db) => db.prepare('SELECT id FROM agents').pluck().all())).toEqual(['alice']);
  });
});

describe('sqliteStore, writer thread: read after write', () => {
  it("a write's result is visible to a read as soon as the write resolved", async () => {
    const store = thread(dbFile());
    await store.createAgent(agent('alice'));
    expect(await store.getAgent('alice')).toEqual(agent('alice'));
    for (let i = 1; i <= 200; i++) {
      const [appended] = await store.append([msg('alice', `m${i}`)]);
      expect(appended).toMatchObject({ seq: i, duplicate: false });
      // Read right after, with no turn of the event loop in between.
      expect(await store.mailboxSize('alice')).toBe(1);
      expect((await store.pending('alice')).map((m) => m.seq)).toEqual([i]);
      const [begun, committed] = await store.batch([
        { op: 'beginTurn', agentId: 'alice', seq: i, at: 3_000 },
        { op: 'commitTurn', commit: { agentId: 'alice', seq: i, outcome: 'done', snapshot: { n: i }, at: 3_000, durationMs: 1 } },
      ]);
      expect(begun).toEqual({ ok: true, value: undefined });
      expect(committed).toEqual({ ok: true, value: { outbox: [] } });
      expect(await store.loadSnapshot('alice')).toEqual({ n: i });
      expect(await store.mailboxSize('alice')).toBe(0);
    }
    expect((await store.agentStats(['alice'])).get('alice')).toMatchObject({ turns: 200, mailbox: 0 });
  });

  it('writes run in call order, and reads issued after a write resolved see it even with more writes in flight', async () => {
    const store = thread(dbFile());
    await store.createAgent(agent('alice'));
    const appends = Array.from({ length: 50 }, (_, i) => store.append([msg('alice', `m${i + 1}`)]));
    for (let i = 0; i < appends.length; i++) {
      const [r] = await appends[i]!;
      expect(r!.seq).toBe(i + 1);
      expect((await store.pending('alice')).length).toBeGreaterThanOrEqual(i + 1);
    }
  });
});

describe('sqliteStore, writer thread: errors keep their classes and fields', () => {
  it('op errors in a batch, single-method rejections and argument errors', async () => {
    const store = thread(dbFile());
    await store.createAgent(agent('alice'));
    const results = await store.batch([
      { op: 'append', request: msg('nobody', 'm1') },
      { op: 'createAgent', record: agent('alice') },
      { op: 'commitTurn', commit: { agentId: 'alice', seq: 9, outcome: 'done', at: 1, durationMs: 1 } },
      { op: 'note', agentId: 'alice', entry: { kind: 'note', note: 'loaded', at: 1, reason: (() => 'x') as never } },
      { op: 'schedule', timer: { agentId: 'alice', key: 'k', at: Number.NaN, message: { type: 't' } } },
      { op: 'append', request: msg('alice', 'm1') },
    ]);
    expect(results[0]).toMatchObject({ ok: false, error: { code: 'AGENT_NOT_FOUND', agentId: 'nobody' } });
    expect((results[0] as { error: Error }).error).toBeInstanceOf(AgentNotFoundError);
    expect((results[1] as { error: Error }).error).toBeInstanceOf(AgentExistsError);
    expect((results[1] as { error: Error }).error).toMatchObject({ agentId: 'alice', name: 'AgentExistsError' });
    expect((results[2] as { error: Error }).error).toBeInstanceOf(StoreError);
    expect((results[2] as { error: Error }).error).toMatchObject({ retryable: false, message: expect.stringContaining('it is not pending') });
    // A function is dropped by JSON, as on the main thread: the note is stored.
    expect(results[3]).toEqual({ ok: true, value: undefined });
    expect((results[4] as { error: Error }).error).toBeInstanceOf(TypeError);
    expect(results[5]).toMatchObject({ ok: true, value: { seq: 1 } });
    await expect(store.createAgent(agent('alice'))).rejects.toBeInstanceOf(AgentExistsError);
    await expect(store.batch('nope' as never)).rejects.toBeInstanceOf(TypeError);
    await expect(store.acquire(null as never)).rejects.toBeInstanceOf(TypeError);
    // The stack says where the writer threw.
    const error = await rejection(store.append([msg('nobody', 'm2')]));
    expect(error).toBeInstanceOf(AgentNotFoundError);
    expect((error as Error).stack).toContain('sqliteStore');
  });

  it('a busy database: a retryable StoreError with its SqliteError cause, while this thread goes on running', async () => {
    const file = dbFile();
    const store = thread(file);
    await store.createAgent(agent('alice'));
    const raw = new Database(file);
    try {
      raw.exec('BEGIN IMMEDIATE');
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      const started = performance.now();
      // The writer waits for the lock up to its busy timeout (5 s): not this thread.
      const error = await rejection(store.append([msg('alice', 'm1')]));
      clearInterval(ticker);
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'STORE_ERROR', retryable: true, cause: { code: 'SQLITE_BUSY' } });
      expect((error as StoreError).cause).toBeInstanceOf(Database.SqliteError);
      expect(ticks).toBeGreaterThan((performance.now() - started) / 10 / 4);
      raw.exec('ROLLBACK');
    } finally {
      raw.close();
    }
    expect((await store.append([msg('alice', 'm1')]))[0]).toMatchObject({ seq: 1 });
  });

  it('pipelined: a batch the database refuses as busy is retried by the writer before the next one runs, so batches commit in call order', async () => {
    const file = dbFile();
    const store = thread(file);
    expect(store.pipelined).toBe(true);
    await store.createAgent(agent('alice'));
    const raw = new Database(file);
    try {
      raw.exec('BEGIN IMMEDIATE');
      // Longer than the writer's busy timeout (5 s): the first batch's first try fails busy.
      const release = setTimeout(() => raw.exec('ROLLBACK'), 5_600);
      const first = store.batch([{ op: 'append', request: msg('alice', 'm1') }]);
      const second = store.batch([{ op: 'append', request: msg('alice', 'm2') }]);
      const [a, b] = await Promise.all([first, second]);
      clearTimeout(release);
      expect(a[0]).toMatchObject({ ok: true, value: { seq: 1, duplicate: false } });
      expect(b[0]).toMatchObject({ ok: true, value: { seq: 2, duplicate: false } });
    } finally {
      if (raw.inTransaction) raw.exec('ROLLBACK');
      raw.close();
    }
    expect((await store.pending('alice', 10)).map((m) => m.messageId)).toEqual(['m1', 'm2']);
  }, 30_000);

  it('batches handed over while the writer waits are written together: each gets its own answers, and a failing op fails alone', async () => {
    const file = dbFile();
    const store = thread(file);
    await store.createAgent(agent('alice'));
    const raw = new Database(file);
    let answers: StoreOpResult[][];
    try {
      raw.exec('BEGIN IMMEDIATE');
      // The first batch waits for the lock inside the writer; the next ones queue behind it.
      const release = setTimeout(() => raw.exec('ROLLBACK'), 200);
      answers = await Promise.all([
        store.batch([{ op: 'append', request: msg('alice', 'm1') }]),
        store.batch([{ op: 'append', request: msg('alice', 'm2') }, { op: 'append', request: msg('nobody', 'x') }]),
        store.batch([{ op: 'append', request: msg('alice', 'm3') }]),
        store.batch([{ op: 'append', request: msg('nobody', 'y') }]),
        store.batch([{ op: 'append', request: msg('alice', 'm4') }, { op: 'append', request: msg('alice', 'm2') }]),
      ]);
      clearTimeout(release);
    } finally {
      if (raw.inTransaction) raw.exec('ROLLBACK');
      raw.close();
    }
    expect(answers.map((a) => a.map((r) => (r.ok ? { seq: (r.value as { seq: number }).seq, duplicate: (r.value as { duplicate: boolean }).duplicate } : (r.error as Error).name)))).toEqual([
      [{ seq: 1, duplicate: false }],
      [{ seq: 2, duplicate: false }, 'AgentNotFoundError'],
      [{ seq: 3, duplicate: false }],
      ['AgentNotFoundError'],
      [{ seq: 4, duplicate: false }, { seq: 2, duplicate: true }],
    ]);
    expect((await store.pending('alice', 10)).map((m) => m.messageId)).toEqual(['m1', 'm2', 'm3', 'm4']);
  });

  it('a damaged row reads back as StoreCorruptionError (reads run on this thread)', async () => {
    const file = dbFile();
    const store = thread(file);
    await store.createAgent(agent('alice'));
    withRaw(file, (db) => db.prepare("UPDATE agents SET input = '{not json' WHERE id = 'alice'").run());
    await expect(store.getAgent('alice')).rejects.toBeInstanceOf(StoreCorruptionError);
  });
});

describe('sqliteStore: which writer by default', () => {
  it('the writer thread where its entry is found; the calling thread where it is not (residency bundled into files of its own)', () => {
    expect(writerThreadAvailable()).toBe(true);
    const store = track(sqliteStore(dbFile()));
    expect(sqliteWriterThread(store)).toBeDefined();
    // A module with no writer entry next to it, as in an application's own bundle.
    const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'residency-bundle-'));
    try {
      fs.writeFileSync(path.join(bundle, 'app.js'), '');
      expect(writerThreadAvailable(pathToFileURL(path.join(bundle, 'app.js')).href)).toBe(false);
      fs.writeFileSync(path.join(bundle, 'sqliteWriter.js'), '');
      expect(writerThreadAvailable(pathToFileURL(path.join(bundle, 'app2.js')).href)).toBe(true);
    } finally {
      fs.rmSync(bundle, { recursive: true, force: true });
    }
  });
});

describe('sqliteStore, writer thread: one owner per database', () => {
  it('a second store in this process, with a writer thread or without, cannot acquire: StoreLockedError naming the holder', async () => {
    const file = dbFile();
    const first = thread(file);
    const second = thread(file);
    const onMain = track(sqliteStore(file));
    const { epoch } = await first.acquire(owner(process.pid, os.hostname()));
    for (const other of [second, onMain]) {
      const error = await rejection(other.acquire(owner(999)));
      expect(error).toBeInstanceOf(StoreLockedError);
      expect(error).toMatchObject({ code: 'STORE_LOCKED', holder: owner(process.pid, os.hostname()) });
      expect((error as Error).message).toContain(`The residency database "${file}" is owned by another live runtime (pid ${process.pid} on host`);
    }
    // Another process too.
    expect(await tryInChild(file)).toMatchObject({ ok: false, name: 'StoreLockedError', holder: { pid: process.pid } });
    // A second acquire of the same store is refused.
    await expect(first.acquire(owner(1))).rejects.toBeInstanceOf(StoreLockedError);
    await first.createAgent(agent('alice'));
    await first.close();
    expect(await second.acquire(owner(999))).toEqual({ epoch: epoch + 1 });
    expect(await second.getAgent('alice')).toEqual(agent('alice'));
  });

  it('another process holding it (with its writer thread) refuses acquire; after kill -9 acquire succeeds at once', async () => {
    const file = dbFile();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, file, 'hold'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const held = await new Promise<{ pid: number; epoch: number }>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const ready = /ready (\d+) (\d+)/.exec(out);
        if (ready) resolve({ pid: Number(ready[1]), epoch: Number(ready[2]) });
      });
      child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.on('exit', (code, signal) => reject(new Error(`the holding child exited (${code ?? signal}): ${err}`)));
    });
    const store = thread(file);
    const error = await rejection(store.acquire(owner(process.pid)));
    expect(error).toBeInstanceOf(StoreLockedError);
    expect((error as StoreLockedError).holder).toMatchObject({ pid: held.pid, host: os.hostname() });
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
    expect(await store.acquire(owner(process.pid))).toEqual({ epoch: held.epoch + 1 });
  });

  it('fencing: after another owner bumped the epoch, every write rejects FencedError and writes nothing', async () => {
    const file = dbFile();
    const store = thread(file);
    const { epoch } = await store.acquire(owner(process.pid));
    await store.createAgent(agent('alice'));
    await store.createAgent(agent('bob'));
    await store.append([msg('alice', 'm1'), msg('alice', 'm2')]);
    withRaw(file, (db) =>
      db.prepare('UPDATE owner SET epoch = epoch + 1, pid = 4242, host = ?, since = ? WHERE id = 1').run('host-b', Date.UTC(2026, 0, 3)),
    );
    const everything = async () => ({
      records: await store.getAgents(['alice', 'bob', 'carol']),
      pending: await store.pending('alice'),
      rollout: await store.rollout('alice'),
      inFlight: await store.turnsInFlight(),
    });
    const before = await everything();
    const writes: [string, () => Promise<unknown>][] = [
      ['createAgent', () => store.createAgent(agent('carol'))],
      ['append', () => store.append([msg('alice', 'm3')])],
      ['beginTurn', () => store.beginTurn('alice', 1, 3_000)],
      ['commitTurn', () => store.commitTurn({ agentId: 'alice', seq: 1, outcome: 'done', snapshot: { n: 1 }, at: 3_000, durationMs: 1 })],
      ['note', () => store.note('alice', { kind: 'note', note: 'loaded', at: 3_000 })],
      ['destroyAgent', () => store.destroyAgent('bob')],
      ['batch', () => store.batch([{ op: 'createAgent', record: agent('carol') }, { op: 'destroyAgent', id: 'bob' }])],
    ];
    for (const [method, call] of writes) {
      const error = await rejection(call());
      expect(error, method).toBeInstanceOf(FencedError);
      expect(error, method).toMatchObject({ code: 'FENCED', agentId: null });
      expect((error as Error).message, method).toMatch(
        new RegExp(`taken over by pid 4242 on host "host-b".*owner epoch ${epoch + 1}; this store acquired epoch ${epoch}`),
      );
    }
    expect(await everything()).toEqual(before);
  });
});

describe('sqliteStore, writer thread: a writer thread that dies', () => {
  it('rejects the pending write and every later write with StoreError; reads go on; close resolves; ownership is free', async () => {
    const file = dbFile();
    const store = sqliteStore(file, { writer: 'thread' });
    await store.acquire(owner(process.pid));
    await store.createAgent(agent('alice'));
    // The crash is handled before the write posted after it: the write is pending when the thread dies.
    sqliteWriterThread(store)!.postMessage({ id: -1, kind: 'crash' });
    const pending = rejection(store.append([msg('alice', 'm1')]));
    const error = await pending;
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/The SQLite writer thread of ".*" failed: the SQLite writer thread was made to crash/);
    for (const call of [() => store.createAgent(agent('bob')), () => store.batch([{ op: 'append', request: msg('alice', 'm2') }]), () => store.acquire(owner(1))]) {
      expect(await rejection(call())).toBeInstanceOf(StoreError);
    }
    expect(await store.getAgent('alice')).toEqual(agent('alice'));
    expect(await store.pending('alice')).toEqual([]);
    await store.close();
    // The dead thread's connections were closed with it: the lock is free.
    const next = thread(file);
    expect(await next.acquire(owner(process.pid))).toEqual({ epoch: 2 });
  });

  it('a terminated writer thread: the same', async () => {
    const store = track(sqliteStore(dbFile(), { writer: 'thread' }));
    await store.createAgent(agent('alice'));
    await sqliteWriterThread(store)!.terminate();
    const error = await rejection(store.createAgent(agent('bob')));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/stopped \(exit code 1\)/);
  });
});

describe('sqliteStore, writer thread: the process', () => {
  it('a pending write keeps the process alive; an idle writer does not (the store never closed)', async () => {
    const file = dbFile();
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', CHILD, file, 'unclosed'], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`the child failed (${error.signal ?? error.code}): ${stderr}`));
        else resolve(stdout);
      });
    });
    expect(out.trim()).toBe('written');
    expect(withRaw(file, (db) => db.prepare('SELECT id FROM agents').pluck().all())).toEqual(['alice']);
  });

  it("opening the file again in this process keeps the writer's SQLite locks (no thread reads it with fs while another has it open)", async (context) => {
    const file = dbFile();
    const store = thread(file);
    await store.createAgent(agent('alice'));
    const before = sharedRange(file);
    if (before === null) {
      context.skip('python3 is not available to ask for POSIX locks');
      return;
    }
    expect(before).toBe('held');
    await sqliteStore(file, { readonly: true }).close();
    await sqliteStore(file).close();
    await sqliteStore(file, { writer: 'thread' }).close();
    expect(sharedRange(file)).toBe('held');
    await store.createAgent(agent('bob'));
    expect(sharedRange(file)).toBe('held');
  });
});


describe('sqliteStore, writer thread: from the built package', () => {
  // Inside node_modules so that the bundles resolve the package's dependencies as dist/ does.
  const outDir = path.join(ROOT, 'node_modules', '.cache', `residency-writer-thread-${process.pid}`);

  beforeAll(async () => {
    const config = tsupConfig as Options;
    const entry = config.entry as Record<string, string>;
    // The package's own build (formats, target, platform, shims), for the root and the writer, without types.
    await build({ ...config, entry: { index: entry.index!, sqliteWriter: entry.sqliteWriter! }, outDir, dts: false, sourcemap: false, silent: true, config: false });
  });

  afterAll(() => {
    fs.rmSync(outDir, { recursive: true, force: true });
  });

  for (const bundle of ['index.js', 'index.cjs']) {
    it(`${bundle}: the writer thread starts from the worker file next to the bundle, writes and reads`, async () => {
      const file = dbFile();
      const script = [
        "const os = require('node:os');",
        `const load = ${bundle.endsWith('.cjs') ? `Promise.resolve(require(${JSON.stringify(path.join(outDir, bundle))}))` : `import(${JSON.stringify(path.join(outDir, bundle))})`};`,
        'load.then(async (r) => {',
        `  const store = r.sqliteStore(${JSON.stringify(file)}, { writer: 'thread' });`,
        '  const { epoch } = await store.acquire({ pid: process.pid, host: os.hostname(), since: Date.now() });',
        "  await store.createAgent({ id: 'a', type: 't', parent: null, pinned: false, input: null, createdAt: 0 });",
        "  let exists = null; try { await store.createAgent({ id: 'a', type: 't', parent: null, pinned: false, input: null, createdAt: 0 }); } catch (e) { exists = e instanceof r.AgentExistsError; }",
        "  const found = (await store.getAgent('a'))?.id;",
        '  await store.close();',
        '  console.log(JSON.stringify({ epoch, found, exists }));',
        '});',
      ].join('\n');
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['-e', script], { cwd: ROOT }, (error, stdout, stderr) => {
          if (error) reject(new Error(`the child failed: ${stderr || error.message}`));
          else resolve(stdout);
        });
      });
      expect(JSON.parse(out.trim())).toEqual({ epoch: 1, found: 'a', exists: true });
    });
  }
});
