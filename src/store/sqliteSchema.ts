/**
 * The schema of a residency SQLite database, its migrations, and the checks that keep
 * sqliteStore away from files that are not its own.
 *
 * A residency database says what it is in the SQLite header: `PRAGMA application_id` is
 * APPLICATION_ID and `PRAGMA user_version` is the schema version. A file is opened for
 * writing only when it is empty (no schema, application id 0, user version 0: a new
 * database) or when it carries our application id and a schema version this code knows;
 * anything else is refused with a `StoreError` naming the file, before a single byte of
 * it (or of its `-wal` and `-shm` files) is written. A read-only store opens only a
 * residency database of a schema version from READABLE_FROM to SCHEMA_VERSION (never a
 * missing or empty file).
 *
 * The first check reads the file with `fs` and touches nothing else: opening a database
 * in WAL mode with SQLite, even read-only, creates `-wal` and `-shm` files next to it,
 * and a read-write connection checkpoints the WAL into the file and deletes both when it
 * closes. The header that counts is the newest committed copy of page 1: in the `-wal`
 * file when a writer left one there (a writer that died before a checkpoint leaves the
 * main file's header as it was, often that of an empty database), else in the file. So
 * the check reads the 100-byte header of the file and, when a `-wal` file lies next to
 * it, the WAL's frames (validating their checksums as SQLite's recovery does) for the
 * last committed page 1; `-shm` is never opened. Only a database without a `-wal` file
 * and without our application id is opened with SQLite (read-only, which creates no
 * side file then) to name its tables in the error. A second check runs on the SQLite
 * connection before anything is written, and again inside the migration transaction, in
 * case another process changed the file in between.
 *
 * Migrations run in one IMMEDIATE transaction, together with the header update, so a
 * database is at one schema version or the next, never in between. To change the schema,
 * append a migration to MIGRATIONS; never edit one that has shipped. When a migration
 * changes what the reads of a read-only store use, raise READABLE_FROM to its version.
 */

import fs from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { sqliteDriver } from './sqliteDriver.js';

/** `PRAGMA application_id` of a residency database: "rsdy" in ASCII. */
export const APPLICATION_ID = 0x72_73_64_79;

