/**
 * sqliteStore: the embedded durable store, one SQLite file on better-sqlite3.
 *
 * Durability. The database runs in WAL mode with `synchronous=FULL` by default: every
 * call that writes is one transaction, and it resolves only after SQLite synced the WAL,
 * so a power loss right after a call resolved loses nothing of it. The option
 * `{ synchronous: 'NORMAL' }` syncs the WAL only at checkpoints: much faster commits,
 * and still safe when the process crashes (the OS has the writes), but after a power
 * loss or an OS crash the last transactions committed before it may be gone. In WAL
 * mode that is all NORMAL risks: the database is never corrupted, it comes back at an
 * earlier commit (appends a client saw acknowledged may be missing, and turns may run
 * again).
 *
 * The file. Its folder is created (mode 0700) when missing. A file that is not a
 * residency database (another application's, or not SQLite at all) or one written by a
 * newer residency is refused with a `StoreError` naming it, and left untouched, its
 * `-wal` and `-shm` files too; see sqliteSchema.ts for the schema, its migrations and
 * these checks. A file (or folder) this process cannot write is refused at open with a
 * `StoreError` saying so, rather than failing every write later. Other connections may
 * open the same file: every write transaction takes the write lock up front (BEGIN
 * IMMEDIATE) and waits up to BUSY_TIMEOUT_MS for it; when it still cannot have it, the
 * `StoreError` is `retryable` (SQLITE_BUSY, SQLITE_LOCKED), and the caller may retry
 * with a backoff.
 *
 * Ownership (rules 8 and 9 of Store.ts). The lock is a second SQLite connection, on the
 * side file `${path}-lock` (rollback journal, `locking_mode=EXCLUSIVE`), that writes one
 * transaction and thereby holds the file's exclusive POSIX lock until it is closed. The
 * OS drops that lock when the holder dies (SIGKILL, power loss), so the next `acquire`
 * gets it at once: there is no lease to wait out. Another process, or another store in
 * this process (SQLite keeps one lock state per file within a process), finds it held
 * (SQLITE_BUSY after LOCK_WAIT_MS, which only lets two runtimes starting at the same
 * instant settle who wins) and `acquire` rejects with `StoreLockedError`, naming the
 * holder. The holder's identity and the owner epoch live in the database (table `owner`):
 * `acquire`, once it has the lock, bumps the epoch and writes its identity in one
 * IMMEDIATE transaction; every write transaction of an acquired store then first checks
 * that the stored epoch is still its own and rejects with `FencedError`, writing nothing,
 * when it is not. That catches a takeover the lock file could not prevent: the `-lock`
 * file deleted or replaced while a runtime holds it, or a lock dropped because this
 * process opened and closed the `-lock` file by other means (POSIX drops all of a
 * process's locks on a file when any descriptor of it closes: never open the `-lock`
 * file of a running store). `close()` closes the lock connection; the `-lock` file stays
 * (deleting it could let two owners lock two different files) and blocks nobody once its
 * holder closed or died. An in-memory database (':memory:') needs no lock file: only its
 * store instance can reach it.
 *
 * Reading only. `sqliteStore(path, { readonly: true })` opens an existing residency
 * database for reading (`residency ls`, `show`, an inspector): it never creates,
 * migrates, checkpoints or writes the file, works while a runtime owns and writes it (a
 * WAL reader), refuses a missing or empty file, another application's file or a newer
 * schema with a `StoreError` naming the path, and reads an older schema from
 * READABLE_FROM on as it is (refusing older ones clearly): on a schema older than
 * COUNTED_FROM (no counters yet) it computes `agentStats`, `mailboxSize` and the `hasMail`
 * filter from the rollout and the mailbox, as before, and on a schema older than TIMED_FROM
 * it reads no timers (none was ever written there), until a writer migrates the file (it
 * checks the schema version at each read meanwhile). `acquire` and every write
 * reject with `StoreError`. A WAL database whose last connection closed has no `-wal` and
 * `-shm` files: SQLite creates them (empty) to read it, and leaves them (they are
 * harmless, and deleting them could break a runtime that opened the file meanwhile);
 * when the folder cannot be written, that read fails with a `StoreError` saying so.
 *
 * Group commit. `batch(ops)` runs its ops in one IMMEDIATE transaction, so one sync (at
 * FULL) covers them all. Every op's values are serialized to JSON before the transaction
 * starts (a value JSON cannot hold fails that op alone), the owner epoch is checked once,
 * at its start, and each op runs in a SAVEPOINT: released when it succeeds, rolled back
 * to when it fails, so a failed op leaves nothing behind and the ops after it go on. An
 * op fails alone on its own checks (AgentNotFoundError, AgentExistsError, a message not
 * pending) and on what SQLite confines to one statement (a constraint, a value too big);
 * any other SQLite failure (I/O, a full disk, a busy or damaged file, a broken schema) is
 * the transaction's: the call rejects and nothing of the batch is stored. Each single
 * write method is a batch of its one op (without a savepoint: its failure rolls the
 * transaction back), so both run the same SQL.
 *
 * The contract (Store.ts). Each write call (an `append` call with all its messages,
 * `beginTurn`, `commitTurn`, …) is one transaction: a call that rejects wrote nothing.
 * Seqs come from a per-agent counter (`agents.last_seq`), and consumed messages keep
 * their row (without the body, which the rollout keeps), so idempotency by (agent,
 * message id) holds after consumption, until retention deletes the row.
 *
 * Counters (rule 11) are columns of `agents`, updated by the statements of the write
 * that changes them (the seq counter's UPDATE counts the mailbox too), so `agentStats`,
 * `mailboxSize` and the listing filters read one row per agent.
 *
 * Retention (rule 12). A turn.finished entry carries its turn number (`rollout.turn`,
 * indexed), and a consumed message the number of the turn that consumed it. A commit
 * under `{ keepTurns: k }` finds the turn.finished of turn `turns - k` by that index, and
 * deletes the agent's rollout entries up to it and its messages consumed by turns up to
 * it and of a seq up to that turn's: each as one range bounded to `pruneBatch` rows, read
 * from the agent's oldest row, so a commit prunes in a few microseconds per row and never
 * walks the history.
 *
 * Timers (rule 13). A timer is a row of `timers`, keyed by (agent, key); the index
 * `timers_due` on (at, agent_id, key) gives `dueTimers` the due ones in order by reading
 * its head (O(limit)) and `nextDeadline` the first deadline (`min(at)`: one index seek).
 * `fire` is one `DELETE … WHERE at = ? RETURNING message` and an accept, so a fire whose
 * timer was replaced, cancelled or fired already deletes nothing and stores nothing. The
 * agent's count (`agents.timers`) moves with each insert and delete.
 *
 * Destroy (rule 5). `destroyAgent` deletes the agent's timers at once (so no deadline of
 * a destroyed agent is ever due), and up to PURGE_BATCH rows of each of the agent's
 * tables in its own transaction; when that was all, the agent's row goes too. Otherwise
 * the row is marked `destroying` (its snapshot deleted): every read and write skips the
 * agent from then on (checked through the small `agents_destroying` index, not the
 * agent's pages), and the rest goes in background steps, one transaction of PURGE_BATCH
 * rows of each per turn of the event loop, until none is left or the store closes (a
 * store opened for writing later resumes it). Spawning the id again meanwhile deletes
 * what is left of it first, in the spawn's transaction. A fenced or failed step stops
 * the deletion; the next destroy, or the next open for writing, starts it again.
 *
 * Values are stored as JSON text and parsed on each read, so nothing is ever shared
 * with a caller (and a value goes through JSON: what JSON.stringify drops, like
 * `undefined` properties, is not stored). Ids are only bound as SQL parameters. SQLite's
 * failures reject with `StoreError` (with the SQLite error as its `cause`).
 *
 * Damage. A row of an agent that no longer parses (a manual edit), or a page of the file
 * that SQLite finds damaged (SQLITE_CORRUPT, SQLITE_NOTADB: flipped bytes) while reading
 * about one agent, rejects that agent's reads (getAgent, pending, mailboxSize,
 * loadSnapshot, rollout) with `StoreCorruptionError`, so the runtime quarantines it, and
 * other agents' calls keep working as far as their own pages are sound: getAgents and
 * listAgents leave out what they cannot read rather than fail for everyone (after a
 * damaged page fails a batch read, they read the rows one by one); only damage in what
 * every listing needs (the index of ids) fails a listing.
 *
 * The methods are async for the contract but run their SQLite work synchronously (it
 * takes microseconds to a few milliseconds), so two calls never interleave.
 *
 * Writer thread. By default (`{ writer: 'thread' }`) the writes (and their fsync) run on a worker
 * thread holding a store of this kind, and the reads here through a read-only one: see
 * sqliteThreadStore.ts. It runs the prepared ops through this file's write paths (the
 * internal exports at the end), so both run the same SQL and checks.
 */

import fs from 'node:fs';
import nodePath from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import {
  AgentExistsError,
  AgentNotFoundError,
  describeOwner,
  FencedError,
  ResidencyError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
} from '../errors.js';
import { assertLimit, describeValue } from '../validate.js';
import {
  boundedLimit,
  checkCancel,
  checkDue,
  checkFire,
  checkListFilters,
  checkOps,
  checkTimer,
  commitTimers,
  DEFAULT_LIST_LIMIT,
  keptTurns,
  notPending,
  ownerOf,
  pruneBatch,
  statsOfRow,
  type CountersRow,
} from './common.js';
import { loadedSqliteDriver, sqliteDriver } from './sqliteDriver.js';
import { sqliteThreadStore, writerThreadAvailable } from './sqliteThreadStore.js';
import { checkDatabase, checkFileHeader, COUNTED_FROM, migrate, SCHEMA_VERSION, TIMED_FROM } from './sqliteSchema.js';
import type {
  AgentRecord,
  AgentStats,
  AppendRequest,
  AppendResult,
  CommitResult,
  CommitTurn,
  ListOptions,
  ListResult,
  RolloutEntry,
  Store,
  StoredMessage,
  StoreOp,
  StoreOpResult,
  StoreOwner,
  TimerRecord,
} from './Store.js';

