/**
 * PostgreSQL scale-out (issue 15): the runtime on `postgresStore` (src/store/postgres/*),
 * against bare node-postgres doing the same rows, and what the cluster machinery costs in
 * time. Every measurement runs on a fresh schema of its own, dropped afterwards; the server
 * is RESIDENCY_PG_URL (default postgres://postgres@127.0.0.1:5432/test, as the tests).
 *
 * 1. Durable accepts, one process: 64 concurrent senders (each awaits its `runtime.send`
 *    before the next; sender s writes to agent s), handling kept out of the way as in the
 *    durable section (a blocker agent holds the only slot); against the store alone (the
 *    same appends straight to `postgresStore.batch`) and bare `pg` writing the same rows (a
 *    copy of the store's `counters`, `messages` and `rollout` tables: the seq counter and
 *    mailbox update, the message row, the `accepted` rollout entry) as one statement per
 *    transaction; both with as many rows per call/transaction as the runtime's group commits
 *    had in its round just before (its `store.batch` calls holding appends are counted), one
 *    at a time (the write buffer's shape: it has one batch in flight).
 * 2. Durable turns, one process: 64 resident agents of a trivial `fromTurn` logic, 4,000
 *    messages sent at once (no await), until 4,000 `turn.finished`; against the store alone
 *    (per group, one `postgresStore.batch` of an append and a commitTurn with `next` per turn)
 *    and bare `pg` doing a fenced commit per group: BEGIN, the lease rows of the group's
 *    shards read FOR SHARE (checked: owner and epoch), the writes, COMMIT; the groups as
 *    large as the runtime's (its turns / its `store.batch` calls in the same round), one at
 *    a time. Two bare shapes: the issue's (snapshot update + message delete, the messages
 *    inserted before the timing), and every row a turn leaves in the store's tables.
 * 3. Cross-process delivery: process B (bench/postgresChild.ts) starts first and owns every
 *    shard; this process (A) then opens a runtime on the same schema and joins, so the
 *    shards are split; the target agents are 64 agents of shards B owns: A's `runtime.send`
 *    to them is the non-owner path (a client write, the owner woken by NOTIFY). B records
 *    when each turn function starts and when its `turn.finished` comes.
 * 4. Takeover after SIGKILL: two members share 256 shards; one is killed; the time until
 *    the other holds all 256 (read from `shard_leases` every 10 ms).
 * 5. Rebalance on join: one member owns all 256 shards (64 agents resident); a second one
 *    starts; the time until it holds its fair share (128).
 *
 * The runtime candidates count their round trips to the server by kind (a wrapped
 * `client.query` on their pool): what a turn or an accept costs in statements. The
 * store-alone candidates' sessions track PL/pgSQL function times (`track_functions`, when
 * the role may set it): where the store's server time goes, per function.
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createRuntime, defineAgent, fromTurn, type Runtime, type Store, type StoreOp } from '../src/index.js';
import { postgresStore, shardOf } from '../src/postgres.js';
import { fmt, median } from './harness.js';

export const PG_URL = process.env.RESIDENCY_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SHARDS = 256;
const SENDERS = 64;
const AGENTS = 64;
const ACCEPT_OPS = 4_000;
const TURN_OPS = 4_000;
const ROUNDS = 5;
const PREFILL_PER_AGENT = 64;
const POOL_MAX = 10;

/** Wall-clock ms with sub-ms resolution, comparable across processes on one machine. */
export const wallNow = () => performance.timeOrigin + performance.now();

// --- agents -------------------------------------------------------------------------------

const nAgent = defineAgent({
  type: 'n',
  logic: fromTurn<{ n: number }>(({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }),
});

/** Holds the only slot: its turn never ends (until the runtime stops). */
const blockerAgent = defineAgent({
  type: 'blocker',
  logic: fromTurn<null>(({ signal }) => new Promise<null>((resolve) => signal.addEventListener('abort', () => resolve(null))), {
    initialState: null,
  }),
});

/** The cross-process agent: counts; `onStart` sees each turn start (its agent and message `i`). */
export function deliveryAgent(onStart?: (self: string, i: number) => void) {
  return defineAgent({
    type: 'd',
    logic: fromTurn<{ n: number }>(
      ({ state, self, message }) => {
        onStart?.(self, typeof message.i === 'number' ? message.i : -1);
        return { n: state.n + 1 };
      },
      { initialState: { n: 0 } },
    ),
  });
}

export interface TurnRecord {
  /** The message's number (A's), -1 for warm-up messages. */
  i: number;
  a: string;
  /** The turn function started (wall ms). */
  s: number;
  /** `turn.finished` (wall ms). */
  f: number;
}

export interface MemberArg {
  url: string;
  schema: string;
  shards: number;
  leaseTtl: number;
}

const GO = { type: 'go' } as const;
const id = (i: number) => `a-${i}`;

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// --- round trips --------------------------------------------------------------------------

/** What a statement is, by its text (the store's statements as of this bench's writing). */
function classify(text: string): string {
  const t = text.trimStart();
  if (/^BEGIN/i.test(t)) return 'BEGIN';
  if (/^COMMIT/i.test(t)) return 'COMMIT';
  if (/^ROLLBACK/i.test(t)) return 'ROLLBACK';
  if (t.includes('.apply_batch(')) return 'apply_batch';
  if (t.includes('.apply_op(')) return 'apply_op';
  if (/for share/i.test(t)) return 'fence';
  if (/^SELECT mailbox FROM/.test(t)) return 'mailboxSize';
  if (/^SELECT m\.seq, m\.message_id/.test(t)) return 'pending';
  if (/^SELECT snapshot FROM/.test(t)) return 'loadSnapshot';
  if (/renewed as/.test(t)) return 'heartbeat';
  if (/x\.mailbox > 0/.test(t)) return 'withPending';
  if (/min\(t\.at\)/.test(t)) return 'nextDeadline';
  if (/FROM \S+\.agents a WHERE a\.id = \$1/.test(t)) return 'getAgent';
  if (/FROM \S+\.agents a WHERE a\.id = ANY/.test(t)) return 'getAgents';
  return 'other';
}

export interface Trips {
  n: Record<string, number>;
  ms: Record<string, number>;
}

/** Counts every statement sent on the pool's connections (one `client.query` is one round trip in pg). */
export function countTrips(pool: pg.Pool): Trips {
  const trips: Trips = { n: {}, ms: {} };
  const add = (kind: string, ms: number) => {
    trips.n[kind] = (trips.n[kind] ?? 0) + 1;
    trips.ms[kind] = (trips.ms[kind] ?? 0) + ms;
  };
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...a: unknown[]) => unknown;
    (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const cfg = args[0] as string | { text?: string };
      const kind = classify(typeof cfg === 'string' ? cfg : (cfg?.text ?? ''));
      const t0 = performance.now();
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (...r: unknown[]) => {
          add(kind, performance.now() - t0);
          return (last as (...x: unknown[]) => unknown)(...r);
        };
        return query(...args);
      }
      const p = query(...args) as Promise<unknown>;
      void p.then(
        () => add(kind, performance.now() - t0),
        () => add(kind, performance.now() - t0),
      );
      return p;
    };
  });
  return trips;
}

export const copyTrips = (t: Trips): Trips => ({ n: { ...t.n }, ms: { ...t.ms } });
export function addDelta(into: Trips, after: Trips, before: Trips): void {
  for (const k of Object.keys(after.n)) {
    into.n[k] = (into.n[k] ?? 0) + after.n[k]! - (before.n[k] ?? 0);
    into.ms[k] = (into.ms[k] ?? 0) + after.ms[k]! - (before.ms[k] ?? 0);
  }
}
const tripFacts = (t: Trips, per: number): Record<string, number> =>
  Object.fromEntries(Object.keys(t.n).flatMap((k) => [[`rt.${k}`, t.n[k]! / per], [`ms.${k}`, t.ms[k]! / per]]));

// --- candidates (in their own processes: bench/postgresChild.ts) ---------------------------

