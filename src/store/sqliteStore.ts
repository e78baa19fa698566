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
 * newer residency is refused with a `StoreError` naming it, and left untouched; see
 * sqliteSchema.ts for the schema, its migrations and these checks. Other processes may
 * open the same file: every write transaction takes the write lock up front (BEGIN
 * IMMEDIATE) and waits up to BUSY_TIMEOUT_MS for it.
 *
 * The contract (Store.ts). Each `append` call, `beginTurn` and `commitTurn` is one
 * transaction: a call that rejects wrote nothing. Seqs come from a per-agent counter
 * (`agents.last_seq`), and consumed messages keep their row (without the body, which the
 * rollout keeps), so idempotency by (agent, message id) holds after consumption; both
 * go with the agent on `destroyAgent`. Values are stored as JSON text and parsed on each
 * read, so nothing is ever shared with a caller (and a value goes through JSON: what
 * JSON.stringify drops, like `undefined` properties, is not stored). Ids are only bound
 * as SQL parameters. SQLite's failures reject with `StoreError` (with the SQLite error
 * as its `cause`). A row of an agent that no longer parses (a damaged file, a manual
 * edit) rejects that agent's reads (getAgent, pending, loadSnapshot, rollout) with
 * `StoreCorruptionError`, and other agents' calls keep working: getAgents and listAgents
 * leave a damaged record out rather than fail for everyone.
 *
 * The methods are async for the contract but run their SQLite work synchronously (it
 * takes microseconds to a few milliseconds), so two calls never interleave.
 */

import fs from 'node:fs';
import nodePath from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import Database from 'better-sqlite3';
import { AgentExistsError, AgentNotFoundError, ResidencyError, StoreCorruptionError, StoreError } from '../errors.js';
import { assertIntegerAtLeast, describeValue } from '../validate.js';
import { DEFAULT_LIST_LIMIT, notPending } from './common.js';
import { checkDatabase, checkFileHeader, migrate } from './sqliteSchema.js';
import type {
  AgentRecord,
  AppendRequest,
  AppendResult,
  CommitResult,
  CommitTurn,
  ListOptions,
  ListResult,
  RolloutEntry,
  Store,
  StoredMessage,
} from './Store.js';

export interface SqliteStoreOptions {
  /**
   * How hard SQLite syncs: 'FULL' (default) makes every commit durable before the call
   * resolves; 'NORMAL' may lose the last commits on a power loss (never corrupts).
   */
  synchronous?: 'FULL' | 'NORMAL';
}

/** How long a call waits for another connection's write lock before it fails. */
const BUSY_TIMEOUT_MS = 5_000;
/** The WAL file is truncated to this size after a checkpoint (it never shrinks otherwise). */
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
const MEMORY = ':memory:';

interface AgentRow {
  id: string;
  type: string;
  parent: string | null;
  pinned: number;
  input: string;
  created_at: number;
}

interface MessageRow {
  seq: number;
  message_id: string;
  message: string;
  at: number;
}

/** A value of a commit, serialized before its transaction starts. */
interface PreparedCommit {
  outputs: string[];
  snapshot: string | undefined;
  snapshotEntry: string;
  finished: string;
  spawned: { record: AgentRecord; input: string }[];
  outbox: PreparedMessage[];
}

interface PreparedMessage {
  agentId: string;
  messageId: string;
  message: string;
  at: number;
}

/** The connection of each open store, for `sqliteSettings` (tests). */
const connections = new WeakMap<Store, BetterSqlite3.Database>();

