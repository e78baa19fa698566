/**
 * The schema of a residency SQLite database, its migrations, and the checks that keep
 * sqliteStore away from files that are not its own.
 *
 * A residency database says what it is in the SQLite header: `PRAGMA application_id` is
 * APPLICATION_ID and `PRAGMA user_version` is the schema version. A file is opened only
 * when it is empty (no schema, application id 0, user version 0: a new database) or when
 * it carries our application id and a schema version this code knows; anything else is
 * refused with a `StoreError` naming the file, before a single byte of it is written.
 *
 * The first check reads the 100-byte header with `fs` and touches nothing else: opening
 * a database in WAL mode with SQLite, even read-only, creates `-wal` and `-shm` files
 * next to it. Only a rollback-journal database without our application id is opened
 * (read-only) to name its tables in the error. A second check runs on the read-write
 * connection before anything is written, and again inside the migration transaction, in
 * case another process changed the file in between.
 *
 * Migrations run in one IMMEDIATE transaction, together with the header update, so a
 * database is at one schema version or the next, never in between. To change the schema,
 * append a migration to MIGRATIONS; never edit one that has shipped.
 */

import fs from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';

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
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

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

/**
 * Checks an existing file from its header, without opening it with SQLite (which would
 * create side files): refuses a file that is not an SQLite database, another
 * application's database, or a residency database of a newer schema version.
 * A missing or empty file passes (it becomes a new database).
 */
export function checkFileHeader(path: string): void {
  let header: Buffer;
  try {
    const fd = fs.openSync(path, 'r');
    try {
      header = Buffer.alloc(HEADER_BYTES);
      const read = fs.readSync(fd, header, 0, HEADER_BYTES, 0);
      if (read === 0) return;
      header = header.subarray(0, read);
    } finally {
      fs.closeSync(fd);
    }
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new StoreError(`Cannot open the residency database "${path}": ${messageOf(cause)}`, { cause });
  }
  if (header.length < HEADER_BYTES || header.toString('latin1', 0, 16) !== SQLITE_MAGIC) {
    throw refuse(path, 'it is not an SQLite database');
  }
  const info: DatabaseInfo = {
    version: header.readInt32BE(60),
    applicationId: header.readInt32BE(68),
    objects: null,
    // The schema cookie counts the schema changes the file ever saw.
    emptySchema: header.readUInt32BE(40) === 0,
  };
  // Another application's rollback-journal database: read its schema (read-only, which
  // creates no side file in that mode) to name its tables. In WAL mode (bytes 18 and 19
  // are 2) even a read-only connection would create files, so the error names none.
  const walMode = header[18] === 2 || header[19] === 2;
  if (info.applicationId !== APPLICATION_ID && !info.emptySchema && !walMode) {
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
  checkInfo(info, path);
}

/**
 * Refuses (with a `StoreError`, writing nothing) the database of a connection unless it is
 * new or a residency database this code can read.
 */
export function checkDatabase(db: BetterSqlite3.Database, path: string): DatabaseInfo {
  const info = describeDatabase(db);
  checkInfo(info, path);
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

function checkInfo(info: DatabaseInfo, path: string): void {
  if (info.applicationId === APPLICATION_ID) {
    if (info.version > SCHEMA_VERSION) {
      throw refuse(
        path,
        `it was written by a newer version of residency (schema version ${info.version}; this version reads ` +
          `up to ${SCHEMA_VERSION})`,
        'upgrade residency to open it, or pass the path of another file',
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
): StoreError {
  return new StoreError(
    `Cannot open "${path}" as a residency database: ${why}. The file was left untouched: ${fix}`,
    cause === undefined ? undefined : { cause },
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
