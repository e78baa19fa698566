/**
 * The schema of a residency PostgreSQL store: one PostgreSQL schema (option `schema`,
 * default `residency`) holding every table, and its versioned migrations.
 *
 * The schema says what it is in its `meta` table: the schema version this code writes
 * (SCHEMA_VERSION) and the number of shards agents hash to (fixed when the schema is made:
 * changing it would move every agent). A store opens a schema only when it is new (missing,
 * or empty), or carries a `meta` row of a version this code knows and the same `shards`;
 * anything else (a newer version, another shard count, another application's tables) is
 * refused with a `StoreError`, before anything is written.
 *
 * Migrations run in one transaction under an advisory lock keyed by the schema name
 * (taken before the transaction starts, so that it sees what the holder committed), so two processes starting at once migrate it once: the second waits, then
 * finds it migrated. A store whose schema is at SCHEMA_VERSION already reads `meta` once,
 * without the lock. To change the schema, append a migration to MIGRATIONS; never edit
 * one that has shipped.
 *
 * The writes are PL/pgSQL functions of the schema (see MIGRATIONS[0]): every write op is
 * one statement (`apply_op`), and a batch is one statement (`apply_batch`) that runs each
 * op in its own subtransaction (a savepoint: an exception block) when one fails, so a
 * batch costs one round trip whatever its length. Their errors carry SQLSTATEs of their
 * own (ERR below), mapped back to the contract's errors by postgresStore.
 *
 * The schema name is checked against SCHEMA_NAME before it is ever put into SQL; no other
 * text is interpolated (every value is a bound parameter).
 */

import type pg from 'pg';
import { StoreError } from '../../errors.js';
import { describeValue } from '../../validate.js';
import { createLeaseTables, fencedShardsSql } from './leases.js';

/** The schema version this code writes: the number of MIGRATIONS. */
export const SCHEMA_VERSION = 1;

/** A schema name postgresStore accepts (lower case, so it never needs quoting rules). */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,39}$/;

/** SQLSTATEs the write functions raise; their message is JSON: `{ a: agentId, q: seq, w: what }`. */
export const ERR = {
  /** The agent does not exist (or is being destroyed). */
  notFound: 'RS404',
  /** The id is taken (createAgent, a spawn). */
  exists: 'RS409',
  /** A turn on a message that is not pending (`w` says which action). */
  notPending: 'RS400',
} as const;

/** Checks a schema name (a `TypeError` otherwise) and returns it. */
export function checkSchemaName(schema: unknown): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new TypeError(
      `Expected \`schema\` to be a PostgreSQL schema name matching ${String(SCHEMA_NAME)} (lower case letters, digits ` +
        `and underscores, at most 40, not starting with a digit), got ${describeValue(schema)}`,
    );
  }
  return schema;
}

/** The NOTIFY channel of a schema's hints. */
export function channelOf(schema: string): string {
  return `${schema}_wake`;
}

/**
 * Brings the schema to SCHEMA_VERSION (creating it when missing), after checking that it is
 * new or a residency schema of a version this code knows and of `shards` shards. Refuses
 * (writing nothing) otherwise.
 */