export interface SqliteStoreOptions {
  /**
   * How hard SQLite syncs: 'FULL' (default) makes every commit durable before the call
   * resolves; 'NORMAL' may lose the last commits on a power loss (never corrupts).
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * Opens an existing residency database for reading only (default false): it never
   * creates, migrates or writes the file, works while a runtime owns it, and refuses
   * `acquire` and every write with `StoreError`.
   */
  readonly?: boolean;
  /**
   * Where the writes run. 'thread': on a worker thread that holds the file's writing
   * connection (each write transaction, its fsync included, runs there, off the event loop),
   * while this thread reads through a read-only connection of its own; see
   * sqliteThreadStore.ts. 'main': in the calling thread, inside each write call. The default
   * is 'thread': it keeps the host application's event loop free during every group commit
   * (docs/benchmarks.md, "SQLite writer: main thread or worker thread"), or 'main' where the
   * writer's entry file cannot be found (residency bundled into an application's own files;
   * `writerThreadAvailable`). An in-memory
   * database (':memory:') and a read-only store have no writer thread: they ignore it.
   */
  writer?: 'main' | 'thread';
}

/** How long a call waits for another connection's write lock before it fails. */
const BUSY_TIMEOUT_MS = 5_000;
/**
 * How long `acquire` waits for the `-lock` file: long enough for two runtimes starting at
 * the same instant to settle which one owns the store, short enough to fail at once when
 * a live owner holds it.
 */
const LOCK_WAIT_MS = 25;
/** The WAL file is truncated to this size after a checkpoint (it never shrinks otherwise). */
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
const MEMORY = ':memory:';
/**
 * Rows of each table (rollout, messages) that `destroyAgent` deletes in its own
 * transaction, and then each step of the background deletion: a few milliseconds of work.
 */
const PURGE_BATCH = 500;

interface AgentRow {
  id: string;
  type: string;
  parent: string | null;
  pinned: number;
  input: string;
  created_at: number;
}

interface StatsRow extends CountersRow {
  id: string;
  last_active_at: number | null;
}

interface TimerRow {
  agent_id: string;
  key: string;
  at: number;
  message: string;
}

interface OwnerRow {
  epoch: number;
  pid: number | null;
  host: string | null;
  since: number | null;
}

interface MessageRow {
  seq: number;
  message_id: string;
  message: string;
  at: number;
}

/** A value of a commit, serialized before its transaction starts. */
interface PreparedCommit {
  at: number;
  outcome: CommitTurn['outcome'];
  /** How many turns the retention policy keeps (`null`: all), and how many rows the commit may prune. */
  keep: number | null;
  pruneLimit: number;
  outputs: string[];
  snapshot: string | undefined;
  snapshotEntry: string;
  finished: string;
  spawned: { record: Identity; input: string }[];
  outbox: PreparedMessage[];
  next?: { seq: number; at: number };
  /** The timers the turn cancels, then schedules (of the committing agent). */
  cancel: string[];
  schedule: PreparedTimer[];
}

/** A timer, its message serialized. */
interface PreparedTimer {
  agentId: string;
  key: string;
  at: number;
  message: string;
}

interface PreparedMessage {
  agentId: string;
  messageId: string;
  message: string;
  at: number;
}

/** An agent's record without its input (serialized beside it): what a prepared op carries. */
type Identity = Omit<AgentRecord, 'input'>;

/** The record's identity, copied (the input, serialized apart, stays with the caller). */
function identityOf(record: AgentRecord): Identity {
  const { id, type, parent, pinned, createdAt } = record;
  return { id, type, parent, pinned, createdAt };
}

/**
 * A write op ready to run: its values serialized to JSON before its transaction starts,
 * and `action`, what it does, for its error messages. `append` holds the messages of one
 * `append` call (`one: false`, all or none) or of one batch op (`one: true`).
 */
type PreparedOp = { action: string } & (
  | { op: 'createAgent'; record: Identity; input: string }
  | { op: 'destroyAgent'; id: string }
  | { op: 'append'; messages: PreparedMessage[]; one: boolean }
  | { op: 'beginTurn'; agentId: string; seq: number; at: number }
  | { op: 'commitTurn'; agentId: string; seq: number; commit: PreparedCommit }
  | { op: 'note'; agentId: string; text: string; at: number | null }
  | { op: 'schedule'; timer: PreparedTimer }
  | { op: 'cancel'; agentId: string; key: string }
  | { op: 'fire'; agentId: string; key: string; at: number; messageId: string; firedAt: number }
);

/** The failure of a lone op, carried out of its transaction so that it is rolled back. */
class LoneFailure {
  constructor(readonly error: Error) {}
}

/**
 * The lock connections of owned stores, held strongly: a store dropped without close()
 * must not lose its lock to the garbage collector (better-sqlite3 closes a collected
 * connection, and with it the lock) while the process that owned it still runs.
 */
const liveLocks = new Set<BetterSqlite3.Database>();

/** The connection of each open store, for `sqliteSettings` (tests). */
const connections = new WeakMap<Store, BetterSqlite3.Database>();

/** The write paths of each writable store, for its writer thread (sqliteWriter.ts). */
const writers = new WeakMap<Store, SqliteWriter>();

/** The background deletion of each store (`sqlitePurged`, `setSqlitePurgeBatch`: tests and tools). */
const purges = new WeakMap<Store, { done: () => Promise<void>; setBatch: (rows: number) => void }>();

/**
 * The database files this process has open connections to, by device and inode, with
 * their count. A file open here is not read again with `fs` by the first check of a
 * later open: closing that descriptor would drop every POSIX lock this process's
 * connections hold on the file (POSIX locks belong to the process and the file, not to
 * a descriptor), and SQLite's coordination with other processes relies on them. SQLite
 * itself shares one descriptor per file within a process for that reason. The checks
 * SQLite runs on the new connection still run.
 */
const openFiles = new Map<string, number>();

function fileKey(path: string): string | null {
  try {
    const stat = fs.statSync(path);
    return `${stat.dev}:${stat.ino}`;
  } catch {
    return null;
  }
}

/**
 * Opens (or creates) the residency database at `path`; with `{ readonly: true }`, opens an
 * existing one for reading only. Throws `StoreError` when the file cannot be opened (or
 * written, unless read-only) or is not a residency database it can read.
 *
 * @example
 * const store = sqliteStore('./.residency/agents.db');
 * await store.acquire({ pid: process.pid, host: os.hostname(), since: Date.now() }); // => { epoch: 1 }
 * await store.createAgent({ id: 'alice', type: 'chat', parent: null, pinned: false, input: null, createdAt: 0 });
 * await store.append([{ agentId: 'alice', messageId: 'm1', message: { type: 'hi' }, at: 0 }]);
 * // => [{ agentId: 'alice', messageId: 'm1', seq: 1, duplicate: false }]
 */