export interface PgCandidate {
  setup(): Promise<void>;
  /** `extra`: the parent's settings for this round (the batch size to use). Returns its own time when it measured one. */
  run(ops: number, extra: Record<string, number>): Promise<{ ns?: number; facts?: Record<string, number> } | void>;
  check(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/**
 * Accepts through the runtime: `senders` concurrent callers, each awaiting its `send`
 * before the next, sender s to agent s; a blocker holds the only slot so that nothing but
 * accepts touches the store. Counts its group commits holding appends, and round trips.
 */
function pgAcceptsRuntime(arg: { url: string; schema: string }): PgCandidate {
  let pool!: pg.Pool;
  let trips!: Trips;
  let store!: Store;
  let runtime!: Runtime;
  const counts = { calls: 0, rows: 0, ops: 0 };
  let sent = 0;
  let measured = 0;
  let rounds = 0;
  const tripsMeasured: Trips = { n: {}, ms: {} };
  return {
    async setup() {
      pool = new pg.Pool({ connectionString: arg.url, max: POOL_MAX });
      pool.on('error', () => {});
      trips = countTrips(pool);
      store = postgresStore({ pool, schema: arg.schema, shards: SHARDS });
      const batch = store.batch!.bind(store);
      store.batch = (ops: readonly StoreOp[]) => {
        const appends = ops.filter((op) => op.op === 'append').length;
        if (appends > 0) {
          counts.calls++;
          counts.rows += appends;
          counts.ops += ops.length;
        }
        return batch(ops);
      };
      runtime = await createRuntime({ agents: [nAgent, blockerAgent], store, residentCap: 1, runningCap: 1, stopTimeout: 100 });
      const started = new Promise<void>((resolve) => runtime.on('turn.started', () => resolve()));
      await runtime.spawn('blocker', { id: 'blocker' });
      await runtime.send('blocker', GO);
      await started;
      for (let s = 0; s < SENDERS; s++) await runtime.spawn('n', { id: id(s) });
      const prefill: Promise<unknown>[] = [];
      for (let k = 0; k < PREFILL_PER_AGENT; k++) for (let s = 0; s < SENDERS; s++) prefill.push(runtime.send(id(s), GO));
      await Promise.all(prefill);
      sent = prefill.length;
    },
    async run(ops) {
      const before = { ...counts };
      const tBefore = copyTrips(trips);
      const each = Math.ceil(ops / SENDERS);
      const loops: Promise<void>[] = [];
      for (let s = 0; s < SENDERS; s++) {
        const count = Math.max(0, Math.min(each, ops - s * each));
        loops.push(
          (async () => {
            for (let k = 0; k < count; k++) await runtime.send(id(s), GO);
          })(),
        );
      }
      await Promise.all(loops);
      sent += ops;
      if (rounds++ > 0) {
        addDelta(tripsMeasured, trips, tBefore);
        measured += ops;
      }
      return { facts: { meanBatch: (counts.rows - before.rows) / (counts.calls - before.calls) } };
    },
    async check() {
      let pending = 0;
      for (let s = 0; s < SENDERS; s++) pending += await store.mailboxSize(id(s));
      if (pending !== sent) throw new Error(`accepts: ${pending} messages pending, ${sent} sent`);
      if (runtime.stats().loads !== 1) throw new Error('accepts: agents besides the blocker were loaded');
      return { meanBatch: counts.rows / counts.calls, opsPerBatch: counts.ops / counts.calls, ...tripFacts(tripsMeasured, measured) };
    },
    async close() {
      await runtime.stop();
      await pool.end();
    },
  };
}

/** A copy of the store's tables the bare side writes (columns and indexes as schema.ts v1). */
function bareTables(S: string): string {
  return `
  CREATE SCHEMA ${S};
  CREATE TABLE ${S}.counters (
    agent_id text COLLATE "C" PRIMARY KEY, shard int NOT NULL, last_seq bigint NOT NULL DEFAULT 0, turns bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0, crashed bigint NOT NULL DEFAULT 0, interrupted bigint NOT NULL DEFAULT 0,
    mailbox bigint NOT NULL DEFAULT 0, timers bigint NOT NULL DEFAULT 0, last_active_at float8);
  CREATE INDEX counters_with_mail ON ${S}.counters (shard, agent_id) WHERE mailbox > 0;
  CREATE TABLE ${S}.messages (
    agent_id text COLLATE "C" NOT NULL, seq bigint NOT NULL, message_id text COLLATE "C" NOT NULL, message jsonb, at float8 NOT NULL,
    consumed boolean NOT NULL DEFAULT false, started_at float8, turn bigint, reply_to text, PRIMARY KEY (agent_id, seq));
  CREATE UNIQUE INDEX messages_by_message_id ON ${S}.messages (agent_id, message_id);
  CREATE INDEX messages_pending ON ${S}.messages (agent_id, seq) WHERE NOT consumed;
  CREATE INDEX messages_in_flight ON ${S}.messages (agent_id, seq) WHERE NOT consumed AND started_at IS NOT NULL;
  CREATE TABLE ${S}.snapshots (agent_id text COLLATE "C" PRIMARY KEY, snapshot jsonb NOT NULL);
  CREATE TABLE ${S}.rollout (
    agent_id text COLLATE "C" NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, turn bigint, entry jsonb NOT NULL, PRIMARY KEY (agent_id, id));
  CREATE INDEX rollout_turns ON ${S}.rollout (agent_id, turn) WHERE turn IS NOT NULL;
  CREATE TABLE ${S}.shard_leases (shard int PRIMARY KEY, owner text NULL, epoch bigint NOT NULL DEFAULT 0, expires_at timestamptz NULL, moves bigint NOT NULL DEFAULT 0);
  INSERT INTO ${S}.shard_leases (shard, owner, epoch, expires_at) SELECT g, 'bare', 1, now() + interval '1 hour' FROM generate_series(0, ${SHARDS - 1}) g;
  `;
}

/** One statement: the accepts of `$1` (distinct agents): counter, message row, `accepted` entry. */
const acceptSql = (S: string) => `
  WITH r AS (
    SELECT e ->> 'a' AS agent_id, e ->> 'id' AS message_id, e -> 'm' AS message, (e ->> 'at')::float8 AS at, e -> 'at' AS at_json, k
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, k)
  ), c AS (
    UPDATE ${S}.counters x SET last_seq = x.last_seq + 1, mailbox = x.mailbox + 1, last_active_at = r.at
    FROM r WHERE x.agent_id = r.agent_id RETURNING x.agent_id, x.last_seq
  ), m AS (
    INSERT INTO ${S}.messages (agent_id, seq, message_id, message, at)
    SELECT r.agent_id, c.last_seq, r.message_id, r.message, r.at FROM r JOIN c USING (agent_id)
  )
  INSERT INTO ${S}.rollout (agent_id, entry)
  SELECT r.agent_id, jsonb_build_object('kind', 'accepted', 'seq', c.last_seq, 'messageId', r.message_id, 'message', r.message, 'at', r.at_json)
  FROM r JOIN c USING (agent_id) ORDER BY r.k`;

const snapshotOf = (n: number) => ({ status: 'active', value: 'idle', historyValue: {}, context: { state: { n } }, children: {} });

async function bareSetup(url: string, schema: string, agents: number): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: url, max: POOL_MAX });
  pool.on('error', () => {});
  const S = `"${schema}"`;
  await pool.query(bareTables(S));
  await pool.query(
    `INSERT INTO ${S}.counters (agent_id, shard) SELECT x, s FROM unnest($1::text[], $2::int[]) AS u(x, s);
     `.trim(),
    [Array.from({ length: agents }, (_, i) => id(i)), Array.from({ length: agents }, (_, i) => shardOf(id(i), SHARDS))],
  );
  await pool.query(`INSERT INTO ${S}.snapshots (agent_id, snapshot) SELECT x, $2::jsonb FROM unnest($1::text[]) AS x`, [
    Array.from({ length: agents }, (_, i) => id(i)),
    JSON.stringify(snapshotOf(0)),
  ]);
  return pool;
}

/**
 * Bare accepts: `extra.batch` rows per transaction (one statement, autocommit), `extra.inFlight`
 * transactions at once on a pool of 10, agents round robin (a batch never holds one twice).
 */