/**
 * The migrations, in order: `MIGRATIONS[v]` takes a database from schema version `v` to
 * `v + 1`. The schema version this code writes is their count.
 *
 * Version 1:
 * - `agents`: the registry record, and `last_seq`, the last seq given to a message of the
 *   agent (the counter that makes seqs never reused while consumed rows are kept).
 * - `messages`: every message the agent ever accepted, by (agent, seq); `message_id` is
 *   unique per agent (idempotency). `consumed` is 1 once a turn committed it (its body is
 *   then dropped: the rollout keeps a copy); `started_at` is set by `beginTurn`, so a turn
 *   in flight is a message with `started_at` set and `consumed = 0`. Two partial indexes
 *   keep the pending and in-flight queries proportional to what they return.
 * - `snapshots`: the latest snapshot of each agent (JSON text).
 * - `rollout`: the rollout entries (JSON text), ordered by the rowid `id`.
 * Every table of an agent refers to `agents` with ON DELETE CASCADE: deleting the
 * registry row deletes everything else of the agent.
 *
 * Version 2:
 * - `owner`: one row, the store's owner epoch (the fencing token, bumped by each
 *   `acquire`) and the identity of the runtime that last acquired it (pid, host, since:
 *   ms since epoch), named when another runtime finds the store locked. The lock itself
 *   is not in the database (see sqliteStore.ts).
 *
 * Version 3 (bounded history and O(1) bookkeeping; rules 5, 11 and 12 of Store.ts):
 * - `agents` gains the counters, kept by the transactions that change them: `turns`
 *   (turn.finished entries of any outcome), `failed`, `crashed`, `interrupted`, `mailbox`
 *   (pending messages), `last_active_at` (the `at` of the last accepted message, turn
 *   record or note; NULL before any), and `destroying` (1 while a destroyed agent's rows
 *   are deleted in the background: every read and write treats it as absent).
 * - `rollout.turn`: on a turn.finished entry, the agent's number of that turn (1, 2, …);
 *   NULL on other entries. The partial index `rollout_turns` finds the entry that ends
 *   the turn before a retention window in O(log n).
 * - `messages.turn`: on a consumed message, the number of the turn that consumed it.
 * - partial indexes `agents_pinned`, `agents_with_mail` and `agents_destroying`, so the
 *   listing filters and the destroyed-agent checks read only what matches.
 * The migration backfills all of it from the rows already there: counters from the
 *   rollout and the mailbox, turn numbers in rollout order. A rollout entry that is not
 *   valid JSON (a manual edit) counts for nothing, rather than failing the migration.
 *
 * Version 4 (durable timers; rule 13 of Store.ts):
 * - `timers`: the pending timers, by (agent, key), each with its deadline `at` and its
 *   message (JSON text). The index `timers_due` on (at, agent_id, key) is the order of
 *   `dueTimers`: the due timers are its head, and `min(at)` (`nextDeadline`) its first
 *   entry.
 * - `agents.timers`: the count of the agent's pending timers (a counter, rule 11).
 * Nothing to backfill: no timer existed before.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    parent TEXT,
    pinned INTEGER NOT NULL,
    input TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX agents_by_type ON agents (type, id);
  CREATE INDEX agents_by_parent ON agents (parent, id);

  CREATE TABLE messages (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    message TEXT,
    at REAL NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    PRIMARY KEY (agent_id, seq)
  ) STRICT, WITHOUT ROWID;
  CREATE UNIQUE INDEX messages_by_message_id ON messages (agent_id, message_id);
  CREATE INDEX messages_pending ON messages (agent_id, seq) WHERE consumed = 0;
  CREATE INDEX messages_in_flight ON messages (agent_id, seq) WHERE consumed = 0 AND started_at IS NOT NULL;

  CREATE TABLE snapshots (
    agent_id TEXT PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    snapshot TEXT NOT NULL
  ) STRICT;

  CREATE TABLE rollout (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    entry TEXT NOT NULL
  ) STRICT;
  CREATE INDEX rollout_by_agent ON rollout (agent_id);
  `,
  `
  CREATE TABLE owner (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    pid INTEGER,
    host TEXT,
    since REAL
  ) STRICT;
  INSERT INTO owner (id, epoch) VALUES (1, 0);
  `,
  `
  ALTER TABLE agents ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN crashed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN mailbox INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE agents ADD COLUMN last_active_at REAL;
  ALTER TABLE agents ADD COLUMN destroying INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE rollout ADD COLUMN turn INTEGER;
  ALTER TABLE messages ADD COLUMN turn INTEGER;

  UPDATE rollout SET turn = finished.n
  FROM (
    SELECT id, row_number() OVER (PARTITION BY agent_id ORDER BY id) AS n
    FROM rollout WHERE iif(json_valid(entry), entry ->> '$.kind', NULL) = 'turn.finished'
  ) AS finished
  WHERE rollout.id = finished.id;

  UPDATE messages SET turn = finished.turn
  FROM (SELECT agent_id, entry ->> '$.seq' AS seq, turn FROM rollout WHERE turn IS NOT NULL) AS finished
  WHERE messages.agent_id = finished.agent_id AND messages.seq = finished.seq AND messages.consumed = 1;

  UPDATE agents SET
    turns = counts.turns,
    failed = counts.failed,
    crashed = counts.crashed,
    interrupted = counts.interrupted
  FROM (
    SELECT agent_id,
      count(*) AS turns,
      count(*) FILTER (WHERE entry ->> '$.outcome' = 'failed') AS failed,
      count(*) FILTER (WHERE entry ->> '$.outcome' = 'crashed') AS crashed,
      count(*) FILTER (WHERE entry ->> '$.outcome' = 'interrupted') AS interrupted
    FROM rollout WHERE turn IS NOT NULL GROUP BY agent_id
  ) AS counts
  WHERE agents.id = counts.agent_id;

  UPDATE agents SET mailbox = pending.n
  FROM (SELECT agent_id, count(*) AS n FROM messages WHERE consumed = 0 GROUP BY agent_id) AS pending
  WHERE agents.id = pending.agent_id;

  UPDATE agents SET last_active_at = (
    SELECT iif(json_valid(entry), entry ->> '$.at', NULL) FROM rollout
    WHERE rollout.agent_id = agents.id ORDER BY id DESC LIMIT 1
  );

  CREATE INDEX rollout_turns ON rollout (agent_id, turn) WHERE turn IS NOT NULL;
  CREATE INDEX agents_pinned ON agents (id) WHERE pinned = 1;
  CREATE INDEX agents_with_mail ON agents (id) WHERE mailbox > 0;
  CREATE INDEX agents_destroying ON agents (id) WHERE destroying = 1;
  `,
  `
  CREATE TABLE timers (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX timers_due ON timers (at, agent_id, key);
  ALTER TABLE agents ADD COLUMN timers INTEGER NOT NULL DEFAULT 0;
  `,
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * The oldest schema version a read-only store reads as it is (it cannot migrate). Version
 * 2 only added the `owner` table, which reads never use. Version 3 added the counters: a
 * read-only store on a version 1 or 2 database (left by an older residency, or by a
 * runtime that has not migrated it yet) reads it with the queries of before
 * (`COUNTED_FROM`): counters computed from the rollout and the mailbox, in O(history),
 * which is exact there since nothing was ever pruned. Version 4 added the timers: on an
 * older database a read-only store reads none (no timer was ever written there), and a
 * timer count of 0.
 */