export function sqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  if (typeof path !== 'string' || path === '') {
    throw new TypeError(`Expected \`path\` to be a non-empty string, got ${describeValue(path)}`);
  }
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`Expected \`options\` to be an object, got ${describeValue(options)}`);
  }
  const synchronous = options.synchronous ?? 'FULL';
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
    throw new TypeError(`Expected \`synchronous\` to be 'FULL' or 'NORMAL', got ${describeValue(synchronous)}`);
  }
  const readonly = options.readonly ?? false;
  if (typeof readonly !== 'boolean') {
    throw new TypeError(`Expected \`readonly\` to be a boolean, got ${describeValue(readonly)}`);
  }
  const inMemory = path === MEMORY;
  if (readonly && inMemory) {
    throw new TypeError(`Expected \`path\` to name a database file with \`readonly: true\`, got ':memory:' (a new, empty database)`);
  }
  const writer = options.writer ?? (writerThreadAvailable() ? 'thread' : 'main');
  if (writer !== 'main' && writer !== 'thread') {
    throw new TypeError(`Expected \`writer\` to be 'main' or 'thread', got ${describeValue(writer)}`);
  }
  if (writer === 'thread' && !readonly && !inMemory) return sqliteThreadStore(path, synchronous);
  // better-sqlite3 is loaded here, not when residency is imported (see sqliteDriver.ts).
  sqliteDriver();
  /** The store as messages name it. */
  const name = inMemory ? 'The in-memory SQLite store' : `The residency database "${path}"`;

  const db = readonly ? openReadOnly(path) : openDatabase(path, synchronous);
  /** The reads for the database's schema version (a read-only store may find an older one). */
  let reads: Reads;
  /** The writes: null on a read-only store. */
  let sql: ReturnType<typeof prepareWrites> | null = null;
  let ownerSql: ReturnType<typeof prepareOwnerStatements> | null = null;
  /** Reads the schema version, while a read-only store reads an older one (a writer may migrate it meanwhile). */
  let schemaVersion: BetterSqlite3.Statement | null = null;
  try {
    const version = readonly ? (db.pragma('user_version', { simple: true }) as number) : SCHEMA_VERSION;
    reads = prepareReads(db, version);
    if (version < SCHEMA_VERSION) schemaVersion = db.prepare('PRAGMA user_version').pluck();
    // The owner table exists from schema version 2; a read-only store never uses it.
    if (!readonly) {
      sql = prepareWrites(db);
      ownerSql = prepareOwnerStatements(db);
    }
  } catch (cause) {
    db.close();
    throw new StoreError(`Cannot open the residency database "${path}": ${messageOf(cause)}`, { cause });
  }
  const key = inMemory ? null : fileKey(path);
  if (key !== null) openFiles.set(key, (openFiles.get(key) ?? 0) + 1);
  let closed = false;
  /** Who owns the store through this instance, since `acquire`, with its epoch and lock. */
  let held: { owner: StoreOwner; epoch: number; lock: BetterSqlite3.Database | null } | null = null;

  function checkOpen(): void {
    if (closed) {
      throw new StoreError(`The SQLite store on "${path}" is closed: open it again with sqliteStore(path)`);
    }
  }

  /**
   * The reads, for the schema version the database has now: a read-only store opened on an
   * older schema moves to the counters (COUNTED_FROM) and the timers (TIMED_FROM) once a
   * writer migrated it.
   */
  function current(): Reads {
    if (schemaVersion !== null) {
      const version = Math.min(schemaVersion.get() as number, SCHEMA_VERSION);
      if (version > reads.version) {
        reads = prepareReads(db, version);
        listings.clear();
      }
      if (version >= SCHEMA_VERSION) schemaVersion = null;
    }
    return reads;
  }

  /** Rows of each table that one step of deleting a destroyed agent deletes (see destroyAgent). */
  let purgeBatch = PURGE_BATCH;
  /** The background deletion of destroyed agents' rows, while it runs. */
  let purging: Promise<void> | null = null;

  /** Refuses a write (or `acquire`) on a read-only store. */
  function refuseIfReadOnly(action: string): void {
    checkOpen();
    if (readonly) {
      throw new StoreError(
        `The SQLite store on "${path}" was opened read-only ({ readonly: true }): it cannot ${action}. ` +
          'Readers never own or write a store: open it without readonly (one owner at a time) to write',
      );
    }
  }

  /** The residency error for a failure of `action`; damage read about one agent quarantines it. */
  function failure(action: string, error: unknown, about?: { agentId: string; what: string }): Error {
    if (error instanceof ResidencyError || error instanceof TypeError) return error;
    const code = sqliteCode(error);
    if (about !== undefined && isDamage(code)) {
      return new StoreCorruptionError(
        about.agentId,
        `the database file is damaged where it keeps ${about.what} (SQLite: ${messageOf(error)})`,
        { cause: error },
      );
    }
    return new StoreError(`The SQLite store on "${path}" could not ${action}: ${messageOf(error)}`, {
      cause: error,
      retryable: isPassing(code),
    });
  }

  /** Runs a read on the open database; SQLite's errors become `StoreError`s. */
  function run<T>(action: string, work: () => T): T {
    checkOpen();
    try {
      return work();
    } catch (error) {
      throw failure(action, error);
    }
  }

  /** Runs a read about one agent: damage found on the way is that agent's (`StoreCorruptionError`). */
  function readAbout<T>(agentId: string, what: string, action: string, work: () => T): T {
    checkOpen();
    try {
      return work();
    } catch (error) {
      throw failure(action, error, { agentId, what });
    }
  }

  /** Runs `work` in one IMMEDIATE write transaction, fenced once the store was acquired. */
  function write<T>(action: string, work: () => T): T {
    refuseIfReadOnly(action);
    try {
      return writeTransaction.immediate(work) as T;
    } catch (error) {
      throw failure(action, error);
    }
  }

  /** Inside a write transaction: refuses it when another owner took over since `acquire`. */
  function fence(): void {
    if (held === null) return;
    const row = ownerSql!.read.get() as OwnerRow | undefined;
    if (row?.epoch === held.epoch) return;
    throw new FencedError(
      null,
      `${inMemory ? 'the in-memory database' : `the database "${path}"`} was taken over by ` +
        `${describeOwner(holderOf(row))}, owner epoch ${row?.epoch ?? 'none'}; this store acquired epoch ${held.epoch}`,
    );
  }

  const writeTransaction = db.transaction((work: () => unknown) => {
    fence();
    return work();
  });

  /** Stores one message (inside a write transaction): the heart of append and of the outbox. */
  function accept(request: PreparedMessage): AppendResult {
    const { agentId, messageId, message, at } = request;
    const w = sql!;
    const original = w.findMessage.get(agentId, messageId) as number | undefined;
    if (original !== undefined) {
      // The rows of a destroyed agent may still be there, for a while (destroyAgent).
      if (reads.destroying!.get(agentId) !== undefined) throw new AgentNotFoundError(agentId);
      return { agentId, messageId, seq: original, duplicate: true };
    }
    const seq = w.nextSeq.get(at, agentId) as number | undefined;
    if (seq === undefined) throw new AgentNotFoundError(agentId);
    w.insertMessage.run(agentId, seq, messageId, message, at);
    w.addEntry.run(
      agentId,
      `{"kind":"accepted","seq":${seq},"messageId":${JSON.stringify(messageId)},"message":${message},"at":${JSON.stringify(at) ?? 'null'}}`,
    );
    return { agentId, messageId, seq, duplicate: false };
  }

  /**
   * Creates the agent's row; false when the id is taken. An id whose destroyed agent's rows
   * are still being deleted in the background is free: what is left of them goes first.
   */
  function insertAgent(record: Identity, input: string): boolean {
    const { id, type, parent, pinned, createdAt } = record;
    const w = sql!;
    const insert = () => w.insertAgent.run(id, type, parent ?? null, pinned ? 1 : 0, input, createdAt).changes > 0;
    if (insert()) return true;
    if (reads.destroying!.get(id) === undefined) return false;
    w.purgeRollout.run(id);
    w.purgeAllMessages.run(id);
    w.deleteAgent.run(id);
    return insert();
  }

  function startTurn(agentId: string, seq: number, at: number): void {
    const w = sql!;
    // Checked before anything is written: an op that fails its checks writes nothing.
    if (w.startTurn.run(at, agentId, seq).changes === 0) {
      if (w.agentExists.get(agentId) === undefined) throw new AgentNotFoundError(agentId);
      throw notPending(agentId, seq, 'begin a turn on');
    }
    // A destroyed agent whose rows are still there.
    if (w.touch.run(at, agentId).changes === 0) throw new AgentNotFoundError(agentId);
    w.addEntry.run(agentId, JSON.stringify({ kind: 'turn.started', seq, at }));
  }

  function commit(agentId: string, seq: number, prepared: PreparedCommit): CommitResult {
    const w = sql!;
    const { outcome } = prepared;
    // Checked before anything is written: an op that fails its checks writes nothing.
    if (w.agentExists.get(agentId) === undefined) throw new AgentNotFoundError(agentId);
    if (w.consume.run({ agent: agentId, seq }).changes === 0) throw notPending(agentId, seq, 'commit a turn for');
    const turn = w.finishTurn.get(
      outcome === 'failed' ? 1 : 0,
      outcome === 'crashed' ? 1 : 0,
      outcome === 'interrupted' ? 1 : 0,
      prepared.at,
      agentId,
    ) as number;
    for (const output of prepared.outputs) w.addEntry.run(agentId, output);
    if (prepared.snapshot !== undefined) {
      w.saveSnapshot.run(agentId, prepared.snapshot);
      w.addEntry.run(agentId, prepared.snapshotEntry);
    }
    w.addFinished.run(agentId, prepared.finished, turn);
    // A conflict with an existing agent or an earlier one of the same commit.
    for (const { record, input } of prepared.spawned) {
      if (!insertAgent(record, input)) throw new AgentExistsError(record.id);
    }
    const result = { outbox: prepared.outbox.map(accept) };
    if (prepared.next !== undefined) {
      if (prepared.next.seq === seq) throw notPending(agentId, seq, 'begin the next turn on');
      startTurn(agentId, prepared.next.seq, prepared.next.at);
    }
    for (const key of prepared.cancel) cancelTimer(agentId, key);
    for (const timer of prepared.schedule) putTimer(timer);
    if (prepared.keep !== null) prune(agentId, turn - prepared.keep, prepared.pruneLimit);
    return result;
  }

  /** Upserts a timer of an agent that exists, counting it when it is new. */
  function putTimer(timer: PreparedTimer): void {
    const w = sql!;
    const { agentId, key, at, message } = timer;
    if (w.insertTimer.run(agentId, key, at, message).changes > 0) w.countTimers.run(1, agentId);
    else w.updateTimer.run(at, message, agentId, key);
  }

  /** Deletes the agent's timer `key`; true when there was one. */
  function cancelTimer(agentId: string, key: string): boolean {
    const w = sql!;
    if (w.deleteTimer.run(agentId, key).changes === 0) return false;
    w.countTimers.run(-1, agentId);
    return true;
  }

  /** Fires the timer if it still has deadline `at` (rule 13): its message is accepted; else null. */
  function fireTimer(op: Extract<PreparedOp, { op: 'fire' }>): AppendResult | null {
    const w = sql!;
    const { agentId, key, at, messageId, firedAt } = op;
    const message = w.takeTimer.get(agentId, key, at) as string | undefined;
    if (message === undefined) return null;
    w.countTimers.run(-1, agentId);
    return accept({ agentId, messageId, message, at: firedAt });
  }

  /**
   * Deletes, oldest first and at most `limit` of each, the agent's rollout entries up to
   * the turn.finished of its turn `last`, and its messages consumed by turns up to `last`
   * (rule 12 of Store.ts). Both walk an index from the agent's oldest row, so the work is
   * what they delete (at most `limit` rows looked at). A message consumed out of order
   * (after one with a higher seq) may stay until a later window passes its seq too.
   */
  function prune(agentId: string, last: number, limit: number): void {
    if (last < 1) return;
    const w = sql!;
    const end = w.windowEnd.get(agentId, last) as { id: number; seq: number | null } | undefined;
    // None: everything up to turn `last` is gone already.
    if (end === undefined) return;
    const rollout = (w.rolloutBound.get(agentId, end.id, limit - 1) as number | undefined) ?? end.id;
    w.pruneRollout.run(agentId, rollout);
    // A damaged entry (no seq) leaves the messages to the next commits.
    if (typeof end.seq !== 'number') return;
    const messages = (w.messagesBound.get(agentId, end.seq, limit - 1) as number | undefined) ?? end.seq;
    w.pruneMessages.run(agentId, messages, last);
  }

  /**
   * Destroys the agent (inside a write transaction). A short history goes at once; a long
   * one is marked `destroying` (every read and write treats the agent as absent from then
   * on, and its snapshot goes at once) and its rows go in the background, `purgeBatch` of
   * each table per transaction (`purge`), so no call ever waits for a long delete.
   */
  function destroy(id: string): boolean {
    const w = sql!;
    if (w.agentExists.get(id) === undefined) return false;
    w.purgeTimers.run(id);
    if (!purgeRows(id)) {
      // Nothing else is left: the snapshot follows by ON DELETE CASCADE.
      w.deleteAgent.run(id);
      return true;
    }
    w.markDestroying.run(id);
    w.deleteSnapshot.run(id);
    destroyed = true;
    return true;
  }

  /**
   * Deletes the agent's oldest rows, at most `purgeBatch` of each table (rollout,
   * messages); true when some may be left.
   */
  function purgeRows(id: string): boolean {
    const w = sql!;
    const all = Number.MAX_SAFE_INTEGER;
    const rollout = w.rolloutBound.get(id, all, purgeBatch - 1) as number | undefined;
    if (rollout === undefined) w.purgeRollout.run(id);
    else w.pruneRollout.run(id, rollout);
    const messages = w.messagesBound.get(id, all, purgeBatch - 1) as number | undefined;
    if (messages === undefined) w.purgeAllMessages.run(id);
    else w.purgeMessages.run(id, messages);
    return rollout !== undefined || messages !== undefined;
  }

  /** Set when a transaction marked an agent `destroying`: the background deletion starts once it committed. */
  let destroyed = false;

  /** One step of the background deletion, in its own write transaction; false when nothing is left. */
  function purgeStep(): boolean {
    return write('delete the rows of destroyed agents', () => {
      const w = sql!;
      const id = w.nextDestroying.get() as string | undefined;
      if (id === undefined) return false;
      if (!purgeRows(id)) w.deleteAgent.run(id);
      return true;
    });
  }

  /**
   * Starts the background deletion of destroyed agents' rows, unless it runs: one step per
   * turn of the event loop, until nothing is left or the store closes. A step that fails (the
   * store fenced, busy or closed) stops it; the next destroy, or the next open of the
   * database for writing, starts it again.
   */
  function purge(): void {
    if (readonly || closed || purging !== null) return;
    purging = new Promise<void>((resolve) => {
      const step = () => {
        let more = false;
        try {
          more = !closed && purgeStep();
        } catch {
          more = false;
        }
        if (more) {
          setImmediate(step);
        } else {
          purging = null;
          resolve();
        }
      };
      setImmediate(step);
    });
  }

  /**
   * One write op, inside a write transaction: the SQL of its single method (each single
   * write method is a batch of this one op). Throws the op's own failure.
   */
  function apply(op: PreparedOp): unknown {
    const w = sql!;
    switch (op.op) {
      case 'createAgent':
        if (!insertAgent(op.record, op.input)) throw new AgentExistsError(op.record.id);
        return undefined;
      case 'destroyAgent':
        return destroy(op.id);
      case 'append': {
        const results = op.messages.map(accept);
        return op.one ? results[0] : results;
      }
      case 'beginTurn':
        startTurn(op.agentId, op.seq, op.at);
        return undefined;
      case 'commitTurn':
        return commit(op.agentId, op.seq, op.commit);
      case 'note':
        if (w.touch.run(op.at, op.agentId).changes === 0) throw new AgentNotFoundError(op.agentId);
        w.addEntry.run(op.agentId, op.text);
        return undefined;
      case 'schedule':
        if (w.agentExists.get(op.timer.agentId) === undefined) throw new AgentNotFoundError(op.timer.agentId);
        putTimer(op.timer);
        return undefined;
      case 'cancel':
        return cancelTimer(op.agentId, op.key);
      case 'fire':
        return fireTimer(op);
    }
  }

  /** `apply` in a SAVEPOINT (better-sqlite3 nests a transaction so): its failure is rolled back alone. */
  const applyAlone = db.transaction(apply);

  /**
   * True when `error`, thrown by an op inside a batch, is the op's own failure (its checks,
   * a value SQLite cannot bind, a statement SQLite refused on its own), so the ops around
   * it go on; false when the transaction itself failed (I/O, a full disk, a busy or damaged
   * database, a broken schema: SQLite may have rolled it back already).
   */
  function isOpFailure(error: unknown): boolean {
    if (!db.inTransaction) return false;
    const code = sqliteCode(error);
    return code === undefined ? !(error instanceof FencedError) : isStatementFailure(code);
  }

  /**
   * Runs ops in ONE IMMEDIATE transaction, fenced once at its start, and says what each
   * did (see `batch`). An op that could not be prepared (its Error) fails alone without
   * running. Each op runs in a savepoint, rolled back when it fails; a lone op runs without
   * one, and its failure rolls the whole transaction back instead (it wrote nothing else).
   * Whatever else fails rejects the call, and SQLite rolls the whole transaction back.
   */
  function execute(action: string, ops: readonly (PreparedOp | Error)[]): StoreOpResult[] {
    try {
      return executeNow(action, ops);
    } finally {
      if (destroyed) {
        destroyed = false;
        purge();
      }
    }
  }

  function executeNow(action: string, ops: readonly (PreparedOp | Error)[]): StoreOpResult[] {
    refuseIfReadOnly(action);
    if (ops.length === 0) return [];
    const alone = ops.length === 1;
    if (alone && ops[0] instanceof Error) return [{ ok: false, error: ops[0] }];
    if (!alone) {
      // Optimistic first: ops rarely fail on their own, and a savepoint per op costs about
      // as much as the op. If one does fail, the whole transaction is rolled back and run
      // again with a savepoint per op (below), so that it fails alone.
      try {
        return writeTransaction.immediate(() =>
          ops.map((op): StoreOpResult => {
            if (op instanceof Error) return { ok: false, error: op };
            try {
              return { ok: true, value: apply(op) };
            } catch (error) {
              throw isOpFailure(error) ? AGAIN_WITH_SAVEPOINTS : error;
            }
          }),
        ) as StoreOpResult[];
      } catch (error) {
        if (error !== AGAIN_WITH_SAVEPOINTS) throw failure(action, error);
      }
    }
    try {
      return writeTransaction.immediate(() =>
        ops.map((op): StoreOpResult => {
          if (op instanceof Error) return { ok: false, error: op };
          try {
            return { ok: true, value: alone ? apply(op) : applyAlone(op) };
          } catch (error) {
            if (!isOpFailure(error)) throw error;
            const opError = failure(op.action, error);
            if (alone) throw new LoneFailure(opError);
            return { ok: false, error: opError };
          }
        }),
      ) as StoreOpResult[];
    } catch (error) {
      if (error instanceof LoneFailure) return [{ ok: false, error: error.error }];
      throw failure(action, error);
    }
  }

  /** A single write method: a batch of its one op, rejecting with that op's error. */
  function runOne(op: PreparedOp): unknown {
    const [result] = execute(op.action, [op]);
    if (!result!.ok) throw result!.error;
    return result!.value;
  }

  /** The record of one agent: null when absent, undefined when it cannot be read (damaged). */
  function readableRecord(id: string): AgentRecord | null | undefined {
    try {
      const row = current().getAgent.get(id) as AgentRow | undefined;
      return row === undefined ? null : toRecord(row);
    } catch (error) {
      if (error instanceof StoreCorruptionError || isDamage(sqliteCode(error))) return undefined;
      throw error;
    }
  }

  /** True when the agent is being deleted in the background: absent for every read. */
  function isDestroyed(agentId: string): boolean {
    const statement = current().destroying;
    return statement !== null && statement.get(agentId) !== undefined;
  }

  /** Cached listing statements, one per combination of filters (and one per fallback). */
  const listings = new Map<string, BetterSqlite3.Statement>();

  function listing(key: string, build: () => string): BetterSqlite3.Statement {
    let statement = listings.get(key);
    if (statement === undefined) {
      statement = db.prepare(build());
      listings.set(key, statement);
    }
    return statement;
  }

  /**
   * A page of the listing read row by row, for when a damaged page failed the batch read:
   * the ids come one at a time from an index (which holds them apart from the rows), each
   * row is read on its own, and a row that cannot be read is left out. Each step moves
   * past one id, so it ends.
   */
  function listRowByRow(filters: ListOptions, limit: number, cursor: string | null): ListResult {
    const { type, parent, pinned, hasMail } = filters;
    // The index that holds the ids of the first filter, so the ids are read without the rows.
    const by = type !== undefined ? 'type' : parent !== undefined ? 'parent' : null;
    const next = listing(`next:${by ?? ''}`, () =>
      `SELECT id FROM agents WHERE ${by === null ? '' : `${by} = @value AND `}id > @after ORDER BY id LIMIT 1`,
    ).pluck();
    const value = by === 'type' ? type : by === 'parent' ? parent : undefined;
    const agents: AgentRecord[] = [];
    let after = cursor ?? '';
    for (;;) {
      const id = next.get({ after, ...(by === null ? {} : { value }) }) as string | undefined;
      if (id === undefined) return { agents, cursor: null };
      after = id;
      const record = readableRecord(id);
      if (record === undefined || record === null) continue;
      if ((type !== undefined && record.type !== type) || (parent !== undefined && record.parent !== parent)) continue;
      if (pinned !== undefined && record.pinned !== pinned) continue;
      if (hasMail !== undefined) {
        let mail: boolean;
        try {
          mail = current().hasMail.get(id) === 1;
        } catch (error) {
          if (isDamage(sqliteCode(error))) continue;
          throw error;
        }
        if (mail !== hasMail) continue;
      }
      if (agents.length === limit) return { agents, cursor: agents[agents.length - 1]!.id };
      agents.push(record);
    }
  }

  /** The counters of the rows that can be read (a damaged one is left out, as getAgents does). */
  function readableStats(ids: readonly string[]): Map<string, AgentStats> {
    const out = new Map<string, AgentStats>();
    if (ids.length === 0) return out;
    const r = current();
    let rows: StatsRow[];
    try {
      rows = r.stats.all(JSON.stringify(ids)) as StatsRow[];
    } catch (error) {
      if (!isDamage(sqliteCode(error))) throw error;
      rows = [];
      for (const id of new Set(ids)) {
        try {
          const row = r.statsOne.get(id) as StatsRow | undefined;
          if (row !== undefined) rows.push(row);
        } catch (inner) {
          if (!isDamage(sqliteCode(inner))) throw inner;
        }
      }
    }
    for (const row of rows) out.set(row.id, statsOfRow(row));
    return out;
  }

  const store: Store = {
    kind: 'sqlite',

    async createAgent(record) {
      runOne(prepareOp({ op: 'createAgent', record }));
    },

    async getAgent(id) {
      return readAbout(id, 'its record', `read agent "${id}"`, () => {
        const row = current().getAgent.get(id) as AgentRow | undefined;
        return row === undefined ? null : toRecord(row);
      });
    },

    async getAgents(ids) {
      return run('read agents', () => {
        if (ids.length === 0) return [];
        try {
          return readableRecords(current().getAgents.all(JSON.stringify(ids)) as AgentRow[]);
        } catch (error) {
          if (!isDamage(sqliteCode(error))) throw error;
          // A damaged page: read the records one by one, leaving out those it holds.
          const out: AgentRecord[] = [];
          for (const id of new Set(ids)) {
            const record = readableRecord(id);
            if (record) out.push(record);
          }
          return out;
        }
      });
    },

    async listAgents(options: ListOptions = {}): Promise<ListResult> {
      const { type, parent, pinned, hasMail, limit = DEFAULT_LIST_LIMIT, cursor = null } = options;
      return run('list agents', () => {
        assertLimit(limit, 'limit');
        checkListFilters(options);
        const pageSize = boundedLimit(limit);
        const r = current();
        const filters = { type: type !== undefined, parent: parent !== undefined, pinned: pinned !== undefined, hasMail, cursor: cursor !== null };
        const key = JSON.stringify(filters);
        const statement = listing(key, () => {
          const where = r.listTerms(filters);
          return (
            `SELECT ${AGENT_COLUMNS} FROM agents` +
            `${where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`} ORDER BY id LIMIT @limit`
          );
        });
        let rows: AgentRow[];
        try {
          // One more row than asked tells whether a next page exists.
          rows = statement.all({
            limit: pageSize + 1,
            ...(type === undefined ? {} : { type }),
            ...(parent === undefined ? {} : { parent }),
            ...(pinned === undefined ? {} : { pinned: pinned ? 1 : 0 }),
            ...(cursor === null ? {} : { cursor }),
          }) as AgentRow[];
        } catch (error) {
          if (!isDamage(sqliteCode(error))) throw error;
          return listRowByRow(options, pageSize, cursor);
        }
        const page = rows.slice(0, pageSize);
        return { agents: readableRecords(page), cursor: rows.length > pageSize ? page[page.length - 1]!.id : null };
      });
    },

    async agentStats(ids) {
      return run('read the counters of agents', () => readableStats(ids));
    },

    async destroyAgent(id) {
      return runOne(prepareOp({ op: 'destroyAgent', id })) as boolean;
    },

    async append(batch) {
      // One op for the whole array: every message is stored, or none (rule 1).
      const op = prepareSqliteAppend(batch);
      if (batch.length === 0) {
        refuseIfReadOnly(op.action);
        return [];
      }
      return runOne(op) as AppendResult[];
    },

    async pending(agentId, limit = Number.POSITIVE_INFINITY) {
      if (limit !== Number.POSITIVE_INFINITY) assertLimit(limit, 'limit');
      return readAbout(agentId, 'its mailbox', `read the mailbox of agent "${agentId}"`, () => {
        if (isDestroyed(agentId)) return [];
        const rows = current().pending.all(agentId, limit === Number.POSITIVE_INFINITY ? -1 : boundedLimit(limit)) as MessageRow[];
        return rows.map(
          (row): StoredMessage => ({
            agentId,
            seq: row.seq,
            messageId: row.message_id,
            message: parseOf(agentId, row.message, `message #${row.seq} of its mailbox`) as StoredMessage['message'],
            at: row.at,
          }),
        );
      });
    },

    async mailboxSize(agentId) {
      return readAbout(
        agentId,
        'its mailbox',
        `count the mailbox of agent "${agentId}"`,
        () => (current().mailboxSize.get(agentId) as number | undefined) ?? 0,
      );
    },

    async beginTurn(agentId, seq, at) {
      runOne(prepareOp({ op: 'beginTurn', agentId, seq, at }));
    },

    async commitTurn(commit: CommitTurn): Promise<CommitResult> {
      return runOne(prepareOp({ op: 'commitTurn', commit })) as CommitResult;
    },

    async loadSnapshot(agentId) {
      return readAbout(agentId, 'its snapshot', `read the snapshot of agent "${agentId}"`, () => {
        const text = current().loadSnapshot.get(agentId) as string | undefined;
        return text === undefined ? null : parseOf(agentId, text, 'its snapshot');
      });
    },

    async note(agentId, entry) {
      runOne(prepareOp({ op: 'note', agentId, entry }));
    },

    async rollout(agentId, options = {}) {
      const { limit } = options;
      if (limit !== undefined) assertLimit(limit, 'limit');
      return readAbout(agentId, 'its rollout', `read the rollout of agent "${agentId}"`, () => {
        if (isDestroyed(agentId)) return [];
        const r = current();
        const texts =
          limit === undefined
            ? (r.rolloutAll.all(agentId) as string[])
            : (r.rolloutLast.all(agentId, boundedLimit(limit)) as string[]).reverse();
        return texts.map((text) => parseOf(agentId, text, 'an entry of its rollout') as RolloutEntry);
      });
    },

    async agentsWithPending() {
      return run('list the agents with pending messages', () => current().agentsWithPending.all() as string[]);
    },

    async turnsInFlight() {
      return run('list the turns in flight', () => current().turnsInFlight.all() as { agentId: string; seq: number }[]);
    },

    async dueTimers(now, limit) {
      checkDue(now, limit);
      return run('read the due timers', () => {
        const statement = current().dueTimers;
        if (statement === null) return [];
        return readableTimers(statement.all(now, boundedLimit(limit)) as TimerRow[]);
      });
    },

    async nextDeadline() {
      return run('read the next deadline', () => {
        const statement = current().nextDeadline;
        return statement === null ? null : ((statement.get() as number | null | undefined) ?? null);
      });
    },

    async timers(agentId, limit = Number.POSITIVE_INFINITY) {
      if (limit !== Number.POSITIVE_INFINITY) assertLimit(limit, 'limit');
      return readAbout(agentId, 'its timers', `read the timers of agent "${agentId}"`, () => {
        const statement = current().agentTimers;
        if (statement === null) return [];
        const rows = statement.all(agentId, limit === Number.POSITIVE_INFINITY ? -1 : boundedLimit(limit)) as Omit<TimerRow, 'agent_id'>[];
        return rows.map(
          (row): TimerRecord => ({
            agentId,
            key: row.key,
            at: row.at,
            message: parseOf(agentId, row.message, `the message of its timer "${row.key}"`) as TimerRecord['message'],
          }),
        );
      });
    },

    async batch(ops) {
      const action = `write a batch of ${Array.isArray(ops) ? ops.length : 0} operations`;
      refuseIfReadOnly(action);
      checkOps(ops);
      // Every value is serialized before the transaction starts; one that JSON cannot hold
      // fails its own op only.
      const prepared = ops.map((op): PreparedOp | Error => {
        try {
          return prepareOp(op);
        } catch (error) {
          return error instanceof Error ? error : new StoreError(String(error));
        }
      });
      return execute(action, prepared);
    },

    async acquire(who) {
      refuseIfReadOnly('be acquired');
      const owner = ownerOf(who);
      if (held !== null) throw new StoreLockedError(name, { ...held.owner });
      const lock = inMemory ? null : takeLock();
      try {
        const epoch = write('take ownership', () => ownerSql!.bump.get(owner.pid, owner.host, owner.since) as number);
        held = { owner, epoch, lock };
        if (lock) liveLocks.add(lock);
        return { epoch };
      } catch (error) {
        lock?.close();
        throw error;
      }
    },

    async close() {
      run('close', () => {
        closed = true;
        if (key !== null) {
          const count = (openFiles.get(key) ?? 1) - 1;
          if (count === 0) openFiles.delete(key);
          else openFiles.set(key, count);
        }
        try {
          db.close();
        } finally {
          // Released last: a new owner starts once this store wrote its last byte.
          if (held?.lock) {
            liveLocks.delete(held.lock);
            held.lock.close();
          }
          held = null;
        }
      });
    },
  };

  /**
   * Takes the `-lock` file: a connection that holds its exclusive lock until closed.
   * Rejects with `StoreLockedError` naming the holder when another owner holds it.
   */
  function takeLock(): BetterSqlite3.Database {
    const lockPath = `${path}-lock`;
    let lock: BetterSqlite3.Database;
    try {
      lock = new (sqliteDriver())(lockPath, { timeout: LOCK_WAIT_MS });
    } catch (cause) {
      throw new StoreError(`${name} cannot be owned: its lock file "${lockPath}" cannot be opened (${messageOf(cause)})`, {
        cause,
      });
    }
    try {
      lock.pragma('locking_mode = EXCLUSIVE');
      // One write transaction: from its commit on, the connection keeps the exclusive lock.
      lock.exec(
        'BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY, pid INTEGER); ' +
          `INSERT OR REPLACE INTO holder (id, pid) VALUES (1, ${process.pid}); COMMIT`,
      );
      return lock;
    } catch (error) {
      lock.close();
      const code = sqliteCode(error);
      if (isPassing(code)) {
        let holder: StoreOwner | null = null;
        try {
          holder = holderOf(ownerSql!.read.get() as OwnerRow | undefined);
        } catch {
          // The holder stays unnamed.
        }
        throw new StoreLockedError(name, holder, { cause: error });
      }
      throw new StoreError(
        `${name} cannot be owned: its lock file "${lockPath}" cannot be locked (${messageOf(error)}). ` +
          'When no runtime runs on the database, remove the lock file and retry',
        { cause: error },
      );
    }
  }

  connections.set(store, db);
  if (!readonly) writers.set(store, { execute, runOne });
  purges.set(store, {
    done: () => purging ?? Promise.resolve(),
    setBatch: (rows) => {
      purgeBatch = rows;
    },
  });
  // Destroyed agents whose rows a previous owner had not finished deleting.
  if (!readonly) {
    try {
      if (sql!.nextDestroying.get() !== undefined) purge();
    } catch {
      // The next destroy starts it again.
    }
  }
  return store;
}