function pgAcceptsBare(arg: { url: string; schema: string }): PgCandidate {
  let pool!: pg.Pool;
  let k = 0;
  const S = `"${arg.schema}"`;
  const sql = acceptSql(S);
  const rows = (count: number) =>
    JSON.stringify(
      Array.from({ length: count }, () => {
        const n = k++;
        return { a: id(n % AGENTS), id: `${Date.now().toString(36)}-${n.toString(36)}`, m: GO, at: Date.now() };
      }),
    );
  const write = async (count: number) => {
    const r = await pool.query(sql, [rows(count)]);
    if (r.rowCount !== count) throw new Error(`bare accepts: ${r.rowCount} rows for ${count}`);
  };
  const used: number[] = [];
  return {
    async setup() {
      pool = await bareSetup(arg.url, arg.schema, AGENTS);
      for (let done = 0; done < PREFILL_PER_AGENT * AGENTS; done += AGENTS) await write(AGENTS);
    },
    async run(ops, extra) {
      const batch = Math.min(AGENTS, Math.max(1, Math.round(extra.batch ?? 1)));
      const inFlight = Math.max(1, extra.inFlight ?? 1);
      used.push(batch);
      // Transactions in order: each worker takes the next one (the agents of concurrent ones are disjoint while batch × inFlight ≤ 64).
      const txs = Math.ceil(ops / batch);
      let next = 0;
      const worker = async () => {
        for (let t = next++; t < txs; t = next++) await write(Math.min(batch, ops - t * batch));
      };
      await Promise.all(Array.from({ length: inFlight }, worker));
      return {};
    },
    async check() {
      const r = await pool.query<{ n: number; box: number }>(`SELECT (SELECT count(*) FROM ${S}.messages)::int AS n, (SELECT sum(mailbox) FROM ${S}.counters)::int AS box`);
      if (r.rows[0]!.n !== k || r.rows[0]!.box !== k) throw new Error(`bare accepts: ${r.rows[0]!.n} rows, ${k} written`);
      return { meanBatch: used.reduce((a, b) => a + b, 0) / used.length };
    },
    async close() {
      await pool.end();
    },
  };
}

/**
 * Turns through the runtime: 64 resident `n` agents; a round sends `ops` messages round
 * robin without await in one loop, until `ops` more `turn.finished`. Counts its `store.batch`
 * calls (group commits) and their ops by kind, and round trips by kind.
 */
function pgTurnsRuntime(arg: { url: string; schema: string; runningCap: number }): PgCandidate {
  let pool!: pg.Pool;
  let trips!: Trips;
  let runtime!: Runtime;
  let finished = 0;
  let failed = 0;
  let sendErrors = 0;
  let sent = 0;
  let rounds = 0;
  let measured = 0;
  let loadsAfterSetup = 0;
  const waits: { n: number; resolve: () => void }[] = [];
  const until = (n: number) =>
    finished >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          waits.push({ n, resolve });
          waits.sort((a, b) => a.n - b.n);
        });
  const counts: Record<string, number> = { batches: 0, ops: 0 };
  const countsMeasured: Record<string, number> = {};
  const tripsMeasured: Trips = { n: {}, ms: {} };
  return {
    async setup() {
      pool = new pg.Pool({ connectionString: arg.url, max: POOL_MAX });
      pool.on('error', () => {});
      trips = countTrips(pool);
      const store = postgresStore({ pool, schema: arg.schema, shards: SHARDS });
      const batch = store.batch!.bind(store);
      store.batch = (ops: readonly StoreOp[]) => {
        counts.batches!++;
        counts.ops! += ops.length;
        for (const op of ops) {
          const kind = op.op === 'commitTurn' && op.commit.next ? 'commitTurn+next' : op.op;
          counts[`op.${kind}`] = (counts[`op.${kind}`] ?? 0) + 1;
        }
        return batch(ops);
      };
      runtime = await createRuntime({ agents: [nAgent], store, residentCap: AGENTS, runningCap: arg.runningCap });
      runtime.on('turn.finished', (e) => {
        finished++;
        if (e.outcome !== 'done') failed++;
        while (waits.length > 0 && finished >= waits[0]!.n) waits.shift()!.resolve();
      });
      for (let i = 0; i < AGENTS; i++) await runtime.spawn('n', { id: id(i) });
      const loaded = until(AGENTS);
      for (let i = 0; i < AGENTS; i++) void runtime.send(id(i), GO);
      await loaded;
      sent = AGENTS;
      loadsAfterSetup = runtime.stats().loads;
    },
    async run(ops) {
      const before = { ...counts };
      const tBefore = copyTrips(trips);
      const done = until(finished + ops);
      const onError = () => void sendErrors++;
      for (let k = 0; k < ops; k++) runtime.send(id(k % AGENTS), GO).catch(onError);
      await done;
      sent += ops;
      if (rounds++ > 0) {
        measured += ops;
        addDelta(tripsMeasured, trips, tBefore);
        for (const [k, v] of Object.entries(counts)) countsMeasured[k] = (countsMeasured[k] ?? 0) + v - (before[k] ?? 0);
      }
      return { facts: { turnsPerBatch: ops / (counts.batches! - before.batches!) } };
    },
    async check() {
      if (failed > 0) throw new Error(`${failed} turns failed`);
      if (sendErrors > 0) throw new Error(`${sendErrors} sends rejected`);
      const facts: Record<string, number> = { ...tripFacts(tripsMeasured, measured) };
      for (const [k, v] of Object.entries(countsMeasured)) facts[`c.${k}`] = v / measured;
      let total = 0;
      for (let i = 0; i < AGENTS; i++) total += ((await runtime.ask(id(i), GO)).state as { n: number }).n;
      if (total !== sent + AGENTS) throw new Error(`agents counted ${total}, sent ${sent + AGENTS}`);
      const reloads = runtime.stats().loads - loadsAfterSetup;
      if (reloads !== 0) throw new Error(`${reloads} agents were reloaded while measured`);
      return facts;
    },
    async close() {
      await runtime.stop();
      await pool.end();
    },
  };
}

/**
 * Bare fenced commits, `extra.batch` turns per transaction, one transaction at a time:
 * BEGIN; the lease rows of the group's shards FOR SHARE (owner and epoch checked); the
 * writes; COMMIT.
 * - `fence-only` (the issue's shape): the snapshot updates and the message deletes of the
 *   group; the messages are inserted before the timing (not timed: the candidate times itself).
 * - `rows`: every row a turn leaves in the store's tables, in one statement: the seq and turn
 *   counters, the message row (consumed), the snapshot upsert, four rollout entries
 *   (accepted, turn.started, snapshot, turn.finished).
 */
