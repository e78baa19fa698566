/**
 * sqliteStore with its writer on a worker thread: `sqliteStore(path, { writer: 'thread' })`.
 *
 * Why. better-sqlite3 runs a transaction, its fsync included, inside the call that writes:
 * on the thread that calls it. On the main thread every group commit of the runtime (one
 * `store.batch` per turn of the event loop) then holds the host application's event loop
 * for the whole commit, 2.6 ms at p50 and 6–14 ms at p99 at synchronous=FULL on the
 * benchmark machine (docs/benchmarks.md, "SQLite writer: main thread or worker thread").
 * Here a worker thread (sqliteWriter.ts) holds the file's writing connection and runs every
 * write: the calling thread only prepares the ops (their values serialized to JSON, as
 * sqliteStore does before its transaction) and posts them, and awaits the answer. It never
 * blocks on the worker otherwise.
 *
 * What runs where.
 * - Writes (`batch`, the single write methods, `acquire`, `close`) run on the writer
 *   thread, one at a time, in the order they were called, each with exactly the SQL and the
 *   checks of sqliteStore (the writer holds a sqliteStore of its own and runs the prepared
 *   ops through its write paths): the same transactions, fencing (the owner epoch checked
 *   inside each write transaction), savepoints, background deletion of destroyed agents'
 *   rows, checkpoints. The ownership lock (the `-lock` file's connection) lives on the
 *   writer thread: SQLite keeps one lock state per file in a process, so a second store of
 *   this process, on any thread, finds it held (StoreLockedError).
 * - Reads run on the calling thread through a read-only connection of its own
 *   (`sqliteStore(path, { readonly: true })`), synchronously, as sqliteStore's reads do.
 * - Values are serialized on the calling thread (as sqliteStore's batch does), so a value
 *   JSON cannot hold fails its own op with the same StoreError, and what reaches the
 *   writer is JSON text and plain fields.
 *
 * Read after write. The file is in WAL mode. A write call resolves only when the writer's
 * answer arrived, and the writer answers after its transaction committed (synced, at FULL).
 * Every read here is its own read transaction (autocommit), which starts from the newest
 * commit in the WAL index (shared memory, the `-shm` file): so a read that starts after a
 * write resolved sees that write, and everything committed before it.
 *
 * Errors cross the thread as data (threadErrors.ts) and come back instances of the same
 * classes with the same fields: StoreError (`retryable`), AgentNotFoundError,
 * AgentExistsError, FencedError, StoreLockedError (`holder`), StoreCorruptionError,
 * TypeError, a SqliteError cause with its `code`.
 *
 * Opening. The factory stays synchronous and refuses what sqliteStore refuses, at once:
 * it opens the file for writing on this thread first (creating, checking and migrating it,
 * throwing sqliteStore's errors), opens the reader, closes that first connection, then
 * starts the writer thread, which opens its own (requests posted meanwhile wait for it).
 * None of them reads the file with `fs` while another connection of this process has it
 * open (see `openFiles` in sqliteStore.ts): each thread counts the others' connections.
 *
 * Lifetime. The worker keeps the process alive only while a write is pending (it is
 * unref'd when idle, as a store on the main thread holds nothing that keeps the process
 * alive). `close()` closes the reader, then the writer's store (the last connection:
 * it checkpoints the WAL and releases ownership), then terminates the worker. A writer
 * thread that dies (it crashed, or was terminated) rejects every pending write with a
 * StoreError, and every later write and `acquire` too; reads go on through the reader
 * until `close()`. The worker loads from sqliteWriter.js next to this module in the built
 * package (an entry of its own, in both formats), and from sqliteWriter.ts with tsx's
 * loader registered in the worker when running from source (vitest, tsx).
 *
 * The internal helpers of sqliteStore for tests (`sqliteSettings`, `setSqliteBusyTimeout`,
 * `sqlitePurged`, `setSqlitePurgeBatch`) see stores whose writes run on the calling thread
 * only.
 */

import fs from 'node:fs';
import { createRequire } from 'node:module';
import nodePath from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { StoreError } from '../errors.js';
import { checkOps, ownerOf } from './common.js';
import type { AppendResult, CommitResult, Store, StoreOp, StoreOpResult } from './Store.js';
import { holdOpenFile, prepareSqliteAppend, prepareSqliteOp, sqliteStore, type SqlitePreparedOp } from './sqliteStore.js';
import type { SentResult, WriterData, WriterReply, WriterRequest } from './sqliteWriter.js';
import { receiveError } from './threadErrors.js';

type Request = WriterRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** The worker of each store opened here (tests: a crashed writer). */
const workers = new WeakMap<Store, Worker>();

/**
 * The store of `sqliteStore(path, { writer: 'thread' })`: writes on a worker thread, reads
 * here. Throws what sqliteStore throws for the file (synchronously).
 */