/**
 * The settings in effect on the connection of a store that sqliteStore opened, read back
 * from SQLite; `undefined` for another store or a closed one.
 *
 * @internal For tests.
 */
export function sqliteSettings(
  store: Store,
): { journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'; busyTimeoutMs: number; foreignKeys: boolean } | undefined {
  const db = connections.get(store);
  if (db === undefined || !db.open) return undefined;
  const synchronous = db.pragma('synchronous', { simple: true }) as number;
  return {
    journalMode: db.pragma('journal_mode', { simple: true }) as string,
    synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[synchronous] ?? 'OFF',
    busyTimeoutMs: db.pragma('busy_timeout', { simple: true }) as number,
    foreignKeys: db.pragma('foreign_keys', { simple: true }) === 1,
  };
}

/**
 * Sets how long the connection of a store that sqliteStore opened waits for another
 * connection's lock (BUSY_TIMEOUT_MS by default), so a test can meet a busy database
 * without waiting.
 *
 * @internal For tests.
 */
export function setSqliteBusyTimeout(store: Store, ms: number): void {
  connections.get(store)?.pragma(`busy_timeout = ${Math.max(0, Math.trunc(ms))}`);
}

/**
 * Resolves once the background deletion of destroyed agents' rows (see `destroyAgent`)
 * has nothing left to do, or stopped (a closed or fenced store); at once when none runs.
 *
 * @internal For tests and benchmarks.
 */