export async function migrate(pool: pg.Pool, schema: string, shards: number): Promise<void> {
  const client = await pool.connect();
  let broken = false;
  try {
    // Without the lock first: a schema at this version is the common case.
    if (checkMeta(await readMeta(client, schema), schema, shards) === SCHEMA_VERSION) return;
    // A session lock taken before the transaction: the transaction starts after the lock is
    // granted, so it sees (catalog caches included) what a migration that held it committed.
    // Keyed by the schema: "rsdy" in ASCII, and the hash of its name.
    await client.query('SELECT pg_advisory_lock(1920164985, hashtext($1))', [schema]);
    try {
      await client.query('BEGIN');
      try {
        const meta = await readMeta(client, schema);
        const from = checkMeta(meta, schema, shards);
        if (from === 0) {
          const tables = await client.query<{ name: string }>(
            "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
            [schema],
          );
          if (tables.rows.length > 0) {
            throw refuse(schema, `it holds another application's tables (${tables.rows.map((r) => r.name).join(', ')})`);
          }
          await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
        }
        for (let version = from; version < SCHEMA_VERSION; version++) {
          await client.query(MIGRATIONS[version]!(schema));
          if (version === 0) {
            await createLeaseTables(client, schema, shards);
            await client.query(`INSERT INTO "${schema}".meta (id, schema_version, shards) VALUES (1, 0, $1)`, [shards]);
          }
        }
        if (from < SCHEMA_VERSION) {
          await client.query(`UPDATE "${schema}".meta SET schema_version = $1 WHERE id = 1`, [SCHEMA_VERSION]);
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw error;
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(1920164985, hashtext($1))', [schema]).catch(() => {
        // Ending the connection frees the lock.
        broken = true;
      });
    }
  } catch (error) {
    if (error instanceof StoreError) throw error;
    broken = true;
    throw new StoreError(
      `Cannot open the PostgreSQL schema "${schema}" as a residency store: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error, retryable: true },
    );
  } finally {
    client.release(broken);
  }
}

interface Meta {
  version: number;
  shards: number;
}

/** The `meta` row of the schema, or null when the schema has none (new). */
async function readMeta(client: pg.ClientBase, schema: string): Promise<Meta | null> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`"${schema}".meta`]);
  if (exists.rows[0]?.t == null) return null;
  const row = await client.query<{ version: number; shards: number }>(
    `SELECT schema_version AS version, shards FROM "${schema}".meta WHERE id = 1`,
  );
  const meta = row.rows[0];
  if (meta === undefined) throw refuse(schema, 'its meta table is empty (not written by residency)');
  return { version: meta.version, shards: meta.shards };
}

/** Refuses a schema this code cannot open; returns the version to migrate from (0: new). */
function checkMeta(meta: Meta | null, schema: string, shards: number): number {
  if (meta === null) return 0;
  if (meta.version > SCHEMA_VERSION) {
    throw refuse(
      schema,
      `it was written by a newer version of residency (schema version ${meta.version}; this version reads up to ${SCHEMA_VERSION})`,
      'upgrade residency to open it, or pass another schema',
    );
  }
  if (meta.shards !== shards) {
    throw refuse(
      schema,
      `it was made with ${meta.shards} shards, and this store was given shards: ${shards} (the shard count is fixed when the schema is made)`,
      `pass shards: ${meta.shards}, or another schema`,
    );
  }
  return meta.version;
}

function refuse(schema: string, why: string, fix = 'pass the name of a new schema, or of one that residency created'): StoreError {
  return new StoreError(`Cannot open the PostgreSQL schema "${schema}" as a residency store: ${why}. It was left untouched: ${fix}`);
}

/**
 * The migrations, in order: `MIGRATIONS[v](schema)` takes a schema from version `v` to `v + 1`.
 *
 * Version 1:
 * - `meta`: one row: the schema version and the shard count; the sequence `epochs` gives
 *   each `acquire` its owner epoch. The lease tables (`shard_leases`, `members`) are made by
 *   createLeaseTables (leases.ts) in the same transaction.
 * - `agents`: the registry record, its shard, and `destroying` (set while a destroyed
 *   agent's rows are deleted in the background: every read and write treats it as absent).
 * - `counters`: one row per live agent (deleted by destroyAgent): the seq counter and the
 *   counters of rule 11. Every write of an agent updates its row first, so the row lock
 *   orders an agent's writes (and its rollout ids) across connections.
 * - `messages`: every message the agent accepted and retention did not prune, by (agent,
 *   seq); `message_id` unique per agent; `consumed` once committed (its body dropped: the
 *   rollout keeps a copy), `started_at` once a turn began on it, `turn` the number of the
 *   turn that consumed it, `reply_to` the member waiting for its turn (a remote ask).
 * - `snapshots`, `rollout` (its `turn` set on turn.finished entries), `timers` (by agent
 *   and key, with the agent's shard; `timers_due` orders them by deadline), `replies` (the
 *   answers to remote asks, until taken).
 * Ids and keys collate "C": byte order, the order of JavaScript's string comparison (for
 * the characters of the Basic Multilingual Plane).
 */
export const MIGRATIONS: readonly ((schema: string) => string)[] = [(s) => v1(`"${s}"`, channelOf(s))];

function v1(S: string, channel: string): string {
  const raise = (code: string, args: string) => `RAISE EXCEPTION USING ERRCODE = '${code}', MESSAGE = ${S}.err(${args})`;
  return `
  CREATE TABLE ${S}.meta (
    id int PRIMARY KEY CHECK (id = 1),
    schema_version int NOT NULL,
    shards int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE SEQUENCE ${S}.epochs;

  CREATE TABLE ${S}.agents (
    id text COLLATE "C" PRIMARY KEY,
    shard int NOT NULL,
    type text COLLATE "C" NOT NULL,
    parent text COLLATE "C",
    pinned boolean NOT NULL,
    input jsonb NOT NULL,
    created_at float8 NOT NULL,
    destroying boolean NOT NULL DEFAULT false
  );
  CREATE INDEX agents_by_shard ON ${S}.agents (shard, id);
  CREATE INDEX agents_by_type ON ${S}.agents (type, id);
  CREATE INDEX agents_by_parent ON ${S}.agents (parent, id);
  CREATE INDEX agents_pinned ON ${S}.agents (id) WHERE pinned;
  CREATE INDEX agents_destroying ON ${S}.agents (id) WHERE destroying;

  CREATE TABLE ${S}.counters (
    agent_id text COLLATE "C" PRIMARY KEY,
    shard int NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    turns bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    crashed bigint NOT NULL DEFAULT 0,
    interrupted bigint NOT NULL DEFAULT 0,
    mailbox bigint NOT NULL DEFAULT 0,
    timers bigint NOT NULL DEFAULT 0,
    last_active_at float8
  );
  CREATE INDEX counters_with_mail ON ${S}.counters (shard, agent_id) WHERE mailbox > 0;

  CREATE TABLE ${S}.messages (
    agent_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    message jsonb,
    at float8 NOT NULL,
    consumed boolean NOT NULL DEFAULT false,
    started_at float8,
    turn bigint,
    reply_to text,
    commit_token text,
    commit_result jsonb,
    PRIMARY KEY (agent_id, seq)
  );
  CREATE UNIQUE INDEX messages_by_message_id ON ${S}.messages (agent_id, message_id);
  CREATE INDEX messages_pending ON ${S}.messages (agent_id, seq) WHERE NOT consumed;
  CREATE INDEX messages_in_flight ON ${S}.messages (agent_id, seq) WHERE NOT consumed AND started_at IS NOT NULL;

  CREATE TABLE ${S}.snapshots (
    agent_id text COLLATE "C" PRIMARY KEY,
    snapshot jsonb NOT NULL
  );

  CREATE TABLE ${S}.rollout (
    agent_id text COLLATE "C" NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    turn bigint,
    entry jsonb NOT NULL,
    PRIMARY KEY (agent_id, id)
  );
  CREATE INDEX rollout_turns ON ${S}.rollout (agent_id, turn) WHERE turn IS NOT NULL;

  CREATE TABLE ${S}.timers (
    agent_id text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    shard int NOT NULL,
    at float8 NOT NULL,
    message jsonb NOT NULL,
    PRIMARY KEY (agent_id, key)
  );
  CREATE INDEX timers_due ON ${S}.timers (at, agent_id, key);

  CREATE TABLE ${S}.replies (
    agent_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    reply_to text NOT NULL,
    reply jsonb NOT NULL,
    PRIMARY KEY (agent_id, seq)
  );

  -- The message of an error raised by the functions below: JSON, read back by postgresStore.
  CREATE FUNCTION ${S}.err(a text, q bigint DEFAULT NULL, w text DEFAULT NULL) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$ SELECT jsonb_build_object('a', a, 'q', q, 'w', w)::text $$;

  -- A failure of the whole transaction (connection, serialization, deadlock, resources,
  -- shutdown, I/O, internal): never caught as one op's failure.
  CREATE FUNCTION ${S}.is_transient(code text) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT left(code, 2) IN ('08', '25', '40', '53', '55', '57', '58', 'XX') $$;

  -- A hint to the members (NOTIFY), sent at commit; one too long for NOTIFY is left out (a hint).
  CREATE FUNCTION ${S}.hint(payload text) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN
    IF octet_length(payload) < 7900 THEN PERFORM pg_notify('${channel}', payload); END IF;
  END $$;

  -- Stores one message (append, outbox, fire): its AppendResult.
  CREATE FUNCTION ${S}.accept(p_agent text, p_id text, p_message jsonb, p_at jsonb, p_reply_to text) RETURNS jsonb
  LANGUAGE plpgsql AS $$
  DECLARE
    v_seq bigint;
    v_box bigint;
    v_shard int;
  BEGIN
    SELECT m.seq INTO v_seq FROM ${S}.messages m WHERE m.agent_id = p_agent AND m.message_id = p_id;
    IF FOUND THEN
      -- The rows of a destroyed agent may still be there, for a while.
      IF NOT EXISTS (SELECT 1 FROM ${S}.counters c WHERE c.agent_id = p_agent) THEN ${raise(ERR.notFound, 'p_agent')}; END IF;
      RETURN jsonb_build_object('agentId', p_agent, 'messageId', p_id, 'seq', v_seq, 'duplicate', true);
    END IF;
    UPDATE ${S}.counters c SET last_seq = c.last_seq + 1, mailbox = c.mailbox + 1, last_active_at = (p_at #>> '{}')::float8
      WHERE c.agent_id = p_agent RETURNING c.last_seq, c.mailbox, c.shard INTO v_seq, v_box, v_shard;
    IF NOT FOUND THEN ${raise(ERR.notFound, 'p_agent')}; END IF;
    INSERT INTO ${S}.messages (agent_id, seq, message_id, message, at, reply_to)
      VALUES (p_agent, v_seq, p_id, p_message, (p_at #>> '{}')::float8, p_reply_to)
      ON CONFLICT (agent_id, message_id) DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = '40001',
        MESSAGE = format('message %s to agent %s was appended by another transaction at the same time', to_jsonb(p_id), to_jsonb(p_agent));
    END IF;
    INSERT INTO ${S}.rollout (agent_id, entry) VALUES (p_agent,
      jsonb_build_object('kind', 'accepted', 'seq', v_seq, 'messageId', p_id, 'message', p_message, 'at', p_at));
    IF v_box = 1 THEN
      PERFORM ${S}.hint('{"t":"mail","s":' || v_shard || ',"a":' || to_jsonb(p_agent)::text || '}');
    END IF;
    RETURN jsonb_build_object('agentId', p_agent, 'messageId', p_id, 'seq', v_seq, 'duplicate', false);
  END $$;

  -- Deletes the oldest rows of an agent, at most p_limit of each table (rollout, messages):
  -- true when some may be left.
  CREATE FUNCTION ${S}.purge_rows(p_agent text, p_limit int) RETURNS boolean LANGUAGE plpgsql AS $$
  DECLARE
    v_id bigint;
    v_seq bigint;
  BEGIN
    SELECT r.id INTO v_id FROM ${S}.rollout r WHERE r.agent_id = p_agent ORDER BY r.id LIMIT 1 OFFSET p_limit - 1;
    DELETE FROM ${S}.rollout r WHERE r.agent_id = p_agent AND (v_id IS NULL OR r.id <= v_id);
    SELECT m.seq INTO v_seq FROM ${S}.messages m WHERE m.agent_id = p_agent ORDER BY m.seq LIMIT 1 OFFSET p_limit - 1;
    DELETE FROM ${S}.messages m WHERE m.agent_id = p_agent AND (v_seq IS NULL OR m.seq <= v_seq);
    RETURN v_id IS NOT NULL OR v_seq IS NOT NULL;
  END $$;

  -- Creates an agent (a record with its shard); false when the id is taken. What is left of
  -- a destroyed agent of that id goes first.
  CREATE FUNCTION ${S}.insert_agent(r jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
  DECLARE
    v_id text := r ->> 'id';
  BEGIN
    INSERT INTO ${S}.agents (id, shard, type, parent, pinned, input, created_at)
      VALUES (v_id, (r ->> 'shard')::int, r ->> 'type', r ->> 'parent', (r ->> 'pinned')::boolean, r -> 'input', (r ->> 'createdAt')::float8)
      ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
      PERFORM 1 FROM ${S}.agents a WHERE a.id = v_id AND a.destroying FOR UPDATE;
      IF FOUND THEN
        DELETE FROM ${S}.rollout WHERE agent_id = v_id;
        DELETE FROM ${S}.messages WHERE agent_id = v_id;
        DELETE FROM ${S}.agents WHERE id = v_id;
      END IF;
      -- Also when the row went meanwhile (a background step deleted the last of it).
      INSERT INTO ${S}.agents (id, shard, type, parent, pinned, input, created_at)
        VALUES (v_id, (r ->> 'shard')::int, r ->> 'type', r ->> 'parent', (r ->> 'pinned')::boolean, r -> 'input', (r ->> 'createdAt')::float8)
        ON CONFLICT (id) DO NOTHING;
      IF NOT FOUND THEN RETURN false; END IF;
    END IF;
    INSERT INTO ${S}.counters (agent_id, shard) VALUES (v_id, (r ->> 'shard')::int);
    RETURN true;
  END $$;

  -- Destroys an agent at once for every read and write; its history goes in bounded steps.
  CREATE FUNCTION ${S}.destroy(p_agent text, p_limit int) RETURNS boolean LANGUAGE plpgsql AS $$
  DECLARE
    v_shard int;
  BEGIN
    DELETE FROM ${S}.counters c WHERE c.agent_id = p_agent RETURNING c.shard INTO v_shard;
    IF NOT FOUND THEN RETURN false; END IF;
    DELETE FROM ${S}.timers WHERE agent_id = p_agent;
    DELETE FROM ${S}.replies WHERE agent_id = p_agent;
    DELETE FROM ${S}.snapshots WHERE agent_id = p_agent;
    IF ${S}.purge_rows(p_agent, p_limit) THEN
      UPDATE ${S}.agents SET destroying = true WHERE id = p_agent;
    ELSE
      DELETE FROM ${S}.agents WHERE id = p_agent;
    END IF;
    PERFORM ${S}.hint('{"t":"destroyed","s":' || v_shard || ',"a":' || to_jsonb(p_agent)::text || '}');
    RETURN true;
  END $$;

  -- One step of the background deletion of destroyed agents' rows: false when none was left.
  CREATE FUNCTION ${S}.purge_step(p_limit int) RETURNS boolean LANGUAGE plpgsql AS $$
  DECLARE
    v_id text;
  BEGIN
    SELECT a.id INTO v_id FROM ${S}.agents a WHERE a.destroying ORDER BY a.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN RETURN false; END IF;
    IF NOT ${S}.purge_rows(v_id, p_limit) THEN DELETE FROM ${S}.agents WHERE id = v_id; END IF;
    RETURN true;
  END $$;

  CREATE FUNCTION ${S}.start_turn(p_agent text, p_seq bigint, p_at jsonb) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE ${S}.counters c SET last_active_at = coalesce((p_at #>> '{}')::float8, c.last_active_at) WHERE c.agent_id = p_agent;
    IF NOT FOUND THEN ${raise(ERR.notFound, 'p_agent')}; END IF;
    UPDATE ${S}.messages m SET started_at = (p_at #>> '{}')::float8 WHERE m.agent_id = p_agent AND m.seq = p_seq AND NOT m.consumed;
    IF NOT FOUND THEN ${raise(ERR.notPending, "p_agent, p_seq, 'begin a turn on'")}; END IF;
    INSERT INTO ${S}.rollout (agent_id, entry) VALUES (p_agent, jsonb_build_object('kind', 'turn.started', 'seq', p_seq, 'at', p_at));
  END $$;

  CREATE FUNCTION ${S}.note(p_agent text, p_entry jsonb) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE ${S}.counters c SET last_active_at = coalesce((p_entry ->> 'at')::float8, c.last_active_at) WHERE c.agent_id = p_agent;
    IF NOT FOUND THEN ${raise(ERR.notFound, 'p_agent')}; END IF;
    INSERT INTO ${S}.rollout (agent_id, entry) VALUES (p_agent, p_entry);
  END $$;

  -- Upserts a timer of an agent that exists, counting it when it is new.
  CREATE FUNCTION ${S}.put_timer(p_agent text, p_key text, p_at jsonb, p_message jsonb) RETURNS void LANGUAGE plpgsql AS $$
  DECLARE
    v_shard int;
  BEGIN
    UPDATE ${S}.counters c
      SET timers = c.timers + 1 - (SELECT count(*) FROM ${S}.timers t WHERE t.agent_id = p_agent AND t.key = p_key)
      WHERE c.agent_id = p_agent RETURNING c.shard INTO v_shard;
    IF NOT FOUND THEN ${raise(ERR.notFound, 'p_agent')}; END IF;
    INSERT INTO ${S}.timers (agent_id, key, shard, at, message) VALUES (p_agent, p_key, v_shard, (p_at #>> '{}')::float8, p_message)
      ON CONFLICT (agent_id, key) DO UPDATE SET at = excluded.at, message = excluded.message;
  END $$;

  -- Deletes the agent's timer p_key: true when there was one.
  CREATE FUNCTION ${S}.cancel_timer(p_agent text, p_key text) RETURNS boolean LANGUAGE plpgsql AS $$
  BEGIN
    DELETE FROM ${S}.timers t WHERE t.agent_id = p_agent AND t.key = p_key;
    IF NOT FOUND THEN RETURN false; END IF;
    UPDATE ${S}.counters c SET timers = c.timers - 1 WHERE c.agent_id = p_agent;
    RETURN true;
  END $$;

  -- Fires a timer if it still has deadline at: its message is accepted (rule 13); else null.
  CREATE FUNCTION ${S}.fire(op jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  DECLARE
    v_agent text := op ->> 'agentId';
    v_message jsonb;
  BEGIN
    DELETE FROM ${S}.timers t WHERE t.agent_id = v_agent AND t.key = op ->> 'key' AND t.at = (op ->> 'at')::float8
      RETURNING t.message INTO v_message;
    IF NOT FOUND THEN RETURN NULL; END IF;
    UPDATE ${S}.counters c SET timers = c.timers - 1 WHERE c.agent_id = v_agent;
    RETURN ${S}.accept(v_agent, op ->> 'messageId', v_message, op -> 'firedAt', NULL);
  END $$;

  -- Deletes, oldest first and at most p_limit of each, the agent's rollout entries up to the
  -- turn.finished of its turn p_last, and its messages consumed by turns up to p_last (rule 12).
  CREATE FUNCTION ${S}.prune(p_agent text, p_last bigint, p_limit int) RETURNS void LANGUAGE plpgsql AS $$
  DECLARE
    v_end bigint;
    v_end_seq bigint;
    v_bound bigint;
  BEGIN
    IF p_last < 1 THEN RETURN; END IF;
    SELECT r.id, (r.entry ->> 'seq')::bigint INTO v_end, v_end_seq FROM ${S}.rollout r
      WHERE r.agent_id = p_agent AND r.turn IS NOT NULL AND r.turn <= p_last ORDER BY r.turn DESC LIMIT 1;
    IF NOT FOUND THEN RETURN; END IF;
    SELECT r.id INTO v_bound FROM ${S}.rollout r WHERE r.agent_id = p_agent AND r.id <= v_end ORDER BY r.id LIMIT 1 OFFSET p_limit - 1;
    DELETE FROM ${S}.rollout r WHERE r.agent_id = p_agent AND r.id <= coalesce(v_bound, v_end);
    IF v_end_seq IS NULL THEN RETURN; END IF;
    SELECT m.seq INTO v_bound FROM ${S}.messages m WHERE m.agent_id = p_agent AND m.seq <= v_end_seq ORDER BY m.seq LIMIT 1 OFFSET p_limit - 1;
    DELETE FROM ${S}.messages m
      WHERE m.agent_id = p_agent AND m.seq <= coalesce(v_bound, v_end_seq) AND m.consumed AND coalesce(m.turn, 0) <= p_last;
  END $$;

  -- Commits a turn (rule 2): prepared by postgresStore (entries built, values serialized).
  CREATE FUNCTION ${S}.commit_turn(c jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  DECLARE
    v_agent text := c ->> 'agentId';
    v_seq bigint := (c ->> 'seq')::bigint;
    v_outcome text := c ->> 'outcome';
    v_turn bigint;
    v_reply_to text;
    v_next bigint;
    e jsonb;
    v_outbox jsonb[] := '{}';
    v_result jsonb;
  BEGIN
    -- The same commit again (its acknowledgement was lost with the connection, and the
    -- runtime retried it): what it did the first time, changing nothing.
    IF c ? 'token' THEN
      SELECT m.commit_result INTO v_result FROM ${S}.messages m
        WHERE m.agent_id = v_agent AND m.seq = v_seq AND m.consumed AND m.commit_token = c ->> 'token';
      IF FOUND THEN RETURN v_result; END IF;
    END IF;
    UPDATE ${S}.counters x SET turns = x.turns + 1, failed = x.failed + (v_outcome = 'failed')::int,
        crashed = x.crashed + (v_outcome = 'crashed')::int, interrupted = x.interrupted + (v_outcome = 'interrupted')::int,
        mailbox = x.mailbox - 1, last_active_at = (c ->> 'at')::float8
      WHERE x.agent_id = v_agent RETURNING x.turns INTO v_turn;
    IF NOT FOUND THEN ${raise(ERR.notFound, 'v_agent')}; END IF;
    UPDATE ${S}.messages m SET consumed = true, message = NULL, turn = v_turn, commit_token = c ->> 'token'
      WHERE m.agent_id = v_agent AND m.seq = v_seq AND NOT m.consumed RETURNING m.reply_to INTO v_reply_to;
    IF NOT FOUND THEN ${raise(ERR.notPending, "v_agent, v_seq, 'commit a turn for'")}; END IF;
    INSERT INTO ${S}.rollout (agent_id, entry)
      SELECT v_agent, o.value FROM jsonb_array_elements(c -> 'outputs') WITH ORDINALITY AS o ORDER BY o.ordinality;
    IF c ? 'snapshot' THEN
      INSERT INTO ${S}.snapshots (agent_id, snapshot) VALUES (v_agent, c -> 'snapshot')
        ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot;
      INSERT INTO ${S}.rollout (agent_id, entry) VALUES (v_agent, c -> 'snapshotEntry');
    END IF;
    INSERT INTO ${S}.rollout (agent_id, entry, turn) VALUES (v_agent, c -> 'finished', v_turn);
    FOR e IN SELECT o.value FROM jsonb_array_elements(c -> 'spawned') WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
      IF NOT ${S}.insert_agent(e) THEN ${raise(ERR.exists, "e ->> 'id'")}; END IF;
    END LOOP;
    FOR e IN SELECT o.value FROM jsonb_array_elements(c -> 'outbox') WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
      v_outbox := v_outbox || ${S}.accept(e ->> 'agentId', e ->> 'messageId', e -> 'message', e -> 'at', e ->> 'replyTo');
    END LOOP;
    IF c ? 'next' THEN
      v_next := (c #>> '{next,seq}')::bigint;
      IF v_next = v_seq THEN ${raise(ERR.notPending, "v_agent, v_seq, 'begin the next turn on'")}; END IF;
      PERFORM ${S}.start_turn(v_agent, v_next, c #> '{next,at}');
    END IF;
    FOR e IN SELECT o.value FROM jsonb_array_elements(c -> 'cancel') WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
      PERFORM ${S}.cancel_timer(v_agent, e #>> '{}');
    END LOOP;
    FOR e IN SELECT o.value FROM jsonb_array_elements(c -> 'schedule') WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
      PERFORM ${S}.put_timer(v_agent, e ->> 'key', e -> 'at', e -> 'message');
    END LOOP;
    IF v_reply_to IS NOT NULL AND c ? 'reply' THEN
      INSERT INTO ${S}.replies (agent_id, seq, reply_to, reply) VALUES (v_agent, v_seq, v_reply_to, c -> 'reply')
        ON CONFLICT (agent_id, seq) DO UPDATE SET reply_to = excluded.reply_to, reply = excluded.reply;
      PERFORM ${S}.hint('{"t":"reply","m":' || to_jsonb(v_reply_to)::text || ',"a":' || to_jsonb(v_agent)::text || ',"q":' || v_seq || '}');
    END IF;
    IF c ->> 'keep' IS NOT NULL THEN
      PERFORM ${S}.prune(v_agent, v_turn - (c ->> 'keep')::bigint, (c ->> 'prune')::int);
    END IF;
    v_result := jsonb_build_object('outbox', to_jsonb(v_outbox));
    IF c ? 'token' THEN
      UPDATE ${S}.messages m SET commit_result = v_result WHERE m.agent_id = v_agent AND m.seq = v_seq;
    END IF;
    RETURN v_result;
  END $$;

  -- One write op (see postgresStore's prepareOp for their shape): what it resolves to.
  CREATE FUNCTION ${S}.apply_op(op jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  DECLARE
    e jsonb;
    v_results jsonb[] := '{}';
  BEGIN
    CASE op ->> 'op'
      WHEN 'createAgent' THEN
        IF NOT ${S}.insert_agent(op -> 'record') THEN ${raise(ERR.exists, "op #>> '{record,id}'")}; END IF;
        RETURN NULL;
      WHEN 'destroyAgent' THEN
        RETURN to_jsonb(${S}.destroy(op ->> 'id', (op ->> 'purge')::int));
      WHEN 'append' THEN
        FOR e IN SELECT o.value FROM jsonb_array_elements(op -> 'messages') WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
          v_results := v_results || ${S}.accept(e ->> 'agentId', e ->> 'messageId', e -> 'message', e -> 'at', e ->> 'replyTo');
        END LOOP;
        IF (op ->> 'one')::boolean THEN RETURN v_results[1]; END IF;
        RETURN to_jsonb(v_results);
      WHEN 'beginTurn' THEN
        PERFORM ${S}.start_turn(op ->> 'agentId', (op ->> 'seq')::bigint, op -> 'at');
        RETURN NULL;
      WHEN 'commitTurn' THEN
        RETURN ${S}.commit_turn(op);
      WHEN 'note' THEN
        PERFORM ${S}.note(op ->> 'agentId', op -> 'entry');
        RETURN NULL;
      WHEN 'schedule' THEN
        PERFORM ${S}.put_timer(op ->> 'agentId', op ->> 'key', op -> 'at', op -> 'message');
        RETURN NULL;
      WHEN 'cancel' THEN
        RETURN to_jsonb(${S}.cancel_timer(op ->> 'agentId', op ->> 'key'));
      WHEN 'fire' THEN
        RETURN ${S}.fire(op);
    END CASE;
  END $$;

  -- The ops of a batch, in order, in the caller's transaction: each one's result
  -- ({ ok: true, v } or { ok: false, c: sqlstate, m: message }). All of them in one
  -- subtransaction first; when one fails on its own, that is rolled back and they run again,
  -- each in a subtransaction of its own (a savepoint), so a failed op changes nothing and
  -- the others go on. A transient failure (is_transient) fails the whole statement.
  -- Locks the counters rows of every agent the ops write to, in agent id order, before any
  -- op runs: two transactions that touch the same agents (a process appending to agents
  -- another process commits turns of, a commit's outbox) then wait for each other instead
  -- of deadlocking (each would otherwise lock its rows in its own op order).
  CREATE FUNCTION ${S}.lock_agents(ops jsonb) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM 1 FROM ${S}.counters c
      WHERE c.agent_id IN (
        SELECT o.value ->> 'agentId' FROM jsonb_array_elements(ops) o
        UNION SELECT o.value ->> 'id' FROM jsonb_array_elements(ops) o WHERE o.value ->> 'op' = 'destroyAgent'
        UNION SELECT m.value ->> 'agentId' FROM jsonb_array_elements(ops) o,
          jsonb_array_elements(coalesce(o.value -> 'messages', '[]'::jsonb) || coalesce(o.value -> 'outbox', '[]'::jsonb)) m
      )
      ORDER BY c.agent_id FOR UPDATE;
  END $$;

  -- One op on its own (a single write method): its agents locked first, as a batch's.
  CREATE FUNCTION ${S}.apply_one(op jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM ${S}.lock_agents(jsonb_build_array(op));
    RETURN ${S}.apply_op(op);
  END $$;

  -- A batch of an owner (see Cluster.ts), fenced in this very statement: the lease rows of
  -- p_shards are read FOR SHARE in shard order (no takeover commits before this statement
  -- does); an op whose shard (p_op_shards, -1 for a client write) is not held by p_member
  -- under the epoch it expects (p_epochs) gets {"ok":false,"fenced":true} and does not run;
  -- the others run as apply_batch runs them. One statement: no transaction is left open
  -- between round trips (a paused process cannot hold the lease rows).
  CREATE FUNCTION ${S}.apply_fenced(ops jsonb, p_op_shards int[], p_member text, p_shards int[], p_epochs bigint[])
    RETURNS jsonb LANGUAGE plpgsql AS $$
  DECLARE
    v_fenced int[];
    v_live jsonb := '[]'::jsonb;
    v_at int[] := '{}';
    v_out jsonb[] := '{}';
    v_done jsonb;
    i int;
  BEGIN
    v_fenced := ${fencedShardsSql(S, 'p_member', 'p_shards', 'p_epochs')};
    FOR i IN 1 .. jsonb_array_length(ops) LOOP
      IF p_op_shards[i] >= 0 AND p_op_shards[i] = ANY(v_fenced) THEN
        v_out[i] := '{"ok":false,"fenced":true}'::jsonb;
      ELSE
        v_out[i] := 'null'::jsonb;
        v_live := v_live || jsonb_build_array(ops -> (i - 1));
        v_at := v_at || i;
      END IF;
    END LOOP;
    IF jsonb_array_length(v_live) > 0 THEN
      v_done := ${S}.apply_batch(v_live);
      FOR i IN 1 .. array_length(v_at, 1) LOOP
        v_out[v_at[i]] := v_done -> (i - 1);
      END LOOP;
    END IF;
    RETURN to_jsonb(v_out);
  END $$;

  CREATE FUNCTION ${S}.apply_batch(ops jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  DECLARE
    op jsonb;
    v_results jsonb[] := '{}';
  BEGIN
    PERFORM ${S}.lock_agents(ops);
    BEGIN
      FOR op IN SELECT o.value FROM jsonb_array_elements(ops) WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
        v_results := v_results || jsonb_build_object('ok', true, 'v', ${S}.apply_op(op));
      END LOOP;
      RETURN to_jsonb(v_results);
    EXCEPTION WHEN OTHERS THEN
      IF ${S}.is_transient(SQLSTATE) THEN RAISE; END IF;
    END;
    v_results := '{}';
    FOR op IN SELECT o.value FROM jsonb_array_elements(ops) WITH ORDINALITY AS o ORDER BY o.ordinality LOOP
      BEGIN
        v_results := v_results || jsonb_build_object('ok', true, 'v', ${S}.apply_op(op));
      EXCEPTION WHEN OTHERS THEN
        IF ${S}.is_transient(SQLSTATE) THEN RAISE; END IF;
        v_results := v_results || jsonb_build_object('ok', false, 'c', SQLSTATE, 'm', SQLERRM);
      END;
    END LOOP;
    RETURN to_jsonb(v_results);
  END $$;
  `;
}