export function sqliteThreadStore(path: string, synchronous: 'FULL' | 'NORMAL'): Store {
  // Every check, the creation and the migration of the file, here and now.
  const first = sqliteStore(path, { synchronous, writer: 'main' });
  let reader: Store;
  try {
    reader = sqliteStore(path, { readonly: true });
  } finally {
    // Its close runs synchronously; the reader, open meanwhile, keeps the file's WAL.
    first.close().catch(() => {});
  }
  // The writer's connections count as open on this thread while it lives.
  const release = holdOpenFile(path);
  let worker: Worker;
  try {
    worker = startWriter({ path, synchronous });
  } catch (cause) {
    release();
    void reader.close();
    throw new StoreError(`Cannot start the SQLite writer thread of "${path}": ${messageOf(cause)}`, { cause });
  }

  let closed = false;
  let closing = false;
  /** Why the writer is gone, once it is: every pending and later write rejects with it. */
  let dead: StoreError | null = null;
  let next = 0;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();

  worker.unref();
  worker.on('message', (reply: WriterReply) => {
    const call = pending.get(reply.id);
    if (call === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if (reply.ok) call.resolve(reply.value);
    else call.reject(receiveError(reply.error));
  });
  worker.on('error', (error) => {
    fail(new StoreError(`The SQLite writer thread of "${path}" failed: ${messageOf(error)}. Writes are refused: close the store and open it again`, { cause: error }));
  });
  worker.on('messageerror', (error) => {
    fail(new StoreError(`The SQLite writer thread of "${path}" sent an answer that could not be read: ${messageOf(error)}`, { cause: error }));
  });
  worker.on('exit', (code) => {
    if (closing) return;
    fail(new StoreError(`The SQLite writer thread of "${path}" stopped (exit code ${code}). Writes are refused: close the store and open it again`));
  });

  function fail(error: StoreError): void {
    if (dead !== null) return;
    dead = error;
    for (const call of pending.values()) call.reject(error);
    pending.clear();
    worker.unref();
    void worker.terminate();
  }

  /** Posts a request; resolves with the writer's answer. */
  function call(request: Request): Promise<unknown> {
    if (dead !== null) return Promise.reject(dead);
    const id = next++;
    return new Promise((resolve, reject) => {
      try {
        worker.postMessage({ id, ...request });
      } catch (error) {
        // A value the structured clone cannot copy (a function where an id should be).
        reject(new TypeError(`Cannot pass the write to the SQLite writer thread: ${messageOf(error)}`, { cause: error }));
        return;
      }
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
    });
  }

  function checkOpen(): void {
    if (closed) throw new StoreError(`The SQLite store on "${path}" is closed: open it again with sqliteStore(path)`);
  }

  /** A single write method: its op prepared here, run by the writer. */
  async function one(prepare: () => SqlitePreparedOp): Promise<unknown> {
    checkOpen();
    return call({ kind: 'one', op: prepare() });
  }

  /** The batch's prepared ops, run by the writer; an op that failed here keeps its error. */
  async function runBatch(action: string, prepared: (SqlitePreparedOp | Error)[]): Promise<StoreOpResult[]> {
    const sent = await call({ kind: 'batch', action, ops: prepared.map((op) => (op instanceof Error ? null : op)) }) as SentResult[];
    return sent.map((r, i) => {
      const mine = prepared[i];
      if (mine instanceof Error) return { ok: false, error: mine };
      return r.ok ? r : { ok: false, error: receiveError(r.error) };
    });
  }

  const store: Store = {
    kind: 'sqlite',
    // The writer answers in order and retries a busy database itself (sqliteWriter.ts).
    pipelined: true,

    createAgent: async (record) => void (await one(() => prepareSqliteOp({ op: 'createAgent', record }))),
    getAgent: (id) => reader.getAgent(id),
    getAgents: (ids) => reader.getAgents(ids),
    listAgents: (options) => reader.listAgents(options),
    agentStats: (ids) => reader.agentStats(ids),
    destroyAgent: async (id) => (await one(() => prepareSqliteOp({ op: 'destroyAgent', id }))) as boolean,

    async append(batch) {
      checkOpen();
      const op = prepareSqliteAppend(batch);
      if (batch.length === 0) return [];
      return (await call({ kind: 'one', op })) as AppendResult[];
    },
    pending: (agentId, limit) => reader.pending(agentId, limit),
    mailboxSize: (agentId) => reader.mailboxSize(agentId),

    beginTurn: async (agentId, seq, at) => void (await one(() => prepareSqliteOp({ op: 'beginTurn', agentId, seq, at }))),
    commitTurn: async (commit) => (await one(() => prepareSqliteOp({ op: 'commitTurn', commit }))) as CommitResult,
    loadSnapshot: (agentId) => reader.loadSnapshot(agentId),
    note: async (agentId, entry) => void (await one(() => prepareSqliteOp({ op: 'note', agentId, entry }))),
    rollout: (agentId, options) => reader.rollout(agentId, options),

    agentsWithPending: () => reader.agentsWithPending(),
    turnsInFlight: () => reader.turnsInFlight(),

    dueTimers: (now, limit) => reader.dueTimers(now, limit),
    nextDeadline: () => reader.nextDeadline(),
    timers: (agentId, limit) => reader.timers(agentId, limit),

    async batch(ops: readonly StoreOp[]) {
      checkOpen();
      checkOps(ops);
      const action = `write a batch of ${ops.length} operations`;
      // Serialized here, before the writer's transaction, as sqliteStore does: a value JSON
      // cannot hold fails its own op only.
      const prepared = ops.map((op): SqlitePreparedOp | Error => {
        try {
          return prepareSqliteOp(op);
        } catch (error) {
          return error instanceof Error ? error : new StoreError(String(error));
        }
      });
      if (prepared.length === 0) return [];
      if (prepared.length === 1 && prepared[0] instanceof Error) return [{ ok: false, error: prepared[0] }];
      try {
        return await runBatch(action, prepared);
      } catch (error) {
        if (!(error instanceof TypeError) || !(error.cause instanceof Error) || error.cause.name !== 'DataCloneError') throw error;
        // Some op holds a value that cannot be sent to the thread: it fails alone.
        return runBatch(
          action,
          prepared.map((op) => {
            if (op instanceof Error) return op;
            try {
              structuredClone(op);
              return op;
            } catch (cause) {
              return new TypeError(`Cannot ${op.action}: a value cannot be passed to the SQLite writer thread (${messageOf(cause)})`, { cause });
            }
          }),
        );
      }
    },

    async acquire(who) {
      checkOpen();
      return (await call({ kind: 'acquire', owner: ownerOf(who) })) as { epoch: number };
    },

    async close() {
      checkOpen();
      closed = true;
      try {
        // First: the writer's connection, closed last, checkpoints the WAL into the file.
        await reader.close();
      } finally {
        let failure: unknown = null;
        if (dead === null) {
          try {
            await call({ kind: 'close' });
          } catch (error) {
            failure = error;
          }
        }
        closing = true;
        for (const c of pending.values()) c.reject(new StoreError(`The SQLite store on "${path}" was closed before the write was done`));
        pending.clear();
        await worker.terminate();
        release();
        if (failure !== null) throw failure;
      }
    },
  };
  workers.set(store, worker);
  return store;
}

/**
 * The worker of a store that `sqliteStore(path, { writer: 'thread' })` opened, else undefined.
 *
 * @internal For tests (a writer thread that dies).
 */
export function sqliteWriterThread(store: Store): Worker | undefined {
  return workers.get(store);
}

/**
 * Starts the writer thread: sqliteWriter.js next to this module (the built package, ES
 * module or CommonJS build alike: each build has its own), or sqliteWriter.ts with tsx's
 * ES module loader registered in the worker first (from source: a worker does not inherit
 * the loader its parent was started with).
 */
function startWriter(data: WriterData): Worker {
  const here = moduleUrl();
  const ext = nodePath.extname(new URL(here).pathname);
  const options = { workerData: data };
  if (ext !== '.ts') return new Worker(new URL(`./sqliteWriter${ext}`, here), options);
  const entry = new URL('./sqliteWriter.ts', here).href;
  const boot = `import(${JSON.stringify(tsxApi(here))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { ...options, eval: true });
}

const available = new Map<string, boolean>();

/**
 * Whether the writer thread can start from the module at `here` (default: this one): its
 * entry file is next to it (the built package), or, from source, the entry and tsx are
 * found. False when an application bundled residency into files of its own, without the
 * writer's entry: `sqliteStore(path)` then writes on the calling thread (the writer thread
 * is only the default, not a requirement; `{ writer: 'thread' }` still insists).
 * @internal
 */
export function writerThreadAvailable(here = moduleUrl()): boolean {
  let ok = available.get(here);
  if (ok === undefined) {
    try {
      const ext = nodePath.extname(new URL(here).pathname);
      ok = fs.existsSync(fileURLToPath(new URL(`./sqliteWriter${ext}`, here)));
      if (ok && ext === '.ts') tsxApi(here);
    } catch {
      ok = false;
    }
    available.set(here, ok);
  }
  return ok;
}

/** This module's URL: `import.meta.url`, or `__filename` in a CommonJS build where the bundler leaves `import.meta` empty. */
function moduleUrl(): string {
  const url = (import.meta as { url?: string }).url;
  return url ?? pathToFileURL(__filename).href;
}

/** The URL of tsx's ES module API (`tsx/esm/api`, its `import` entry), resolved from this module. */
function tsxApi(from: string): string {
  const manifest = createRequire(fileURLToPath(from)).resolve('tsx/package.json');
  const exported = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { exports?: Record<string, unknown> }).exports?.['./esm/api'];
  const entry =
    typeof exported === 'string'
      ? exported
      : ((exported as { import?: string | { default?: string } } | undefined)?.import ?? './dist/esm/api/index.mjs');
  const file = typeof entry === 'string' ? entry : (entry.default ?? './dist/esm/api/index.mjs');
  return pathToFileURL(nodePath.join(nodePath.dirname(manifest), file)).href;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