export function sqlitePurged(store: Store): Promise<void> {
  return purges.get(store)?.done() ?? Promise.resolve();
}

/**
 * Sets how many rows of each table `destroyAgent` deletes in its own transaction, and each
 * background step after it (PURGE_BATCH by default), so a test can see a long history
 * deleted in steps without writing thousands of rows.
 *
 * @internal For tests.
 */
export function setSqlitePurgeBatch(store: Store, rows: number): void {
  purges.get(store)?.setBatch(Math.max(1, Math.trunc(rows)));
}

// --- for the writer thread (sqliteThreadStore.ts, sqliteWriter.ts) ----------------------

/** A write op as sqliteStore runs it: its values already JSON text, plain data a thread can be sent. @internal */
export type SqlitePreparedOp = PreparedOp;

/** The write paths of a writable sqliteStore: what its single write methods and `batch` run. @internal */
export interface SqliteWriter {
  /** `batch` once its ops are prepared: an Error in place of an op is that op's failure. */
  execute(action: string, ops: readonly (SqlitePreparedOp | Error)[]): StoreOpResult[];
  /** A single write method once its op is prepared: its value, or its op's error thrown. */
  runOne(op: SqlitePreparedOp): unknown;
}

/** The write paths of a writable store that sqliteStore opened on this thread; undefined otherwise. @internal */
export function sqliteWriterOf(store: Store): SqliteWriter | undefined {
  return writers.get(store);
}