function pgTurnsBare(arg: { url: string; schema: string; shape: 'fence-only' | 'rows' }): PgCandidate {
  let pool!: pg.Pool;
  const S = `"${arg.schema}"`;
  const seqs = new Array<number>(AGENTS).fill(0);
  const counters = new Array<number>(AGENTS).fill(0);
  let k = 0;
  let turns = 0;
  const fence = `SELECT shard, owner, epoch::text AS epoch FROM ${S}.shard_leases WHERE shard = ANY($1::int[]) ORDER BY shard FOR SHARE`;
  const fenceOnly = `
    WITH r AS (SELECT e ->> 'a' AS agent_id, (e ->> 'q')::bigint AS seq, e -> 's' AS snapshot FROM jsonb_array_elements($1::jsonb) AS t(e)),
    u AS (UPDATE ${S}.snapshots s SET snapshot = r.snapshot FROM r WHERE s.agent_id = r.agent_id)
    DELETE FROM ${S}.messages m USING r WHERE m.agent_id = r.agent_id AND m.seq = r.seq`;
  const rowsSql = `
    WITH r AS (
      SELECT e ->> 'a' AS agent_id, e ->> 'id' AS message_id, e -> 'm' AS message, (e ->> 'at')::float8 AS at, e -> 'at' AS at_json, e -> 's' AS snapshot, k
      FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, k)
    ), c AS (
      UPDATE ${S}.counters x SET last_seq = x.last_seq + 1, turns = x.turns + 1, last_active_at = r.at
      FROM r WHERE x.agent_id = r.agent_id RETURNING x.agent_id, x.last_seq, x.turns
    ), m AS (
      INSERT INTO ${S}.messages (agent_id, seq, message_id, message, at, consumed, started_at, turn)
      SELECT r.agent_id, c.last_seq, r.message_id, NULL, r.at, true, r.at, c.turns FROM r JOIN c USING (agent_id)
    ), s AS (
      INSERT INTO ${S}.snapshots (agent_id, snapshot) SELECT agent_id, snapshot FROM r
      ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot
    )
    INSERT INTO ${S}.rollout (agent_id, entry, turn)
    SELECT r.agent_id, x.entry, CASE WHEN x.j = 4 THEN c.turns END
    FROM r JOIN c USING (agent_id) CROSS JOIN LATERAL (VALUES
      (1, jsonb_build_object('kind', 'accepted', 'seq', c.last_seq, 'messageId', r.message_id, 'message', r.message, 'at', r.at_json)),
      (2, jsonb_build_object('kind', 'turn.started', 'seq', c.last_seq, 'at', r.at_json)),
      (3, jsonb_build_object('kind', 'snapshot', 'seq', c.last_seq, 'at', r.at_json)),
      (4, jsonb_build_object('kind', 'turn.finished', 'seq', c.last_seq, 'outcome', 'done', 'at', r.at_json, 'durationMs', 0))
    ) AS x(j, entry)
    ORDER BY r.k, x.j`;
  /** The next `count` turns, round robin (distinct agents while count ≤ 64). */
  const group = (count: number) =>
    Array.from({ length: count }, () => {
      const n = k++;
      const a = n % AGENTS;
      return { a: id(a), q: ++seqs[a]!, id: `${Date.now().toString(36)}-${n.toString(36)}`, m: GO, at: Date.now(), s: snapshotOf(++counters[a]!) };
    });
  async function commitGroup(client: pg.PoolClient, g: ReturnType<typeof group>): Promise<void> {
    await client.query('BEGIN');
    try {
      const shards = [...new Set(g.map((t) => shardOf(t.a, SHARDS)))];
      const { rows } = await client.query<{ shard: number; owner: string; epoch: string }>(fence, [shards]);
      if (rows.length !== shards.length || !rows.every((r) => r.owner === 'bare' && r.epoch === '1')) throw new Error('bare: fenced');
      const r = await client.query(arg.shape === 'rows' ? rowsSql : fenceOnly, [JSON.stringify(g)]);
      const expected = arg.shape === 'rows' ? 4 * g.length : g.length;
      if (r.rowCount !== expected) throw new Error(`bare turns: ${r.rowCount} rows, expected ${expected}`);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }
  return {
    async setup() {
      pool = await bareSetup(arg.url, arg.schema, AGENTS);
    },
    async run(ops, extra) {
      const batch = Math.min(AGENTS, Math.max(1, Math.round(extra.batch ?? 1)));
      const groups: ReturnType<typeof group>[] = [];
      for (let done = 0; done < ops; done += batch) groups.push(group(Math.min(batch, ops - done)));
      if (arg.shape === 'fence-only') {
        // The messages first (not timed), as accepts would have written them; seqs were assigned in `group`.
        const all = groups.flat();
        for (let i = 0; i < all.length; i += AGENTS) {
          const part = all.slice(i, i + AGENTS);
          await pool.query(`INSERT INTO ${S}.messages (agent_id, seq, message_id, message, at) SELECT e ->> 'a', (e ->> 'q')::bigint, e ->> 'id', e -> 'm', (e ->> 'at')::float8 FROM jsonb_array_elements($1::jsonb) AS t(e)`, [
            JSON.stringify(part),
          ]);
        }
      }
      const client = await pool.connect();
      const h0 = process.hrtime.bigint();
      try {
        for (const g of groups) await commitGroup(client, g);
      } finally {
        client.release();
      }
      const ns = Number(process.hrtime.bigint() - h0);
      turns += ops;
      return { ns, facts: { batch } };
    },
    async check() {
      const r = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${S}.messages`);
      const expected = arg.shape === 'rows' ? turns : 0;
      if (r.rows[0]!.n !== expected) throw new Error(`bare turns: ${r.rows[0]!.n} message rows, expected ${expected}`);
      return {};
    },
    async close() {
      await pool.end();
    },
  };
}

/**
 * The store-alone candidates' pool: with `profile`, its sessions track the time spent in
 * PL/pgSQL functions (`track_functions = pl`, a superuser setting; read back from
 * `pg_stat_user_functions` once their connections closed: see `functionProfile`).
 */
function storePool(arg: { url: string; profile: boolean }): pg.Pool {
  const pool = new pg.Pool({ connectionString: arg.url, max: POOL_MAX, ...(arg.profile ? { options: '-c track_functions=pl' } : {}) });
  pool.on('error', () => {});
  return pool;
}

/** Calls and self time (µs per call) of each function of the schema, as the server counted them. */
async function functionProfile(admin: pg.Pool, schema: string): Promise<{ name: string; calls: number; selfUs: number; totalUs: number }[]> {
  await new Promise<void>((r) => setTimeout(r, 500)); // the closed sessions' counts reach the shared statistics
  const { rows } = await admin.query<{ name: string; calls: string; self: number; total: number }>(
    'SELECT funcname AS name, calls::text AS calls, self_time AS self, total_time AS total FROM pg_stat_user_functions WHERE schemaname = $1 ORDER BY self_time DESC',
    [schema],
  );
  return rows.map((r) => ({ name: r.name, calls: Number(r.calls), selfUs: (1000 * r.self) / Number(r.calls), totalUs: (1000 * r.total) / Number(r.calls) }));
}

/**
 * The store alone, without the runtime: `postgresStore.batch` of append ops (one message
 * each), `extra.batch` per call, one call at a time, agents round robin: the runtime's
 * group commits of accepts, without the runtime around them.
 */
function pgAcceptsStore(arg: { url: string; schema: string; profile: boolean }): PgCandidate {
  let pool!: pg.Pool;
  let store!: Store;
  let n = 0;
  const appends = (count: number): StoreOp[] =>
    Array.from({ length: count }, () => {
      const k = n++;
      return { op: 'append' as const, request: { agentId: id(k % AGENTS), messageId: `${Date.now().toString(36)}-${k.toString(36)}`, message: GO, at: Date.now() } };
    });
  const write = async (count: number) => {
    const rs = await store.batch!(appends(count));
    if (!rs.every((r) => r.ok)) throw new Error('store accepts: an op failed');
  };
  return {
    async setup() {
      pool = storePool(arg);
      store = postgresStore({ pool, schema: arg.schema, shards: SHARDS });
      for (let i = 0; i < AGENTS; i++) await store.createAgent({ id: id(i), type: 'n', parent: null, pinned: false, input: null, createdAt: Date.now() });
      for (let done = 0; done < PREFILL_PER_AGENT * AGENTS; done += AGENTS) await write(AGENTS);
    },
    async run(ops, extra) {
      const batch = Math.min(AGENTS, Math.max(1, Math.round(extra.batch ?? 1)));
      for (let done = 0; done < ops; done += batch) await write(Math.min(batch, ops - done));
      return {};
    },
    async check() {
      let pending = 0;
      for (let i = 0; i < AGENTS; i++) pending += await store.mailboxSize(id(i));
      if (pending !== n) throw new Error(`store accepts: ${pending} pending, ${n} appended`);
      return {};
    },
    async close() {
      await store.close();
      await pool.end();
    },
  };
}

/**
 * The store alone, without the runtime, owning every shard (`acquire`: its commits are
 * fenced): per group of `extra.batch` turns (distinct agents), ONE `postgresStore.batch`
 * holding an append per agent (its next message) and then a commitTurn per agent (its
 * current message, the snapshot, the begin of the next: `next`, retention as the
 * runtime's default) — the ops of the runtime's group commits (about 1 append + 1
 * commitTurn with `next` per turn), without the runtime around them.
 */
function pgTurnsStore(arg: { url: string; schema: string; profile: boolean }): PgCandidate {
  let pool!: pg.Pool;
  let store!: Store;
  const heads = new Array<number>(AGENTS).fill(1);
  const counters = new Array<number>(AGENTS).fill(0);
  let k = 0;
  let m = 0;
  const message = () => `${Date.now().toString(36)}-${(m++).toString(36)}`;
  const ok = (rs: { ok: boolean; error?: unknown }[]) => {
    const bad = rs.find((r) => !r.ok);
    if (bad) throw new Error(`store turns: an op failed: ${String(bad.error)}`);
  };
  return {
    async setup() {
      pool = storePool(arg);
      store = postgresStore({ pool, schema: arg.schema, shards: SHARDS });
      await store.acquire({ pid: process.pid, host: os.hostname(), since: Date.now() });
      for (let i = 0; i < AGENTS; i++) await store.createAgent({ id: id(i), type: 'n', parent: null, pinned: false, input: null, createdAt: Date.now() });
      ok(await store.batch!(Array.from({ length: AGENTS }, (_, i) => ({ op: 'append' as const, request: { agentId: id(i), messageId: message(), message: GO, at: Date.now() } }))));
      ok(await store.batch!(Array.from({ length: AGENTS }, (_, i) => ({ op: 'beginTurn' as const, agentId: id(i), seq: 1, at: Date.now() }))));
    },
    async run(ops, extra) {
      const batch = Math.min(AGENTS, Math.max(1, Math.round(extra.batch ?? 1)));
      for (let done = 0; done < ops; done += batch) {
        const agents = Array.from({ length: Math.min(batch, ops - done) }, () => k++ % AGENTS);
        const at = Date.now();
        const appends: StoreOp[] = agents.map((a) => ({ op: 'append', request: { agentId: id(a), messageId: message(), message: GO, at } }));
        const commits: StoreOp[] = agents.map((a) => ({
          op: 'commitTurn',
          commit: {
            retain: { keepTurns: 1_000 }, agentId: id(a), seq: heads[a]!, outcome: 'done', snapshot: snapshotOf(++counters[a]!), outputs: [], outbox: [], spawned: [],
            at, durationMs: 0, next: { seq: heads[a]! + 1, at },
          },
        }));
        ok(await store.batch!([...appends, ...commits]));
        for (const a of agents) heads[a]!++;
      }
      return {};
    },
    async check() {
      let pending = 0;
      for (let i = 0; i < AGENTS; i++) pending += await store.mailboxSize(id(i));
      if (pending !== AGENTS) throw new Error(`store turns: ${pending} pending, expected ${AGENTS}`);
      return {};
    },
    async close() {
      await store.close();
      await pool.end();
    },
  };
}

export const pgFactories = { pgAcceptsRuntime, pgAcceptsStore, pgAcceptsBare, pgTurnsRuntime, pgTurnsStore, pgTurnsBare } as const;
export type PgKind = keyof typeof pgFactories;

// --- processes ----------------------------------------------------------------------------

const root = fileURLToPath(new URL('..', import.meta.url));
const childPath = fileURLToPath(new URL('./postgresChild.ts', import.meta.url));

type Reply = { id?: number; ok?: boolean; error?: string; t?: string; [k: string]: unknown };

class Proc {
  readonly proc: ChildProcess;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  readonly events: Reply[] = [];
  #onEvent: (() => void)[] = [];
  readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    args: string[],
  ) {
    this.proc = fork(childPath, args, { cwd: root, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (r: Reply) => {
      if (r.id === undefined) {
        this.events.push(r);
        for (const f of this.#onEvent) f();
        return;
      }
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      if (r.ok) p.resolve(r);
      else p.reject(new Error(`${name}: ${r.error}`));
    });
    this.exit = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => {
        for (const p of this.#pending.values()) p.reject(new Error(`${name}: its process exited (${code ?? signal})`));
        this.#pending.clear();
        resolve();
      }),
    );
  }

  request(cmd: Record<string, unknown>): Promise<Reply> {
    const n = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(n, { resolve, reject });
      this.proc.send({ ...cmd, id: n });
    });
  }

  /** The first event of type `t` (waits for it, up to `ms`). */
  event(t: string, ms = 30_000): Promise<Reply> {
    const found = this.events.find((e) => e.t === t);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no "${t}" within ${ms} ms`)), ms);
      const check = () => {
        const e = this.events.find((x) => x.t === t);
        if (!e) return;
        clearTimeout(timer);
        this.#onEvent = this.#onEvent.filter((f) => f !== check);
        resolve(e);
      };
      this.#onEvent.push(check);
      void this.exit.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: exited before "${t}"`));
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}

const candidate = (kind: PgKind, arg: unknown) => new Proc(kind, ['candidate', kind, JSON.stringify(arg)]);
const member = (arg: MemberArg) => new Proc(`member ${arg.schema}`, ['member', JSON.stringify(arg)]);

// --- the database ---------------------------------------------------------------------------

let schemaCount = 0;
const created: string[] = [];
function freshSchema(): string {
  const s = `bench_pg_${process.pid}_${schemaCount++}`;
  created.push(s);
  return s;
}

async function dropSchemas(admin: pg.Pool): Promise<void> {
  for (const s of created.splice(0)) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
}

/** Live shards per owner (expires_at in the future), by the database's clock. */
async function owners(admin: pg.Pool, schema: string): Promise<Map<string, number>> {
  const { rows } = await admin.query<{ owner: string; n: number }>(
    `SELECT owner, count(*)::int AS n FROM "${schema}".shard_leases WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner`,
  );
  return new Map(rows.map((r) => [r.owner, r.n]));
}

/** Polls every `every` ms until `check` holds; the local time (wall ms) of the first poll that saw it. */
async function until(what: string, check: () => Promise<boolean> | boolean, boundMs = 60_000, every = 10): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return wallNow();
    if (performance.now() - start > boundMs) throw new Error(`gave up waiting for ${what} after ${boundMs} ms`);
    await new Promise<void>((r) => setTimeout(r, every));
  }
}

// --- 1 and 2: side by side ----------------------------------------------------------------

interface Row {
  name: string;
  times: number[];
  facts: Record<string, number>;
  extra: Record<string, number[]>;
}
const perSec = (r: Row, ops: number) => ops / (median(r.times) / 1e9);

type Profile = Awaited<ReturnType<typeof functionProfile>>;

async function measureAccepts(admin: pg.Pool, profile: boolean): Promise<{ rows: Row[]; profile: Profile }> {
  const rows: Row[] = [
    { name: 'runtime: `runtime.send`, 64 senders', times: [], facts: {}, extra: { batch: [] } },
    { name: 'the store alone: `postgresStore.batch` of the same appends, 1 call at a time', times: [], facts: {}, extra: {} },
    { name: 'bare pg: the same rows, as many per transaction, 1 transaction at a time', times: [], facts: {}, extra: {} },
  ];
  const storeSchema = freshSchema();
  const procs = [
    candidate('pgAcceptsRuntime', { url: PG_URL, schema: freshSchema() }),
    candidate('pgAcceptsStore', { url: PG_URL, schema: storeSchema, profile }),
    candidate('pgAcceptsBare', { url: PG_URL, schema: freshSchema() }),
  ] as const;
  try {
    for (const p of procs) await p.request({ cmd: 'setup' });
    for (let r = 0; r <= ROUNDS; r++) {
      const a = await procs[0].request({ cmd: 'run', ops: ACCEPT_OPS });
      const batch = (a.facts as Record<string, number>).meanBatch!;
      const b = await procs[1].request({ cmd: 'run', ops: ACCEPT_OPS, extra: { batch } });
      const c = await procs[2].request({ cmd: 'run', ops: ACCEPT_OPS, extra: { batch } });
      if (r === 0) continue; // warm-up
      rows[0]!.times.push(a.ns as number);
      rows[0]!.extra.batch!.push(batch);
      rows[1]!.times.push(b.ns as number);
      rows[2]!.times.push(c.ns as number);
    }
    for (const [i, p] of procs.entries()) rows[i]!.facts = (await p.request({ cmd: 'check' })).facts as Record<string, number>;
  } finally {
    await Promise.all(procs.map(async (p) => (await p.request({ cmd: 'close' }).catch(() => p.kill()), await p.exit)));
  }
  return { rows, profile: profile ? await functionProfile(admin, storeSchema) : [] };
}

async function measureTurns(admin: pg.Pool, profile: boolean): Promise<{ rows: Row[]; profile: Profile }> {
  const rows: Row[] = [
    { name: 'runtime, runningCap 64', times: [], facts: {}, extra: { batch: [] } },
    { name: 'the store alone: `postgresStore.batch` of the same ops (append + commitTurn with `next` per turn), 1 call at a time', times: [], facts: {}, extra: {} },
    { name: 'bare pg, fenced commits: lease rows FOR SHARE + snapshot update + message delete', times: [], facts: {}, extra: {} },
    { name: 'bare pg, fenced commits: every row a turn leaves (counters, message, snapshot, 4 rollout entries)', times: [], facts: {}, extra: {} },
  ];
  const storeSchema = freshSchema();
  const procs = [
    candidate('pgTurnsRuntime', { url: PG_URL, schema: freshSchema(), runningCap: 64 }),
    candidate('pgTurnsStore', { url: PG_URL, schema: storeSchema, profile }),
    candidate('pgTurnsBare', { url: PG_URL, schema: freshSchema(), shape: 'fence-only' }),
    candidate('pgTurnsBare', { url: PG_URL, schema: freshSchema(), shape: 'rows' }),
  ] as const;
  try {
    for (const p of procs) await p.request({ cmd: 'setup' });
    for (let r = 0; r <= ROUNDS; r++) {
      const a = await procs[0].request({ cmd: 'run', ops: TURN_OPS });
      const batch = (a.facts as Record<string, number>).turnsPerBatch!;
      const others = [];
      for (const p of procs.slice(1)) others.push(await p.request({ cmd: 'run', ops: TURN_OPS, extra: { batch } }));
      if (r === 0) continue;
      rows[0]!.times.push(a.ns as number);
      rows[0]!.extra.batch!.push(batch);
      others.forEach((o, i) => rows[i + 1]!.times.push(o.ns as number));
    }
    for (const [i, p] of procs.entries()) rows[i]!.facts = (await p.request({ cmd: 'check' })).facts as Record<string, number>;
  } finally {
    await Promise.all(procs.map(async (p) => (await p.request({ cmd: 'close' }).catch(() => p.kill()), await p.exit)));
  }
  return { rows, profile: profile ? await functionProfile(admin, storeSchema) : [] };
}

// --- 3: cross-process delivery --------------------------------------------------------------

interface Delivery {
  mode: string;
  messages: number;
  /** Messages per second from the first send to the last turn finished in B. */
  throughput: number;
  acceptPerSec: number;
  toStart: number[];
  toFinish: number[];
  accept: number[];
  late: number;
}

async function measureDelivery(
  admin: pg.Pool,
): Promise<{ runs: Delivery[]; trips: Record<string, number>; tripsB: Record<string, number>; sentTotal: number }> {
  const schema = freshSchema();
  const b = member({ url: PG_URL, schema, shards: SHARDS, leaseTtl: 10_000 });
  let runtime: Runtime | null = null;
  let pool: pg.Pool | null = null;
  try {
    const bReady = await b.event('ready');
    const bId = bReady.member as string;
    await until('B owns every shard', async () => (await owners(admin, schema)).get(bId) === SHARDS);
    pool = new pg.Pool({ connectionString: PG_URL, max: POOL_MAX });
    pool.on('error', () => {});
    const trips = countTrips(pool);
    const store = postgresStore({ pool, schema, shards: SHARDS, leaseTtl: 10_000 });
    runtime = await createRuntime({ agents: [deliveryAgent()], store, residentCap: 256, runningCap: 64 });
    const rtA = runtime;
    const aId = rtA.stats().cluster!.member!;
    await until('the shards split between A and B', async () => {
      const o = await owners(admin, schema);
      return o.get(aId) === SHARDS / 2 && o.get(bId) === SHARDS / 2;
    });
    const { rows } = await admin.query<{ shard: number }>(`SELECT shard FROM "${schema}".shard_leases WHERE owner = $1`, [bId]);
    const bShards = new Set(rows.map((r) => r.shard));
    const targets: string[] = [];
    for (let k = 0; targets.length < AGENTS; k++) if (bShards.has(shardOf(`x-${k}`, SHARDS))) targets.push(`x-${k}`);
    for (const t of targets) await rtA.spawn('d', { id: t });
    let i = 0;
    const count = async () => (await b.request({ cmd: 'count' })).count as number;
    const base = await count();
    await Promise.all(targets.map((t) => rtA.send(t, { type: 'go', i: -1 })));
    await until('warm-up turns in B', async () => (await count()) >= base + AGENTS, 30_000, 20);
    await b.request({ cmd: 'records' });

    const runs: Delivery[] = [];
    const before = copyTrips(trips);
    const beforeB = (await b.request({ cmd: 'trips' })).trips as Trips;
    let sentTotal = 0;
    const run = async (mode: string, messages: number, send: (sendAt: number[], accepted: number[]) => Promise<void>) => {
      const n0 = await count();
      const sendAt: number[] = [];
      const accepted: number[] = [];
      const t0 = wallNow();
      await send(sendAt, accepted);
      const tAccepted = wallNow();
      sentTotal += messages;
      let late = 0;
      try {
        await until(`${mode}: ${messages} turns in B`, async () => (await count()) >= n0 + messages, 30_000, 20);
      } catch {
        late = n0 + messages - (await count());
      }
      const recs = ((await b.request({ cmd: 'records' })).records as TurnRecord[]).filter((r) => r.i >= 0 && r.f > 0);
      const toStart = recs.map((r) => r.s - sendAt[r.i]!);
      const toFinish = recs.map((r) => r.f - sendAt[r.i]!);
      const last = Math.max(...recs.map((r) => r.f));
      runs.push({
        mode,
        messages,
        throughput: messages / ((last - t0) / 1000),
        acceptPerSec: messages / ((tAccepted - t0) / 1000),
        toStart,
        toFinish,
        accept: accepted,
        late,
      });
    };
    // Paced: one message every 10 ms round robin (each agent one every 640 ms): latency without queueing.
    await run('paced, 1 message every 10 ms', 300, async (sendAt, accepted) => {
      const waits: Promise<void>[] = [];
      for (let k = 0; k < 300; k++) {
        const n = i++;
        const t = wallNow();
        sendAt[n] = t;
        waits.push(rtA.send(targets[k % AGENTS]!, { type: 'go', i: n }).then(() => void accepted.push(wallNow() - t)));
        await new Promise<void>((r) => setTimeout(r, 10));
      }
      await Promise.all(waits);
    });
    // Burst: 64 senders (one per agent), each awaiting its send before the next.
    const BURST = 3_000;
    await run(`burst, 64 senders, ${fmt(BURST)} messages`, BURST, async (sendAt, accepted) => {
      const each = Math.ceil(BURST / AGENTS);
      let left = BURST;
      await Promise.all(
        targets.map(async (t) => {
          for (let k = 0; k < each && left > 0; k++) {
            left--;
            const n = i++;
            const s = wallNow();
            sendAt[n] = s;
            await rtA.send(t, { type: 'go', i: n });
            accepted.push(wallNow() - s);
          }
        }),
      );
    });
    const used: Trips = { n: {}, ms: {} };
    addDelta(used, trips, before);
    const usedB: Trips = { n: {}, ms: {} };
    addDelta(usedB, (await b.request({ cmd: 'trips' })).trips as Trips, beforeB);
    return { runs, trips: tripFacts(used, sentTotal), tripsB: tripFacts(usedB, sentTotal), sentTotal };
  } finally {
    await runtime?.stop().catch(() => {});
    await pool?.end().catch(() => {});
    await b.request({ cmd: 'stop' }).catch(() => b.kill());
    await b.exit;
  }
}

// --- 4 and 5: rebalance on join, takeover after SIGKILL --------------------------------------

interface Moves {
  leaseTtl: number;
  /** How long after the rebalance settled member 1 was killed. */
  offset: number;
  /** From the second member's createRuntime call until it held its fair share. */
  rebalance: number;
  /** From its process start (node + tsx) until then. */
  rebalanceFromSpawn: number;
  /** What was left of the killed member's leases at the kill (database clock). */
  leaseLeft: number;
  takeover: number;
}

async function measureMoves(admin: pg.Pool, leaseTtl: number, offset: number): Promise<Moves> {
  const schema = freshSchema();
  const arg = { url: PG_URL, schema, shards: SHARDS, leaseTtl };
  const m1 = member(arg);
  let m2: Proc | null = null;
  try {
    const id1 = (await m1.event('ready')).member as string;
    await until('the first member owns every shard', async () => (await owners(admin, schema)).get(id1) === SHARDS);
    // 64 agents resident in the first member: the handover drains the ones of the shards it gives up.
    await m1.request({ cmd: 'warm', ids: Array.from({ length: AGENTS }, (_, k) => `w-${k}`) });
    const spawnAt = wallNow();
    m2 = member(arg);
    const m2p = m2;
    const starting = (await m2p.event('starting')).at as number;
    const id2 = (await m2p.event('ready')).member as string;
    const fair = Math.floor(SHARDS / 2);
    const balanced = await until('the second member holds its fair share', async () => {
      const o = await owners(admin, schema);
      return o.get(id2) === fair && o.get(id1) === SHARDS - fair;
    });
    // The kill, `offset` ms later (somewhere in a heartbeat period): the first member's leases run out (renewed every leaseTtl/3 until now), then the second claims them.
    await new Promise<void>((r) => setTimeout(r, offset));
    const left = await admin.query<{ ms: number }>(
      `SELECT (extract(epoch FROM max(expires_at) - now()) * 1000)::float8 AS ms FROM "${schema}".shard_leases WHERE owner = $1`,
      [id1],
    );
    const killAt = wallNow();
    m1.kill('SIGKILL');
    const taken = await until('the survivor holds every shard', async () => (await owners(admin, schema)).get(id2) === SHARDS, 10 * leaseTtl + 30_000);
    return {
      leaseTtl,
      offset,
      rebalance: balanced - starting,
      rebalanceFromSpawn: balanced - spawnAt,
      leaseLeft: left.rows[0]!.ms,
      takeover: taken - killAt,
    };
  } finally {
    m1.kill('SIGKILL');
    await m1.exit;
    if (m2) {
      await m2.request({ cmd: 'stop' }).catch(() => m2!.kill());
      await m2.exit;
    }
  }
}

// --- NOTIFY round trip ------------------------------------------------------------------------

async function notifyRoundTrip(samples = 500): Promise<number[]> {
  const listener = new pg.Client({ connectionString: PG_URL });
  const sender = new pg.Client({ connectionString: PG_URL });
  await listener.connect();
  await sender.connect();
  const channel = `bench_pg_notify_${process.pid}`;
  await listener.query(`LISTEN ${channel}`);
  const out: number[] = [];
  try {
    for (let k = 0; k < samples + 20; k++) {
      const got = new Promise<void>((resolve) => listener.once('notification', () => resolve()));
      const t0 = performance.now();
      await sender.query('SELECT pg_notify($1, $2)', [channel, String(k)]);
      await got;
      if (k >= 20) out.push(performance.now() - t0);
    }
  } finally {
    await listener.end();
    await sender.end();
  }
  return out;
}

// --- the section -------------------------------------------------------------------------------

async function reachable(): Promise<string | null> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function benchPostgres(): Promise<string> {
  const why = await reachable();
  if (why !== null) return `## PostgreSQL scale-out\n\nNot measured: no PostgreSQL server at ${PG_URL} (${why}); set RESIDENCY_PG_URL.`;
  const load0 = os.loadavg();
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  admin.on('error', () => {});
  try {
    const version = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
    const profile = (await admin.query<{ su: boolean }>('SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user')).rows[0]?.su === true;
    const settings = (
      await admin.query<{ name: string; setting: string }>(
        "SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections', 'wal_sync_method') ORDER BY name",
      )
    ).rows;
    const t = performance.now();
    const accepts = await measureAccepts(admin, profile);
    await dropSchemas(admin);
    const turns = await measureTurns(admin, profile);
    await dropSchemas(admin);
    const delivery = await measureDelivery(admin);
    await dropSchemas(admin);
    const moves: Moves[] = [];
    // Killed at several points of a heartbeat period (leaseTtl/3): a quarter, half, three quarters in.
    for (const [ttl, part] of [[2_000, 0.25], [2_000, 0.5], [2_000, 0.75], [10_000, 0.25], [10_000, 0.75]] as const) {
      moves.push(await measureMoves(admin, ttl, Math.round((part * ttl) / 3)));
      await dropSchemas(admin);
    }
    const notify = await notifyRoundTrip();
    const seconds = (performance.now() - t) / 1000;
    const load1 = os.loadavg();
    return render({ version, settings, accepts, turns, delivery, moves, notify, load0, load1, seconds });
  } finally {
    await dropSchemas(admin).catch(() => {});
    await admin.end();
  }
}