/**
 * Opens (or creates) the residency database at `path`. Throws `StoreError` when the file
 * cannot be opened or is not a residency database it can read.
 *
 * @example
 * const store = sqliteStore('./.residency/agents.db');
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

  const db = openDatabase(path, synchronous);
  let sql: ReturnType<typeof prepareStatements>;
  try {
    sql = prepareStatements(db);
  } catch (cause) {
    db.close();
    throw new StoreError(`Cannot open the residency database "${path}": ${messageOf(cause)}`, { cause });
  }
  let closed = false;

  function checkOpen(): void {
    if (closed) {
      throw new StoreError(`The SQLite store on "${path}" is closed: open it again with sqliteStore(path)`);
    }
  }

  /** Runs `work` on the open database; SQLite's errors become `StoreError`s. */
  function run<T>(action: string, work: () => T): T {
    checkOpen();
    try {
      return work();
    } catch (error) {
      if (error instanceof ResidencyError || error instanceof TypeError) throw error;
      throw new StoreError(`The SQLite store on "${path}" could not ${action}: ${messageOf(error)}`, { cause: error });
    }
  }

  /** Stores one message (inside a write transaction): the heart of append and of the outbox. */
  function accept(request: PreparedMessage): AppendResult {
    const { agentId, messageId, message, at } = request;
    const original = sql.findMessage.get(agentId, messageId) as number | undefined;
    if (original !== undefined) return { agentId, messageId, seq: original, duplicate: true };
    const seq = sql.nextSeq.get(agentId) as number | undefined;
    if (seq === undefined) throw new AgentNotFoundError(agentId);
    sql.insertMessage.run(agentId, seq, messageId, message, at);
    sql.addEntry.run(
      agentId,
      `{"kind":"accepted","seq":${seq},"messageId":${JSON.stringify(messageId)},"message":${message},"at":${JSON.stringify(at) ?? 'null'}}`,
    );
    return { agentId, messageId, seq, duplicate: false };
  }

  function insertAgent(record: AgentRecord, input: string): boolean {
    const { id, type, parent, pinned, createdAt } = record;
    return sql.insertAgent.run(id, type, parent ?? null, pinned ? 1 : 0, input, createdAt).changes > 0;
  }

  const appendAll = db.transaction((batch: readonly PreparedMessage[]) => batch.map(accept));

  const startTurn = db.transaction((agentId: string, seq: number, at: number) => {
    if (sql.startTurn.run(at, agentId, seq).changes === 0) {
      if (sql.agentExists.get(agentId) === undefined) throw new AgentNotFoundError(agentId);
      throw notPending(agentId, seq, 'begin a turn on');
    }
    sql.addEntry.run(agentId, JSON.stringify({ kind: 'turn.started', seq, at }));
  });

  const commit = db.transaction((agentId: string, seq: number, prepared: PreparedCommit): CommitResult => {
    if (sql.agentExists.get(agentId) === undefined) throw new AgentNotFoundError(agentId);
    if (sql.consume.run(agentId, seq).changes === 0) throw notPending(agentId, seq, 'commit a turn for');
    for (const output of prepared.outputs) sql.addEntry.run(agentId, output);
    if (prepared.snapshot !== undefined) {
      sql.saveSnapshot.run(agentId, prepared.snapshot);
      sql.addEntry.run(agentId, prepared.snapshotEntry);
    }
    sql.addEntry.run(agentId, prepared.finished);
    // A conflict with an existing agent or an earlier one of the same commit.
    for (const { record, input } of prepared.spawned) {
      if (!insertAgent(record, input)) throw new AgentExistsError(record.id);
    }
    return { outbox: prepared.outbox.map(accept) };
  });

  /** Cached listing statements, one per combination of filters. */
  const listings = new Map<string, BetterSqlite3.Statement>();

  const store: Store = {
    kind: 'sqlite',

    async createAgent(record) {
      const input = toJson(record.input, `the input of agent "${record.id}"`);
      run(`create agent "${record.id}"`, () => {
        if (!insertAgent(record, input)) throw new AgentExistsError(record.id);
      });
    },

    async getAgent(id) {
      return run(`read agent "${id}"`, () => {
        const row = sql.getAgent.get(id) as AgentRow | undefined;
        return row === undefined ? null : toRecord(row);
      });
    },

    async getAgents(ids) {
      return run('read agents', () => {
        if (ids.length === 0) return [];
        return readableRecords(sql.getAgents.all(JSON.stringify(ids)) as AgentRow[]);
      });
    },

    async listAgents(options: ListOptions = {}): Promise<ListResult> {
      const { type, parent, limit = DEFAULT_LIST_LIMIT, cursor = null } = options;
      return run('list agents', () => {
        assertIntegerAtLeast(limit, 'limit', 1);
        const key = `${type === undefined ? '' : 't'}${parent === undefined ? '' : 'p'}${cursor === null ? '' : 'c'}`;
        let statement = listings.get(key);
        if (statement === undefined) {
          const where = [
            ...(type === undefined ? [] : ['type = @type']),
            ...(parent === undefined ? [] : ['parent = @parent']),
            ...(cursor === null ? [] : ['id > @cursor']),
          ];
          statement = db.prepare(
            `SELECT id, type, parent, pinned, input, created_at FROM agents` +
              `${where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`} ORDER BY id LIMIT @limit`,
          );
          listings.set(key, statement);
        }
        // One more row than asked tells whether a next page exists.
        const rows = statement.all({
          limit: limit + 1,
          ...(type === undefined ? {} : { type }),
          ...(parent === undefined ? {} : { parent }),
          ...(cursor === null ? {} : { cursor }),
        }) as AgentRow[];
        const page = rows.slice(0, limit);
        return { agents: readableRecords(page), cursor: rows.length > limit ? page[page.length - 1]!.id : null };
      });
    },

    async destroyAgent(id) {
      // The other tables follow by ON DELETE CASCADE.
      return run(`destroy agent "${id}"`, () => sql.deleteAgent.run(id).changes > 0);
    },

    async append(batch) {
      const prepared = batch.map(prepareMessage);
      return run('append messages', () => (prepared.length === 0 ? [] : appendAll.immediate(prepared)));
    },

    async pending(agentId, limit = Number.POSITIVE_INFINITY) {
      return run(`read the mailbox of agent "${agentId}"`, () => {
        if (limit !== Number.POSITIVE_INFINITY) assertIntegerAtLeast(limit, 'limit', 1);
        const rows = sql.pending.all(agentId, limit === Number.POSITIVE_INFINITY ? -1 : limit) as MessageRow[];
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
      return run(`count the mailbox of agent "${agentId}"`, () => sql.mailboxSize.get(agentId) as number);
    },

    async beginTurn(agentId, seq, at) {
      run(`begin a turn of agent "${agentId}"`, () => startTurn.immediate(agentId, seq, at));
    },

    async commitTurn(turn: CommitTurn): Promise<CommitResult> {
      const { agentId, seq, outcome, at, durationMs, error } = turn;
      const what = `the turn of agent "${agentId}" on message #${seq}`;
      const prepared: PreparedCommit = {
        outputs: (turn.outputs ?? []).map((output, i) =>
          toJson({ kind: 'output', seq, output, at }, `output ${i} of ${what}`),
        ),
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
          record,
          input: toJson(record.input, `the input of agent "${record.id}" spawned by ${what}`),
        })),
        outbox: (turn.outbox ?? []).map(prepareMessage),
      };
      return run(`commit ${what}`, () => commit.immediate(agentId, seq, prepared));
    },

    async loadSnapshot(agentId) {
      return run(`read the snapshot of agent "${agentId}"`, () => {
        const text = sql.loadSnapshot.get(agentId) as string | undefined;
        return text === undefined ? null : parseOf(agentId, text, 'its snapshot');
      });
    },

    async note(agentId, entry) {
      const text = toJson(entry, `a note for agent "${agentId}"`);
      run(`write a note for agent "${agentId}"`, () => {
        if (sql.addNote.run(text, agentId).changes === 0) throw new AgentNotFoundError(agentId);
      });
    },

    async rollout(agentId, options = {}) {
      const { limit } = options;
      return run(`read the rollout of agent "${agentId}"`, () => {
        if (limit !== undefined) assertIntegerAtLeast(limit, 'limit', 1);
        const texts =
          limit === undefined
            ? (sql.rolloutAll.all(agentId) as string[])
            : (sql.rolloutLast.all(agentId, limit) as string[]).reverse();
        return texts.map((text) => parseOf(agentId, text, 'an entry of its rollout') as RolloutEntry);
      });
    },

    async agentsWithPending() {
      return run('list the agents with pending messages', () => sql.agentsWithPending.all() as string[]);
    },

    async turnsInFlight() {
      return run('list the turns in flight', () => sql.turnsInFlight.all() as { agentId: string; seq: number }[]);
    },

    async close() {
      run('close', () => {
        closed = true;
        db.close();
      });
    },
  };
  connections.set(store, db);
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
    checkFileHeader(path);
  }
  let db: BetterSqlite3.Database;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
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