/**
 * Prepares a write op as sqliteStore's `batch` does (its values serialized to JSON, on the
 * calling thread): throws the op's own error (a value that is not JSON, a bad timer).
 * @internal
 */
export function prepareSqliteOp(op: StoreOp): SqlitePreparedOp {
  return prepareOp(op);
}

/** Prepares the messages of one `append` call (all stored or none). @internal */
export function prepareSqliteAppend(batch: readonly AppendRequest[]): Extract<SqlitePreparedOp, { op: 'append' }> {
  return { op: 'append', action: 'append messages', messages: batch.map(prepareMessage), one: false };
}

/**
 * Counts the file as open in this thread while a connection of another thread of this
 * process has it open (a writer thread, the reader of its store), so that no open here reads
 * it with `fs` (see `openFiles`); the returned function stops counting it. A missing file
 * is not counted.
 * @internal
 */
export function holdOpenFile(path: string): () => void {
  const key = fileKey(path);
  if (key === null) return () => {};
  openFiles.set(key, (openFiles.get(key) ?? 0) + 1);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    const count = (openFiles.get(key) ?? 1) - 1;
    if (count === 0) openFiles.delete(key);
    else openFiles.set(key, count);
  };
}

/** Opens the file (checked first), sets the connection up and migrates the schema. */
function openDatabase(path: string, synchronous: 'FULL' | 'NORMAL'): BetterSqlite3.Database {
  const inMemory = path === MEMORY;
  if (!inMemory) {
    try {
      fs.mkdirSync(nodePath.dirname(path), { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new StoreError(`Cannot create the folder of the residency database "${path}": ${messageOf(cause)}`, {
        cause,
      });
    }
    checkCanWrite(path);
    if (!isOpenHere(path)) checkFileHeader(path);
  }
  let db: BetterSqlite3.Database;
  try {
    db = new (sqliteDriver())(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (cause) {
    throw new StoreError(`Cannot open the residency database "${path}": ${messageOf(cause)}`, { cause });
  }
  try {
    // Checked again on this connection, before the first write (setting journal_mode writes).
    checkDatabase(db, path);
    const journalMode = db.pragma('journal_mode = WAL', { simple: true });
    if (!inMemory && journalMode !== 'wal') {
      throw new StoreError(
        `Cannot open the residency database "${path}" in WAL mode (SQLite kept "${String(journalMode)}"): ` +
          'put it on a local file system',
      );
    }
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma('foreign_keys = ON');
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    migrate(db, path);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof ResidencyError) throw error;
    throw new StoreError(`Cannot open the residency database "${path}": ${messageOf(error)}`, { cause: error });
  }
}

/** Opens an existing residency database for reading only: nothing is created or written. */
function openReadOnly(path: string): BetterSqlite3.Database {
  if (!isOpenHere(path)) checkFileHeader(path, 'readonly');
  let db: BetterSqlite3.Database;
  try {
    db = new (sqliteDriver())(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (cause) {
    throw new StoreError(`Cannot open the residency database "${path}" for reading: ${messageOf(cause)}`, { cause });
  }
  try {
    checkDatabase(db, path, 'readonly');
    db.pragma('query_only = ON');
    return db;
  } catch (error) {
    db.close();
    if (error instanceof ResidencyError) throw error;
    if (sqliteCode(error) === 'SQLITE_CANTOPEN') {
      throw new StoreError(
        `Cannot read the residency database "${path}": SQLite cannot open it (${messageOf(error)}). A database in ` +
          `WAL mode is read through its "-wal" and "-shm" files, which a reader creates when they are missing (no ` +
          'runtime has it open): make its folder writable, or read it while a runtime has it open',
        { cause: error },
      );
    }
    throw new StoreError(`Cannot open the residency database "${path}" for reading: ${messageOf(error)}`, { cause: error });
  }
}

/** True when a connection of this process has the file open (see `openFiles`). */
function isOpenHere(path: string): boolean {
  const key = fileKey(path);
  return key !== null && openFiles.has(key);
}

/**
 * Refuses, before opening it for writing, a database file this process cannot write, or
 * a folder it cannot create files in (SQLite creates `-wal`, `-shm` and `-lock` files
 * there): such a file would open and then fail every write.
 */
function checkCanWrite(path: string): void {
  const folder = nodePath.dirname(path);
  try {
    fs.accessSync(folder, fs.constants.W_OK | fs.constants.X_OK);
  } catch (cause) {
    throw new StoreError(
      `Cannot open the residency database "${path}" for writing: its folder "${folder}" cannot be written ` +
        `(${messageOf(cause)}), and SQLite keeps its "-wal", "-shm" and "-lock" files there. Make the folder ` +
        'writable, or open the database with { readonly: true } to read it',
      { cause },
    );
  }
  try {
    fs.accessSync(path, fs.constants.W_OK);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new StoreError(
      `Cannot open the residency database "${path}" for writing: the file cannot be written (${messageOf(cause)}). ` +
        'Make it writable (chmod u+w, or chattr -i), or open it with { readonly: true } to read it',
      { cause },
    );
  }
}

function prepareOwnerStatements(db: BetterSqlite3.Database) {
  return {
    read: db.prepare('SELECT epoch, pid, host, since FROM owner WHERE id = 1'),
    bump: db.prepare('UPDATE owner SET epoch = epoch + 1, pid = ?, host = ?, since = ? WHERE id = 1 RETURNING epoch').pluck(),
  };
}

const AGENT_COLUMNS = 'id, type, parent, pinned, input, created_at';

/** A field of a rollout entry, in SQL: NULL when the entry is not valid JSON (a manual edit), rather than an error. */
function field(name: string): string {
  return `iif(json_valid(entry), entry ->> '$.${name}', NULL)`;
}

/**
 * The statements of the reads. `counted`: the database keeps the counters and the
 * `destroying` mark (schema version COUNTED_FROM on); without them (an older database, read
 * only), the reads of before: counters computed from the rollout and the mailbox.
 */
function prepareReads(db: BetterSqlite3.Database, version: number) {
  const counted = version >= COUNTED_FROM;
  const timed = version >= TIMED_FROM;
  const alive = counted ? ' AND destroying = 0' : '';
  /** The agents being deleted in the background (none before COUNTED_FROM): read from their small index only. */
  const destroyed = counted ? ' AND agent_id NOT IN (SELECT id FROM agents INDEXED BY agents_destroying WHERE destroying = 1)' : '';
  const pendingCount = 'SELECT count(*) FROM messages WHERE agent_id = agents.id AND consumed = 0';
  const turnCount = (outcome: string) =>
    `(SELECT count(*) FROM rollout WHERE agent_id = agents.id AND ${field('kind')} = 'turn.finished'${
      outcome === '' ? '' : ` AND ${field('outcome')} = '${outcome}'`
    })`;
  const timerCount = timed ? 'timers' : '0 AS timers';
  const statsColumns = counted
    ? `id, turns, failed, crashed, interrupted, mailbox, ${timerCount}, last_active_at`
    : `id, ${turnCount('')} AS turns, ${turnCount('failed')} AS failed, ${turnCount('crashed')} AS crashed, ` +
      `${turnCount('interrupted')} AS interrupted, (${pendingCount}) AS mailbox, 0 AS timers, ` +
      `(SELECT ${field('at')} FROM rollout WHERE agent_id = agents.id ORDER BY id DESC LIMIT 1) AS last_active_at`;
  return {
    version,
    counted,
    getAgent: db.prepare(`SELECT ${AGENT_COLUMNS} FROM agents WHERE id = ?${alive}`),
    getAgents: db.prepare(`SELECT ${AGENT_COLUMNS} FROM agents WHERE id IN (SELECT value FROM json_each(?))${alive}`),
    /** 1 when the agent is being deleted in the background (absent for every read and write). */
    destroying: counted
      ? db.prepare('SELECT 1 FROM agents INDEXED BY agents_destroying WHERE id = ? AND destroying = 1').pluck()
      : null,
    pending: db.prepare(
      'SELECT seq, message_id, message, at FROM messages WHERE agent_id = ? AND consumed = 0 ORDER BY seq LIMIT ?',
    ),
    mailboxSize: counted
      ? db.prepare('SELECT mailbox FROM agents WHERE id = ? AND destroying = 0').pluck()
      : db.prepare('SELECT count(*) FROM messages WHERE agent_id = ? AND consumed = 0').pluck(),
    /** Whether the agent has pending messages (the listing read row by row). */
    hasMail: counted
      ? db.prepare('SELECT mailbox > 0 FROM agents WHERE id = ?').pluck()
      : db.prepare('SELECT EXISTS (SELECT 1 FROM messages WHERE agent_id = ? AND consumed = 0)').pluck(),
    stats: db.prepare(`SELECT ${statsColumns} FROM agents WHERE id IN (SELECT value FROM json_each(?))${alive}`),
    statsOne: db.prepare(`SELECT ${statsColumns} FROM agents WHERE id = ?${alive}`),
    loadSnapshot: db.prepare('SELECT snapshot FROM snapshots WHERE agent_id = ?').pluck(),
    rolloutAll: db.prepare('SELECT entry FROM rollout WHERE agent_id = ? ORDER BY id').pluck(),
    rolloutLast: db.prepare('SELECT entry FROM rollout WHERE agent_id = ? ORDER BY id DESC LIMIT ?').pluck(),
    agentsWithPending: db.prepare(`SELECT DISTINCT agent_id FROM messages WHERE consumed = 0${destroyed}`).pluck(),
    turnsInFlight: db.prepare(
      `SELECT agent_id AS agentId, seq FROM messages WHERE consumed = 0 AND started_at IS NOT NULL${destroyed} ORDER BY agent_id, seq`,
    ),
    // The timers (none before TIMED_FROM). A destroyed agent's timers are deleted at once, so
    // these need no `destroying` check.
    /** The head of the deadline index: the due timers, in order. */
    dueTimers: timed
      ? db.prepare(
          'SELECT agent_id, key, at, message FROM timers INDEXED BY timers_due WHERE at <= ? ORDER BY at, agent_id, key LIMIT ?',
        )
      : null,
    /** The first entry of the deadline index (NULL when there is none). */
    nextDeadline: timed ? db.prepare('SELECT min(at) FROM timers').pluck() : null,
    agentTimers: timed ? db.prepare('SELECT key, at, message FROM timers WHERE agent_id = ? ORDER BY at, key LIMIT ?') : null,
    /** The WHERE terms of a listing's filters; `@name` parameters are bound by listAgents. */
    listTerms(filters: { type: boolean; parent: boolean; pinned: boolean; hasMail?: boolean; cursor: boolean }): string[] {
      const pending = 'SELECT 1 FROM messages WHERE agent_id = agents.id AND consumed = 0';
      const mail = counted ? ['mailbox = 0', 'mailbox > 0'] : [`NOT EXISTS (${pending})`, `EXISTS (${pending})`];
      return [
        ...(filters.type ? ['type = @type'] : []),
        ...(filters.parent ? ['parent = @parent'] : []),
        ...(filters.pinned ? ['pinned = @pinned'] : []),
        ...(filters.hasMail === undefined ? [] : [mail[filters.hasMail ? 1 : 0]!]),
        ...(counted ? ['destroying = 0'] : []),
        ...(filters.cursor ? ['id > @cursor'] : []),
      ];
    },
  };
}

type Reads = ReturnType<typeof prepareReads>;

/** The statements of the writes: a writer has migrated the database to SCHEMA_VERSION. */
function prepareWrites(db: BetterSqlite3.Database) {
  return {
    insertAgent: db.prepare(`INSERT INTO agents (${AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
    agentExists: db.prepare('SELECT 1 FROM agents WHERE id = ? AND destroying = 0').pluck(),
    /** Takes the agent's next seq and counts the message in its mailbox. */
    nextSeq: db
      .prepare(
        'UPDATE agents SET last_seq = last_seq + 1, mailbox = mailbox + 1, last_active_at = ? ' +
          'WHERE id = ? AND destroying = 0 RETURNING last_seq',
      )
      .pluck(),
    /** Records the agent's last activity (a turn started, a note); no change when it is absent. */
    touch: db.prepare('UPDATE agents SET last_active_at = coalesce(?, last_active_at) WHERE id = ? AND destroying = 0'),
    /** Counts a finished turn (the message leaves the mailbox); returns the turn's number. */
    finishTurn: db
      .prepare(
        'UPDATE agents SET turns = turns + 1, failed = failed + ?, crashed = crashed + ?, interrupted = interrupted + ?, ' +
          'mailbox = mailbox - 1, last_active_at = ? WHERE id = ? AND destroying = 0 RETURNING turns',
      )
      .pluck(),
    findMessage: db.prepare('SELECT seq FROM messages WHERE agent_id = ? AND message_id = ?').pluck(),
    insertMessage: db.prepare('INSERT INTO messages (agent_id, seq, message_id, message, at) VALUES (?, ?, ?, ?, ?)'),
    startTurn: db.prepare('UPDATE messages SET started_at = ? WHERE agent_id = ? AND seq = ? AND consumed = 0'),
    /** Consumes the message, numbering the turn that does (the agent's next). */
    consume: db.prepare(
      'UPDATE messages SET consumed = 1, message = NULL, turn = (SELECT turns + 1 FROM agents WHERE id = @agent) ' +
        'WHERE agent_id = @agent AND seq = @seq AND consumed = 0',
    ),
    saveSnapshot: db.prepare(
      'INSERT INTO snapshots (agent_id, snapshot) VALUES (?, ?) ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot',
    ),
    addEntry: db.prepare('INSERT INTO rollout (agent_id, entry) VALUES (?, ?)'),
    addFinished: db.prepare('INSERT INTO rollout (agent_id, entry, turn) VALUES (?, ?, ?)'),
    /** The turn.finished entry of the agent's latest turn numbered ≤ ?: where the retention window starts. */
    windowEnd: db.prepare(
      `SELECT id, ${field('seq')} AS seq FROM rollout WHERE agent_id = ? AND turn IS NOT NULL AND turn <= ? ` +
        'ORDER BY turn DESC LIMIT 1',
    ),
    // A batch is bounded by the id (seq) of the agent's row `limit` rows from its oldest, read
    // from the index, then deleted as one range: cheaper than a DELETE with a LIMIT subquery.
    /** The id of the agent's rollout entry number `?` (from 0) among those up to id ?, oldest first. */
    rolloutBound: db.prepare('SELECT id FROM rollout WHERE agent_id = ? AND id <= ? ORDER BY id LIMIT 1 OFFSET ?').pluck(),
    pruneRollout: db.prepare('DELETE FROM rollout WHERE agent_id = ? AND id <= ?'),
    /** The seq of the agent's message number `?` (from 0) among those up to seq ?, oldest first. */
    messagesBound: db.prepare('SELECT seq FROM messages WHERE agent_id = ? AND seq <= ? ORDER BY seq LIMIT 1 OFFSET ?').pluck(),
    pruneMessages: db.prepare(
      'DELETE FROM messages WHERE agent_id = ? AND seq <= ? AND consumed = 1 AND coalesce(turn, 0) <= ?',
    ),
    markDestroying: db.prepare('UPDATE agents SET destroying = 1, mailbox = 0, timers = 0 WHERE id = ?'),
    insertTimer: db.prepare('INSERT INTO timers (agent_id, key, at, message) VALUES (?, ?, ?, ?) ON CONFLICT (agent_id, key) DO NOTHING'),
    updateTimer: db.prepare('UPDATE timers SET at = ?, message = ? WHERE agent_id = ? AND key = ?'),
    countTimers: db.prepare('UPDATE agents SET timers = timers + ? WHERE id = ?'),
    deleteTimer: db.prepare('DELETE FROM timers WHERE agent_id = ? AND key = ?'),
    /** Deletes the timer if it still has that deadline, returning its message. */
    takeTimer: db.prepare('DELETE FROM timers WHERE agent_id = ? AND key = ? AND at = ? RETURNING message').pluck(),
    purgeTimers: db.prepare('DELETE FROM timers WHERE agent_id = ?'),
    deleteSnapshot: db.prepare('DELETE FROM snapshots WHERE agent_id = ?'),
    purgeRollout: db.prepare('DELETE FROM rollout WHERE agent_id = ?'),
    purgeMessages: db.prepare('DELETE FROM messages WHERE agent_id = ? AND seq <= ?'),
    purgeAllMessages: db.prepare('DELETE FROM messages WHERE agent_id = ?'),
    nextDestroying: db.prepare('SELECT id FROM agents INDEXED BY agents_destroying WHERE destroying = 1 LIMIT 1').pluck(),
    deleteAgent: db.prepare('DELETE FROM agents WHERE id = ?'),
  };
}

/** Serializes an op before its transaction; a value JSON cannot hold throws its `StoreError`. */
function prepareOp(op: StoreOp): PreparedOp {
  switch (op.op) {
    case 'createAgent': {
      const { record } = op;
      return {
        op: 'createAgent',
        action: `create agent "${record.id}"`,
        record: identityOf(record),
        input: toJson(record.input, `the input of agent "${record.id}"`),
      };
    }
    case 'destroyAgent':
      return { op: 'destroyAgent', action: `destroy agent "${op.id}"`, id: op.id };
    case 'append': {
      const { agentId, messageId } = op.request;
      return {
        op: 'append',
        action: `append message "${messageId}" to agent "${agentId}"`,
        messages: [prepareMessage(op.request)],
        one: true,
      };
    }
    case 'beginTurn':
      return { op: 'beginTurn', action: `begin a turn of agent "${op.agentId}"`, agentId: op.agentId, seq: op.seq, at: op.at };
    case 'commitTurn': {
      const { agentId, seq } = op.commit;
      return {
        op: 'commitTurn',
        action: `commit the turn of agent "${agentId}" on message #${seq}`,
        agentId,
        seq,
        commit: prepareCommit(op.commit),
      };
    }
    case 'note':
      return {
        op: 'note',
        action: `write a note for agent "${op.agentId}"`,
        agentId: op.agentId,
        text: toJson(op.entry, `a note for agent "${op.agentId}"`),
        at: typeof op.entry?.at === 'number' ? op.entry.at : null,
      };
    case 'schedule': {
      checkTimer(op.timer);
      const { agentId, key } = op.timer;
      return { op: 'schedule', action: `schedule timer "${key}" of agent "${agentId}"`, timer: prepareTimer(op.timer) };
    }
    case 'cancel':
      checkCancel(op.agentId, op.key);
      return { op: 'cancel', action: `cancel timer "${op.key}" of agent "${op.agentId}"`, agentId: op.agentId, key: op.key };
    case 'fire': {
      checkFire(op);
      const { agentId, key, at, messageId, firedAt } = op;
      return { op: 'fire', action: `fire timer "${key}" of agent "${agentId}"`, agentId, key, at, messageId, firedAt };
    }
  }
}

function prepareTimer(timer: TimerRecord): PreparedTimer {
  const { agentId, key, at, message } = timer;
  return { agentId, key, at, message: toJson(message, `the message of timer "${key}" of agent "${agentId}"`) };
}

/**
 * The timers of the rows that parse. A timer whose message is damaged (a manual edit) is
 * left out of this multi-agent read rather than failing it (`timers` of its agent rejects
 * with StoreCorruptionError); it stays until its agent cancels, replaces or destroys it.
 */
function readableTimers(rows: readonly TimerRow[]): TimerRecord[] {
  const out: TimerRecord[] = [];
  for (const row of rows) {
    try {
      const message = parseOf(row.agent_id, row.message, `the message of its timer "${row.key}"`) as TimerRecord['message'];
      out.push({ agentId: row.agent_id, key: row.key, at: row.at, message });
    } catch (error) {
      if (!(error instanceof StoreCorruptionError)) throw error;
    }
  }
  return out;
}

/** Thrown inside an optimistic batch when one op failed on its own: run it again with savepoints. */
const AGAIN_WITH_SAVEPOINTS = Symbol('again with savepoints');

function prepareCommit(turn: CommitTurn): PreparedCommit {
  const { agentId, seq, outcome, at, durationMs, error } = turn;
  const what = `the turn of agent "${agentId}" on message #${seq}`;
  return {
    at,
    outcome,
    keep: keptTurns(turn.retain),
    pruneLimit: pruneBatch(turn),
    outputs: (turn.outputs ?? []).map((output, i) => toJson({ kind: 'output', seq, output, at }, `output ${i} of ${what}`)),
    snapshot: turn.snapshot === undefined ? undefined : toJson(turn.snapshot, `the snapshot of ${what}`),
    snapshotEntry:
      turn.value === undefined
        ? JSON.stringify({ kind: 'snapshot', seq, at })
        : toJson({ kind: 'snapshot', seq, at, value: turn.value }, `the state value of ${what}`),
    finished: toJson(
      { kind: 'turn.finished', seq, outcome, at, durationMs, ...(error === undefined ? {} : { error }) },
      `the record of ${what}`,
    ),
    spawned: (turn.spawned ?? []).map((record) => ({
      record: identityOf(record),
      input: toJson(record.input, `the input of agent "${record.id}" spawned by ${what}`),
    })),
    outbox: (turn.outbox ?? []).map(prepareMessage),
    ...timersOf(turn),
    ...(turn.next === undefined ? {} : { next: { seq: turn.next.seq, at: turn.next.at } }),
  };
}

/** The timers a commit cancels and schedules, checked and serialized. */
function timersOf(turn: CommitTurn): { cancel: string[]; schedule: PreparedTimer[] } {
  const { cancel, schedule } = commitTimers(turn);
  return { cancel: [...cancel], schedule: schedule.map(prepareTimer) };
}

function prepareMessage(request: AppendRequest): PreparedMessage {
  const { agentId, messageId, message, at } = request;
  return { agentId, messageId, message: toJson(message, `message "${messageId}" to agent "${agentId}"`), at };
}

function toRecord(row: AgentRow): AgentRecord {
  return {
    id: row.id,
    type: row.type,
    parent: row.parent,
    pinned: row.pinned !== 0,
    input: parseOf(row.id, row.input, 'the input in its record'),
    createdAt: row.created_at,
  };
}

/**
 * The records of the rows that parse. A damaged record is left out of these multi-agent
 * reads rather than failing them: the runtime checks a batch of sends to several agents
 * with one getAgents, and one damaged agent must not fail the sends to the others
 * (getAgent of the damaged agent rejects with StoreCorruptionError).
 */
function readableRecords(rows: readonly AgentRow[]): AgentRecord[] {
  const out: AgentRecord[] = [];
  for (const row of rows) {
    try {
      out.push(toRecord(row));
    } catch (error) {
      if (!(error instanceof StoreCorruptionError)) throw error;
    }
  }
  return out;
}

/** JSON text of a value on its way in; a value JSON cannot hold is refused. */
function toJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw new StoreError(`Cannot store ${what}: it is not JSON (${messageOf(cause)}). Store JSON values only`, {
      cause,
    });
  }
  if (text === undefined) {
    throw new StoreError(`Cannot store ${what}: it is not JSON (${describeValue(value)}). Store JSON values only`);
  }
  return text;
}

/** Parses JSON text read from the database; damaged text quarantines its agent only. */
function parseOf(agentId: string, text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new StoreCorruptionError(agentId, `${what} is not valid JSON (${messageOf(cause)})`, { cause });
  }
}



/** Who the owner row names, or null when no one ever acquired the store. */
function holderOf(row: OwnerRow | undefined): StoreOwner | null {
  if (row === undefined || row.pid === null || row.host === null || row.since === null) return null;
  return { pid: row.pid, host: row.host, since: row.since };
}

/** The SQLite result code of an error (`SQLITE_BUSY`, `SQLITE_CORRUPT_INDEX`, …), if it is one. */
function sqliteCode(error: unknown): string | undefined {
  const SqliteError = loadedSqliteDriver()?.SqliteError;
  if (SqliteError !== undefined && error instanceof SqliteError) return error.code;
  return undefined;
}

/** SQLite found the file damaged (flipped bytes, a truncated page, not a database). */
function isDamage(code: string | undefined): boolean {
  return code !== undefined && (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_'));
}

/**
 * A failure SQLite confines to one statement, leaving the transaction as it was before the
 * statement: a constraint, a value too big, of the wrong type or out of range.
 */
function isStatementFailure(code: string): boolean {
  return /^SQLITE_(CONSTRAINT|TOOBIG|MISMATCH|RANGE)(_|$)/.test(code);
}

/** Another connection held a lock: the same call may succeed later. */
function isPassing(code: string | undefined): boolean {
  return code !== undefined && /^SQLITE_(BUSY|LOCKED)(_|$)/.test(code);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