// --- rendering ------------------------------------------------------------------------------------

const ms = (x: number, digits = 1) => `${fmt(x, digits)} ms`;
const ratio = (a: number, b: number) => `**${fmt(a / b, 2)}×**`;

function tripsText(facts: Record<string, number>, unit: string): string {
  const kinds = Object.keys(facts)
    .filter((k) => k.startsWith('rt.'))
    .map((k) => k.slice(3))
    .filter((k) => facts[`rt.${k}`]! >= 0.0005)
    .sort((a, b) => facts[`rt.${b}`]! - facts[`rt.${a}`]!);
  const total = kinds.reduce((s, k) => s + facts[`rt.${k}`]!, 0);
  const parts = kinds.map((k) => `\`${k}\` ${fmt(facts[`rt.${k}`]!, 3)} (${fmt(facts[`ms.${k}`]!, 3)} ms)`);
  return `${fmt(total, 2)} round trips per ${unit}: ${parts.join(', ')}`;
}

/**
 * Where the store-alone candidate's server time went, by PL/pgSQL function (self time per
 * call, and per `unit` over the `units` it wrote in all: setup, warm-up and rounds).
 */
function profileText(p: Profile, units: number, unit: string, store: Row): string[] {
  if (p.length === 0) return ['- (no function profile: the bench\'s role is not a superuser, which `track_functions` needs)'];
  const top = p.find((f) => f.name === 'apply_batch');
  const perUnit = (f: Profile[number]) => (f.selfUs * f.calls) / units;
  const parts = p
    .filter((f) => perUnit(f) >= 0.5)
    .map((f) => `\`${f.name}\` ${fmt(perUnit(f), 1)} µs (${fmt(f.calls / units, 2)} calls of ${fmt(f.selfUs, 1)} µs)`);
  return [
    `- where the store alone spends its time on the server (\`track_functions\`, self time per ${unit}, setup and warm-up included):`,
    `  ${top ? `\`apply_batch\` in all ${fmt((top.totalUs * top.calls) / units, 1)} µs of the ${fmt(1e6 / perSec(store, unit === 'turn' ? TURN_OPS : ACCEPT_OPS), 1)} µs per ${unit}: ` : ''}${parts.join(', ')}.`,
  ];
}

function render(m: {
  version: string;
  settings: { name: string; setting: string }[];
  accepts: { rows: Row[]; profile: Profile };
  turns: { rows: Row[]; profile: Profile };
  delivery: Awaited<ReturnType<typeof measureDelivery>>;
  moves: Moves[];
  notify: number[];
  load0: number[];
  load1: number[];
  seconds: number;
}): string {
  const la = (l: number[]) => l.map((x) => fmt(x, 2)).join(', ');
  const [aRt, aStore, aBare] = m.accepts.rows as [Row, Row, Row];
  const [tRt, tStore, tFence, tRows] = m.turns.rows as [Row, Row, Row, Row];
  const aRate = (r: Row) => perSec(r, ACCEPT_OPS);
  const tRate = (r: Row) => perSec(r, TURN_OPS);
  const batchA = median(aRt.extra.batch!);
  const batchT = median(tRt.extra.batch!);
  const c = tRt.facts;
  const ops = Object.keys(c)
    .filter((k) => k.startsWith('c.op.'))
    .map((k) => `\`${k.slice(5)}\` ${fmt(c[k]!, 2)}`)
    .join(', ');
  const table = (rows: Row[], rate: (r: Row) => number, unit: string) => [
    `| case | ${unit}/s | per ${unit.replace(/s$/, '')} | runtime / this |`,
    '| --- | ---: | ---: | ---: |',
    ...rows.map((r, i) => `| ${r.name} | ${fmt(rate(r))} | ${fmt(1e6 / rate(r), 1)} µs | ${i === 0 ? '1' : `**${fmt(rate(rows[0]!) / rate(r), 2)}×**`} |`),
  ];
  const dRow = (d: Delivery) =>
    `| ${d.mode} | ${fmt(d.throughput)} | ${fmt(d.acceptPerSec)} | ${fmt(percentile(d.accept, 50), 2)} / ${fmt(percentile(d.accept, 99), 2)} | ` +
    `${fmt(percentile(d.toStart, 50), 2)} / ${fmt(percentile(d.toStart, 99), 2)} / ${fmt(percentile(d.toStart, 100), 1)} | ` +
    `${fmt(percentile(d.toFinish, 50), 2)} / ${fmt(percentile(d.toFinish, 99), 2)} / ${fmt(percentile(d.toFinish, 100), 1)} |` +
    (d.late > 0 ? ` (${d.late} not handled within 30 s)` : '');
  const moveRow = (x: Moves) =>
    `| ${fmt(x.leaseTtl)} | ${fmt(x.offset)} | ${fmt(x.leaseLeft)} | **${fmt(x.takeover)}** | ${fmt(x.takeover / x.leaseTtl, 2)} | ${fmt(x.takeover - x.leaseLeft)} | **${fmt(x.rebalance)}** | ${fmt(x.rebalanceFromSpawn)} |`;
  return [
    '## PostgreSQL scale-out',
    '',
    `PostgreSQL ${m.version} on this machine (127.0.0.1; ${m.settings.map((s) => `${s.name}=${s.setting}`).join(', ')}), \`postgresStore\``,
    `(src/store/postgres/*) with ${SHARDS} shards; every measurement on a fresh schema of its own, dropped afterwards. The`,
    `side-by-side candidates (1, 2) each run in a process of their own (bench/postgresChild.ts), rounds alternating, medians of`,
    `${ROUNDS} rounds after a warm-up round; pools of ${POOL_MAX} connections. The server, the runtimes and the bare clients share ${os.cpus().length} cores.`,
    `Load average (1, 5, 15 min): ${la(m.load0)} at the start, ${la(m.load1)} at the end; the section took ${fmt(m.seconds)} s.`,
    'The runtimes count their statements to the server by kind (a wrapped `client.query` on their pool; in pg one',
    'statement is one round trip) and the time each kind took (summed over concurrent calls, pool waits excluded).',
    '',
    'Anchors measured earlier on this machine (issue 15), for context: a fenced one-row append through pg 1,621/s with one',
    'client, 2,438/s with 16 connections; 10 events per fenced commit 12,640/s; NOTIFY round trip p50 0.64 ms, p99 5.4 ms.',
    `NOTIFY round trip in this run (\`SELECT pg_notify\` on one connection until LISTEN on another gets it, ${fmt(m.notify.length)} samples):`,
    `p50 ${fmt(percentile(m.notify, 50), 2)} ms, p99 ${fmt(percentile(m.notify, 99), 2)} ms, max ${fmt(percentile(m.notify, 100), 2)} ms.`,
    '',
    '### 1. Durable accepts, one process',
    '',
    `${SENDERS} concurrent senders, each awaiting its \`runtime.send\` before the next (sender s to agent s; ${fmt(PREFILL_PER_AGENT)} messages`,
    `per agent stored before), ${fmt(ACCEPT_OPS)} messages a round; a blocker agent holds the only slot, so nothing but accepts`,
    'touches the store. The store alone: the same appends straight to `postgresStore.batch`, as many per call as the runtime\'s',
    `group commits had in its round just before (median ${fmt(batchA, 1)}), one call at a time (the runtime's write buffer has one`,
    'batch in flight). Bare pg: the same rows in a copy of the store\'s tables (same columns and indexes): the agent\'s',
    '`counters` row (seq, mailbox), the `messages` row, the `accepted` rollout entry, one set-based statement per transaction',
    '(autocommit, as the store\'s unfenced append), as many rows per transaction, one transaction at a time.',
    '',
    ...table([aRt, aStore, aBare], aRate, 'messages'),
    '',
    `- runtime / bare: ${ratio(aRate(aRt), aRate(aBare))}; runtime / store alone: ${ratio(aRate(aRt), aRate(aStore))}; store alone / bare: ${ratio(aRate(aStore), aRate(aBare))}.`,
    `- group commits: ${fmt(aRt.facts.meanBatch!, 1)} appends per \`store.batch\` (${fmt(aRt.facts.opsPerBatch!, 1)} ops) over the run.`,
    `- the runtime's ${tripsText(aRt.facts, 'message')}.`,
    ...profileText(m.accepts.profile, ACCEPT_OPS * (ROUNDS + 1) + PREFILL_PER_AGENT * AGENTS, 'message', aStore),
    '',
    '### 2. Durable turns, one process',
    '',
    `${AGENTS} resident agents of a trivial \`fromTurn\` logic (\`{ n: state.n + 1 }\`), ${fmt(TURN_OPS)} messages a round sent at once`,
    `(\`send\` without await, round robin), timed until the ${fmt(TURN_OPS)}th \`turn.finished\`; each turn is accepted, begun and`,
    `committed, fenced (the runtime owns all ${SHARDS} shards). The other candidates commit as many turns per transaction as the`,
    `runtime's \`store.batch\` calls had in its round just before (median ${fmt(batchT, 1)} turns per group commit), one transaction at`,
    'a time. The store alone (acquired: fenced) gets, per group, one `batch` of an append and a `commitTurn` with `next` per',
    'turn, the ops the runtime\'s group commits hold. Bare pg fences as the store does: BEGIN, the lease rows of the shards',
    'touched read `FOR SHARE` (owner and epoch checked), the writes in one statement, COMMIT (4 round trips; the store:',
    '`BEGIN; SET LOCAL …`, the fence, `apply_batch`, COMMIT). Its first shape is the issue\'s (the messages inserted before,',
    'untimed); the second writes every row a turn leaves in the store\'s tables, in their final state (fewer row versions than',
    'the store\'s insert, begin and commit).',
    '',
    ...table([tRt, tStore, tFence, tRows], tRate, 'turns'),
    '',
    `- runtime / bare fence-only: ${ratio(tRate(tRt), tRate(tFence))}; runtime / bare every row: ${ratio(tRate(tRt), tRate(tRows))}; runtime / store alone: ${ratio(tRate(tRt), tRate(tStore))}; store alone / bare every row: ${ratio(tRate(tStore), tRate(tRows))}.`,
    `- the runtime's group commits: ${fmt(1 / c['c.batches']!, 1)} turns per \`store.batch\` (${fmt(c['c.ops']! / c['c.batches']!, 1)} ops each); ops per turn: ${ops}.`,
    `- the runtime's ${tripsText(tRt.facts, 'turn')}.`,
    ...profileText(m.turns.profile, TURN_OPS * (ROUNDS + 1), 'turn', tStore),
    '',
    '### 3. Cross-process delivery',
    '',
    'Process B (bench/postgresChild.ts: a runtime, residentCap 1,024, runningCap 64) starts first and owns every shard; this',
    `process (A) opens a runtime on the same schema and joins, so each owns ${SHARDS / 2}. The ${AGENTS} target agents are agents of`,
    'shards B owns, spawned from A and warmed (resident in B) before. A\'s `runtime.send` to them is the non-owner path: a client',
    'write (`append`; its NOTIFY hint, when the mailbox was empty, in the same transaction), B woken by the hint. B notes when',
    'each turn function starts and when its `turn.finished` comes (after the commit), as `performance.timeOrigin +',
    'performance.now()`, against A\'s time just before its `send` (same machine). leaseTtl 10,000 ms (B polls for missed hints',
    'every 1,000 ms). Paced: 300 messages, one every 10 ms, round robin (each agent one every 640 ms). Burst: 3,000 messages from',
    '64 senders (one per agent), each awaiting its `send` before the next. Times in ms.',
    '',
    '| case | handled/s (first send → last turn finished in B) | accepted/s in A | accept p50 / p99 (A) | send → turn start p50 / p99 / max | send → turn finished p50 / p99 / max |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...m.delivery.runs.map(dRow),
    '',
    `- A's ${tripsText(m.delivery.trips, 'message')} (its own heartbeats and polls included).`,
    `- B's ${tripsText(m.delivery.tripsB, 'message')} (its own heartbeats and polls included).`,
    '',
    '### 4–5. Takeover after SIGKILL, rebalance on join',
    '',
    `Per row, on a fresh schema: member 1 (a child process) starts and owns all ${SHARDS} shards, ${AGENTS} agents resident in it;`,
    'member 2 starts. **Rebalance**: from member 2\'s `createRuntime` call (and from its process spawn, node + tsx included)',
    `until \`shard_leases\` shows ${SHARDS / 2} live shards for each (member 1 drains the agents of the shards it hands over; the`,
    'join and the release are announced by NOTIFY). Then, `offset` ms later (a point in a heartbeat period), member 1 is killed',
    `(SIGKILL). **Takeover**: until member 2 holds all ${SHARDS} (\`shard_leases\` polled every 10 ms). A member renews its leases every`,
    'leaseTtl/3; "lease left" is what was left of member 1\'s leases at the kill (the database\'s clock). Times in ms.',
    '',
    '| leaseTtl | offset | lease left | takeover | takeover / leaseTtl | takeover − lease left | rebalance (from createRuntime) | rebalance (from spawn) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...m.moves.map(moveRow),
  ].join('\n');
}