export const READABLE_FROM = 1;

/** The first schema version that keeps counters (and `destroying`) in `agents`. */
export const COUNTED_FROM = 3;

/** The first schema version that keeps durable timers (table `timers`, column `agents.timers`). */
export const TIMED_FROM = 4;

/** What the header and the schema of a database say about it. */
export interface DatabaseInfo {
  applicationId: number;
  version: number;
  /** Names of the schema objects (tables, indexes, views, triggers), when known. */
  objects: string[] | null;
  /** False when the schema is known to be non-empty although `objects` is null. */
  emptySchema: boolean;
}

const SQLITE_MAGIC = 'SQLite format 3\u0000';
const HEADER_BYTES = 100;

/** How a store opens a file: to own and write it, or only to read it. */
export type OpenMode = 'readwrite' | 'readonly';

/**
 * Checks an existing file with `fs` only, without opening it with SQLite (which would
 * create side files, or checkpoint and delete another application's WAL): refuses a file
 * that is not an SQLite database, another application's database, or a residency
 * database of a schema version this code cannot open. For writing, a missing or empty
 * file passes (it becomes a new database); for reading, it is refused.
 */
export function checkFileHeader(path: string, mode: OpenMode = 'readwrite'): void {
  let header: Buffer | null;
  try {
    header = readHeader(path);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      if (mode === 'readwrite') return;
      throw refuse(path, 'there is no such file', 'pass the path of a database that a residency runtime created', cause, false);
    }
    throw new StoreError(`Cannot open the residency database "${path}": ${messageOf(cause)}`, { cause });
  }
  const wal = readWal(`${path}-wal`);
  if (header === null) {
    // SQLite deletes the WAL of an empty database file when it opens it.
    if (wal !== null && wal.commits > 0) {
      throw refuse(
        path,
        `it is empty, yet a write-ahead log ("${path}-wal") with committed data lies next to it`,
        'remove the -wal file if nothing needs it, or pass the path of another file',
      );
    }
    if (mode === 'readwrite') return;
    throw refuse(path, 'it is empty: no residency runtime ever wrote it', 'pass the path of a database that a residency runtime created');
  }
  if (header.length < HEADER_BYTES || header.toString('latin1', 0, 16) !== SQLITE_MAGIC) {
    throw refuse(path, 'it is not an SQLite database');
  }
  // The newest committed page 1 in the WAL is the header SQLite will see.
  if (wal?.pageOne) header = wal.pageOne;
  const info: DatabaseInfo = {
    version: header.readInt32BE(60),
    applicationId: header.readInt32BE(68),
    objects: null,
    // The schema cookie counts the schema changes the file ever saw.
    emptySchema: header.readUInt32BE(40) === 0,
  };
  // Another application's rollback-journal database with no WAL next to it: read its
  // schema (read-only, which creates no side file then) to name its tables. In WAL mode
  // (bytes 18 and 19 are 2), or with a WAL file next to it, even a read-only connection
  // would create or use side files, so the error names none.
  const walMode = header[18] === 2 || header[19] === 2;
  if (
    info.applicationId !== APPLICATION_ID &&
    !info.emptySchema &&
    !walMode &&
    wal === null &&
    !fs.existsSync(`${path}-wal`)
  ) {
    const Database = sqliteDriver();
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
      info.objects = schemaObjects(db);
      info.emptySchema = info.objects.length === 0;
    } catch (cause) {
      throw refuse(path, `it cannot be read as an SQLite database (${messageOf(cause)})`, undefined, cause);
    } finally {
      db?.close();
    }
  }
  checkInfo(info, path, mode);
}