function prepareStatements(db: BetterSqlite3.Database) {
  const agentColumns = 'id, type, parent, pinned, input, created_at';
  return {
    insertAgent: db.prepare(
      `INSERT INTO agents (${agentColumns}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    ),
    getAgent: db.prepare(`SELECT ${agentColumns} FROM agents WHERE id = ?`),
    getAgents: db.prepare(`SELECT ${agentColumns} FROM agents WHERE id IN (SELECT value FROM json_each(?))`),
    agentExists: db.prepare('SELECT 1 FROM agents WHERE id = ?').pluck(),
    deleteAgent: db.prepare('DELETE FROM agents WHERE id = ?'),
    nextSeq: db.prepare('UPDATE agents SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq').pluck(),
    findMessage: db.prepare('SELECT seq FROM messages WHERE agent_id = ? AND message_id = ?').pluck(),
    insertMessage: db.prepare('INSERT INTO messages (agent_id, seq, message_id, message, at) VALUES (?, ?, ?, ?, ?)'),
    pending: db.prepare(
      'SELECT seq, message_id, message, at FROM messages WHERE agent_id = ? AND consumed = 0 ORDER BY seq LIMIT ?',
    ),
    mailboxSize: db.prepare('SELECT count(*) FROM messages WHERE agent_id = ? AND consumed = 0').pluck(),
    startTurn: db.prepare('UPDATE messages SET started_at = ? WHERE agent_id = ? AND seq = ? AND consumed = 0'),
    consume: db.prepare(
      'UPDATE messages SET consumed = 1, message = NULL WHERE agent_id = ? AND seq = ? AND consumed = 0',
    ),
    saveSnapshot: db.prepare(
      'INSERT INTO snapshots (agent_id, snapshot) VALUES (?, ?) ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot',
    ),
    loadSnapshot: db.prepare('SELECT snapshot FROM snapshots WHERE agent_id = ?').pluck(),
    addEntry: db.prepare('INSERT INTO rollout (agent_id, entry) VALUES (?, ?)'),
    addNote: db.prepare('INSERT INTO rollout (agent_id, entry) SELECT id, ? FROM agents WHERE id = ?'),
    rolloutAll: db.prepare('SELECT entry FROM rollout WHERE agent_id = ? ORDER BY id').pluck(),
    rolloutLast: db.prepare('SELECT entry FROM rollout WHERE agent_id = ? ORDER BY id DESC LIMIT ?').pluck(),
    agentsWithPending: db.prepare('SELECT DISTINCT agent_id FROM messages WHERE consumed = 0').pluck(),
    turnsInFlight: db.prepare(
      'SELECT agent_id AS agentId, seq FROM messages WHERE consumed = 0 AND started_at IS NOT NULL ORDER BY agent_id, seq',
    ),
  };
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



function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