/** The first HEADER_BYTES of the file (fewer when it is shorter), or null when it is empty. */
function readHeader(path: string): Buffer | null {
  const fd = fs.openSync(path, 'r');
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    const read = fs.readSync(fd, header, 0, HEADER_BYTES, 0);
    return read === 0 ? null : header.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}

const WAL_HEADER_BYTES = 32;
const WAL_FRAME_HEADER_BYTES = 24;
const WAL_VERSION = 3_007_000;

/**
 * What a WAL file holds, read as SQLite's recovery reads it: frames are valid while their
 * salts match the WAL header and their running checksum holds; the transactions are the
 * valid frames up to the last commit frame. `pageOne` is the first HEADER_BYTES of the
 * newest committed copy of page 1 (null when no committed frame holds page 1). Null when
 * there is no WAL file or it holds no valid header (SQLite ignores it then).
 */
export function readWal(walPath: string): { commits: number; pageOne: Buffer | null } | null {
  let fd: number;
  try {
    fd = fs.openSync(walPath, 'r');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StoreError(`Cannot read the write-ahead log "${walPath}": ${messageOf(cause)}`, { cause });
  }
  try {
    const head = Buffer.alloc(WAL_HEADER_BYTES);
    if (fs.readSync(fd, head, 0, WAL_HEADER_BYTES, 0) < WAL_HEADER_BYTES) return null;
    const magic = head.readUInt32BE(0);
    if ((magic & 0xffff_fffe) !== 0x377f_0682 || head.readUInt32BE(4) !== WAL_VERSION) return null;
    const pageSize = head.readUInt32BE(8);
    if (pageSize < 512 || pageSize > 65_536 || (pageSize & (pageSize - 1)) !== 0) return null;
    const bigEndian = (magic & 1) === 1;
    const sum = walChecksum(bigEndian, head, 0, 24, 0, 0);
    if (sum[0] !== head.readUInt32BE(24) || sum[1] !== head.readUInt32BE(28)) return null;
    const salt1 = head.readUInt32BE(16);
    const salt2 = head.readUInt32BE(20);

    const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
    const framesPerRead = Math.max(1, Math.floor((1 << 20) / frameBytes));
    const chunk = Buffer.alloc(frameBytes * framesPerRead);
    let s1 = sum[0];
    let s2 = sum[1];
    let commits = 0;
    let pageOne: Buffer | null = null;
    /** Page 1 as written by the transaction not committed yet. */
    let pendingPageOne: Buffer | null = null;
    let offset = WAL_HEADER_BYTES;
    for (;;) {
      const read = fs.readSync(fd, chunk, 0, chunk.length, offset);
      const frames = Math.floor(read / frameBytes);
      for (let i = 0; i < frames; i++) {
        const at = i * frameBytes;
        const pgno = chunk.readUInt32BE(at);
        if (pgno === 0 || chunk.readUInt32BE(at + 8) !== salt1 || chunk.readUInt32BE(at + 12) !== salt2) {
          return { commits, pageOne };
        }
        [s1, s2] = walChecksum(bigEndian, chunk, at, 8, s1, s2);
        [s1, s2] = walChecksum(bigEndian, chunk, at + WAL_FRAME_HEADER_BYTES, pageSize, s1, s2);
        if (s1 !== chunk.readUInt32BE(at + 16) || s2 !== chunk.readUInt32BE(at + 20)) return { commits, pageOne };
        if (pgno === 1) {
          pendingPageOne = Buffer.from(chunk.subarray(at + WAL_FRAME_HEADER_BYTES, at + WAL_FRAME_HEADER_BYTES + HEADER_BYTES));
        }
        if (chunk.readUInt32BE(at + 4) !== 0) {
          // A commit frame: what the transaction wrote is committed.
          commits++;
          if (pendingPageOne !== null) pageOne = pendingPageOne;
          pendingPageOne = null;
        }
      }
      if (frames < framesPerRead) return { commits, pageOne };
      offset += frames * frameBytes;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** SQLite's WAL checksum over `length` bytes (a multiple of 8) from `start`, continuing (s1, s2). */
function walChecksum(
  bigEndian: boolean,
  data: Buffer,
  start: number,
  length: number,
  s1: number,
  s2: number,
): [number, number] {
  const end = start + length;
  if (bigEndian) {
    for (let i = start; i < end; i += 8) {
      s1 = (s1 + data.readUInt32BE(i) + s2) >>> 0;
      s2 = (s2 + data.readUInt32BE(i + 4) + s1) >>> 0;
    }
  } else {
    for (let i = start; i < end; i += 8) {
      s1 = (s1 + data.readUInt32LE(i) + s2) >>> 0;
      s2 = (s2 + data.readUInt32LE(i + 4) + s1) >>> 0;
    }
  }
  return [s1, s2];
}

/**
 * Refuses (with a `StoreError`, writing nothing) the database of a connection unless it is
 * new or a residency database this code can read.
 */
export function checkDatabase(db: BetterSqlite3.Database, path: string, mode: OpenMode = 'readwrite'): DatabaseInfo {
  const info = describeDatabase(db);
  checkInfo(info, path, mode);
  return info;
}

/** Reads what the connection's database says about itself. */
function describeDatabase(db: BetterSqlite3.Database): DatabaseInfo {
  const objects = schemaObjects(db);
  return {
    applicationId: db.pragma('application_id', { simple: true }) as number,
    version: db.pragma('user_version', { simple: true }) as number,
    objects,
    emptySchema: objects.length === 0,
  };
}

/**
 * Brings the database of a read-write connection to SCHEMA_VERSION, after checking that
 * it is a new database or a residency one this code can read (nothing is written when
 * it is not).
 */
export function migrate(db: BetterSqlite3.Database, path: string): void {
  const before = checkDatabase(db, path);
  if (before.applicationId === APPLICATION_ID && before.version === SCHEMA_VERSION) return;
  db.transaction(() => {
    // Again under the write lock: another process may have migrated it meanwhile.
    const info = checkDatabase(db, path);
    const from = info.applicationId === APPLICATION_ID ? info.version : 0;
    for (let version = from; version < SCHEMA_VERSION; version++) db.exec(MIGRATIONS[version]!);
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

function checkInfo(info: DatabaseInfo, path: string, mode: OpenMode): void {
  if (info.applicationId === APPLICATION_ID) {
    if (info.version > SCHEMA_VERSION) {
      throw refuse(
        path,
        `it was written by a newer version of residency (schema version ${info.version}; this version reads ` +
          `up to ${SCHEMA_VERSION})`,
        'upgrade residency to open it, or pass the path of another file',
      );
    }
    if (mode === 'readonly' && info.version < READABLE_FROM) {
      throw refuse(
        path,
        `it was written by an older version of residency (schema version ${info.version}; a read-only store ` +
          `reads versions ${READABLE_FROM} to ${SCHEMA_VERSION} and cannot migrate)`,
        'open it once for writing (sqliteStore(path), or a runtime on it) to migrate it, then read it',
      );
    }
    return;
  }
  if (info.applicationId !== 0) {
    throw refuse(
      path,
      `it belongs to another application (application id 0x${(info.applicationId >>> 0).toString(16)}, ` +
        `residency's is 0x${APPLICATION_ID.toString(16)})`,
    );
  }
  if (!info.emptySchema) {
    const names = info.objects === null || info.objects.length === 0 ? '' : ` (${info.objects.join(', ')})`;
    throw refuse(path, `it holds another application's tables${names}`);
  }
  if (info.version !== 0) {
    throw refuse(path, `it has user_version ${info.version} but not residency's application id`);
  }
  if (mode === 'readonly') {
    throw refuse(
      path,
      'it holds no residency data (an SQLite database with no tables)',
      'pass the path of a database that a residency runtime created',
    );
  }
}

function schemaObjects(db: BetterSqlite3.Database): string[] {
  return db
    .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
    .pluck()
    .all() as string[];
}

function refuse(
  path: string,
  why: string,
  fix = 'pass the path of a new file, or of a database that residency created',
  cause?: unknown,
  untouched = true,
): StoreError {
  return new StoreError(
    `Cannot open "${path}" as a residency database: ${why}. ${untouched ? 'The file was left untouched: ' : ''}${
      untouched ? fix : fix.charAt(0).toUpperCase() + fix.slice(1)
    }`,
    cause === undefined ? undefined : { cause },
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
