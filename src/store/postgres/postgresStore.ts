/**
 * postgresStore: the shared durable store, on PostgreSQL (node-postgres, `pg`, an optional
 * peer dependency loaded lazily: pgDriver.ts). Several runtimes (processes) share one
 * agent population through it; it carries a `cluster` (src/store/Cluster.ts): ownership
 * per shard through leases (leases.ts), wake-up hints through NOTIFY, remote replies.
 *
 * The schema (schema.ts) lives in one PostgreSQL schema (option `schema`), migrated when the
 * store opens (the first call waits for it). Every write is a PL/pgSQL function of that
 * schema, so every write op is one statement: a single write method is one round trip
 * (in autocommit: one statement is one transaction), and a `batch` is one statement too
 * (`apply_batch`), which runs all its ops in one transaction and, when one of them fails on
 * its own, runs them again each in a subtransaction of its own (a savepoint), so the failed
 * op changes nothing and gets its error in its slot while the others are stored. Values are
 * serialized to JSON before (ops.ts) and stored as jsonb; reads parse them anew, so nothing
 * is ever shared with a caller.
 *
 * Client and owner writes (Cluster.ts). Before `acquire`, nothing is fenced. After it, the
 * owner writes of a call (beginTurn, commitTurn, note, fire) run in ONE statement,
 * `apply_fenced`, that first checks the leases of their shards (the lease rows read FOR
 * SHARE, compared with the epochs this member took them with, `Leases.expected`): an op on
 * a shard this member no longer holds gets a FencedError in its slot and is not run
 * (`Leases.fencedBy` drops the shard here); the others are. One statement: one round trip,
 * and no transaction open between round trips for a paused process to hold. Client writes (createAgent, append, destroyAgent, schedule,
 * cancel) are never fenced. The recovery and timer reads answer for the owned shards.
 *
 * Errors: a passing failure (the connection, a serialization failure, a deadlock, the
 * server shutting down) is a `StoreError` with `retryable: true`; see ops.ts. The pool has
 * an 'error' listener, and so has each connection while it is checked out: a connection
 * dropped while idle never crashes the process (the next call reconnects, or fails
 * retryable).
 *
 * Destroy (rule 5): the agent's counters row, timers, replies and snapshot go at once (the
 * agent is absent for every read and write), and up to PURGE_BATCH rows of its rollout and
 * messages; the rest goes in the background, a step per turn of the event loop, as
 * sqliteStore does (any member may run those steps: `FOR UPDATE SKIP LOCKED`).
 */

import type pg from 'pg';
import { FencedError, StoreError, StoreLockedError } from '../../errors.js';
import { assertIntegerAtLeast, describeValue } from '../../validate.js';
import { shardOf } from '../Cluster.js';
import type { ClusterEvent, StoreCluster, StoredReply } from '../Cluster.js';
import { checkOps, ownerOf } from '../common.js';
import type { AppendResult, CommitResult, CommitTurn, Store, StoreOp, StoreOpResult, StoreOwner } from '../Store.js';
import { Leases } from './leases.js';
import { failure, opError, prepareAppend, prepareOp, PURGE_BATCH, valueOf } from './ops.js';
import type { PreparedOp } from './ops.js';
import { pgDriver } from './pgDriver.js';
import type { PgDriver } from './pgDriver.js';
import { makeReads } from './reads.js';
import { channelOf, checkSchemaName, migrate } from './schema.js';

/**
 * A `pg` Pool, typed by what the store needs of it, so that the published types do not
 * depend on `@types/pg` (a `new pg.Pool(…)` fits).
 */
export interface PgPool {
  connect(): Promise<unknown>;
  query(...args: never[]): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  end(): Promise<void>;
}

export interface PostgresStoreOptions {
  /** The server to connect to (`postgres://user:password@host:5432/database`), when no `pool` is given. */
  connectionString?: string;
  /** A pool of your own (`new pg.Pool(…)`: its connections are used, and it is not ended by `close()`). */
  pool?: PgPool;
  /** The PostgreSQL schema that holds the store's tables (default `residency`). */
  schema?: string;
  /** How many shards agents hash to (default 256; fixed when the schema is made). */
  shards?: number;
  /** How long a shard's lease lasts without renewal, in ms (default 10 000). */
  leaseTtl?: number;
}

const DEFAULT_SCHEMA = 'residency';
const DEFAULT_SHARDS = 256;
const MAX_SHARDS = 65_536;
const DEFAULT_LEASE_TTL = 10_000;

/** The background deletion of each store (tests). */
const purges = new WeakMap<Store, () => Promise<void>>();
/** The leases of each store (tests). */
const leasesOf = new WeakMap<Store, Leases>();

/**
 * Opens the residency store in a PostgreSQL schema (created and migrated on first use).
 *
 * @example
 * const store = postgresStore({ connectionString: 'postgres://app@db/app', schema: 'residency' });
 * await store.acquire({ pid: process.pid, host: os.hostname(), since: Date.now() }); // joins the cluster
 */
/** Replies for members no longer live are swept every this many lease durations. */
const REPLY_SWEEP_TTLS = 6;

/** How often a read is tried when the connection fails (see `read`). */
const READ_ATTEMPTS = 5;

export function postgresStore(url: string | PostgresStoreOptions): Store {
  const options = optionsOf(url);
  const driver: PgDriver = pgDriver();
  const { schema, shards, leaseTtl } = options;
  const S = `"${schema}"`;
  const name = `The PostgreSQL store (schema "${schema}")`;
  const ownPool = options.pool === undefined;
  const pool: pg.Pool = options.pool ?? new driver.Pool({ connectionString: options.connectionString });
  const onPoolError = (): void => {
    // An idle connection dropped (the server restarted, a proxy closed it): the pool
    // removed it already, and the next call opens another.
  };
  pool.on('error', onPoolError);
  const leases = new Leases({
    pool,
    ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
    schema,
    shards,
    leaseTtl,
    channel: channelOf(schema),
  });
  const reads = makeReads(driver, S);

  let closed = false;
  /** The owner, once `acquire` resolved (or while it runs: `memberId` null). */
  let held: { owner: StoreOwner; epoch: number; memberId: string | null } | null = null;
  /** Set by `cluster.release()` after acquire: the member owns nothing any more. */
  let released = false;

  function checkOpen(): void {
    if (closed) throw new StoreError(`${name} is closed: open it again with postgresStore()`);
  }

  let ready: Promise<void> | null = null;
  /** The migration, once; a passing failure is tried again by the next call. */
  function prepared(): Promise<void> {
    if (ready === null) {
      const attempt = migrate(pool, schema, shards);
      ready = attempt;
      attempt.then(
        () => purge(),
        (error: unknown) => {
          if (error instanceof StoreError && error.retryable && ready === attempt) ready = null;
        },
      );
    }
    return ready;
  }
  prepared().catch(() => {});

  /** Checks the store is open and migrated. */
  async function opened(): Promise<void> {
    checkOpen();
    await prepared();
    checkOpen();
  }

  /** Runs `work` on a connection of the pool, which keeps an 'error' listener while it is out. */
  async function withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let dropped: unknown = null;
    const onError = (error: unknown): void => {
      dropped = error;
    };
    client.on('error', onError);
    let broken = false;
    try {
      return await work(client);
    } catch (error) {
      broken = dropped !== null || !('severity' in Object(error));
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken || dropped !== null ? true : undefined);
    }
  }

  /** The shards the recovery and timer reads answer for: the owned ones after acquire, else all (null). */
  function scope(): number[] | null {
    return held === null ? null : leases.owned();
  }

  /**
   * Runs the ops in ONE transaction (see the header): results in op order. An op that could
   * not be prepared (its Error) fails alone without running.
   */
  async function execute(action: string, ops: readonly (PreparedOp | Error)[]): Promise<StoreOpResult[]> {
    await opened();
    const results: (StoreOpResult | null)[] = ops.map((op) => (op instanceof Error ? { ok: false, error: op } : null));
    let live = ops.flatMap((op, i) => (op instanceof Error ? [] : [{ op, i }]));
    if (live.length === 0) return results as StoreOpResult[];
    if (released) {
      // After `cluster.release()` this member owns nothing: its owner writes are refused.
      live = live.filter(({ op, i }) => {
        if (op.owner === null) return true;
        results[i] = { ok: false, error: fencedError(op.owner.agentId, op.owner.shard, 'this member released its shards') };
        return false;
      });
      if (live.length === 0) return results as StoreOpResult[];
    }
    const fence = held?.memberId ? [...new Set(live.flatMap(({ op }) => (op.owner === null ? [] : [op.owner.shard])))] : [];
    const expected = fence.length > 0 ? leases.expected(fence) : null;
    try {
      await withClient(async (client) => {
        if (expected === null) {
          await run(client, live, results);
          return;
        }
        // Fenced in the same statement that writes (apply_fenced): one round trip, and no
        // transaction left open between statements (a paused process holds no lease row).
        const { rows } = await client.query<{ v: ({ ok: true; v: unknown } | { ok: false; c: string; m: string } | { ok: false; fenced: true })[] }>({
          name: `${schema}.apply_fenced`,
          text: `SELECT ${S}.apply_fenced($1::jsonb, $2::int[], $3::text, $4::int[], $5::bigint[]) AS v`,
          values: [`[${live.map(({ op }) => op.json).join(',')}]`, live.map(({ op }) => op.owner?.shard ?? -1), held!.memberId, expected.shards, expected.epochs],
        });
        const out = rows[0]!.v;
        const lost: number[] = [];
        live.forEach(({ op, i }, k) => {
          const r = out[k]!;
          if (r.ok) results[i] = { ok: true, value: valueOf(op, r.v) };
          else if ('fenced' in r) {
            lost.push(op.owner!.shard);
            results[i] = { ok: false, error: fencedError(op.owner!.agentId, op.owner!.shard) };
          } else results[i] = { ok: false, error: opError(r.c, r.m, op.action, name) };
        });
        if (lost.length > 0) leases.fencedBy(lost);
      });
    } catch (error) {
      throw failure(error, action, name);
    }
    if (live.some(({ op, i }) => op.op === 'destroyAgent' && results[i]?.ok && (results[i] as { value: unknown }).value === true)) {
      purge();
    }
    return results as StoreOpResult[];
  }

  function fencedError(agentId: string, shard: number, why?: string): FencedError {
    return new FencedError(
      agentId,
      `shard ${shard} of schema "${schema}" is no longer held by member ${held?.memberId ?? '?'}` +
        (why === undefined ? ' under the epoch it took it with' : `: ${why}`),
    );
  }

  /** The live ops on `client`: one through apply_one (its failure in its slot), several through apply_batch. */
  async function run(
    client: pg.ClientBase,
    live: readonly { op: PreparedOp; i: number }[],
    results: (StoreOpResult | null)[],
  ): Promise<void> {
    if (live.length === 1) {
      const { op, i } = live[0]!;
      try {
        const { rows } = await client.query<{ v: unknown }>({
          name: `${schema}.apply_one`,
          text: `SELECT ${S}.apply_one($1::jsonb) AS v`,
          values: [op.json],
        });
        results[i] = { ok: true, value: valueOf(op, rows[0]?.v ?? null) };
      } catch (error) {
        const mapped = failure(error, op.action, name);
        // A passing failure is the transaction's, not the op's.
        if (!(error as { severity?: unknown }).severity || (mapped instanceof StoreError && mapped.retryable)) throw error;
        results[i] = { ok: false, error: mapped };
      }
      return;
    }
    const { rows } = await client.query<{ v: ({ ok: true; v: unknown } | { ok: false; c: string; m: string })[] }>({
      name: `${schema}.apply_batch`,
      text: `SELECT ${S}.apply_batch($1::jsonb) AS v`,
      values: [`[${live.map(({ op }) => op.json).join(',')}]`],
    });
    const out = rows[0]!.v;
    live.forEach(({ op, i }, k) => {
      const r = out[k]!;
      results[i] = r.ok ? { ok: true, value: valueOf(op, r.v) } : { ok: false, error: opError(r.c, r.m, op.action, name) };
    });
  }

  /** A single write method: a batch of its one op, rejecting with that op's error. */
  async function runOne(op: PreparedOp): Promise<unknown> {
    const [result] = await execute(op.action, [op]);
    if (!result!.ok) throw result!.error;
    return result!.value;
  }

  /** Prepares an op for a single method: its preparation error rejects the call. */
  function one(op: StoreOp): PreparedOp {
    checkOpen();
    return prepareOp(op, shards, held?.memberId ?? null);
  }

  // --- background deletion of destroyed agents (rule 5) ---

  let purging: Promise<void> | null = null;
  let purgeBatch = PURGE_BATCH;

  /** Starts the background deletion unless it runs: one step per turn of the event loop, until none is left. */
  function purge(): void {
    if (closed || purging !== null) return;
    purging = new Promise<void>((resolve) => {
      const step = (): void => {
        if (closed) {
          purging = null;
          resolve();
          return;
        }
        pool
          .query<{ more: boolean }>(`SELECT ${S}.purge_step($1) AS more`, [purgeBatch])
          .then(
            ({ rows }) => rows[0]?.more === true,
            () => false,
          )
          .then((more) => {
            if (more && !closed) {
              setImmediate(step);
            } else {
              purging = null;
              resolve();
            }
          });
      };
      setImmediate(step);
    });
  }

  /**
   * A read, tried again (up to READ_ATTEMPTS times, 20 ms, 40 ms … apart) when the
   * connection dropped or the server was busy: a read changes nothing, so trying it again is
   * always safe, and a dropped connection (a restart, a failover, a terminated backend) must
   * not fail a turn or a load that only wanted to read.
   */
  /**
   * Answers nobody will take: those for members no longer live (an asker that died or
   * stopped before its answer came). Deleted at acquire and then every REPLY_SWEEP_TTLS
   * lease durations, by whichever members run (each sweep is one statement).
   */
  let sweeper: ReturnType<typeof setTimeout> | null = null;
  function sweepReplies(): void {
    if (closed) return;
    pool
      .query(`DELETE FROM ${S}.replies WHERE reply_to NOT IN (SELECT id FROM ${S}.members WHERE seen_at > now() - make_interval(secs => $1::float8 / 1000))`, [leaseTtl])
      .catch(() => {}) // the next sweep tries again
      .finally(() => {
        if (closed) return;
        sweeper = setTimeout(sweepReplies, leaseTtl * REPLY_SWEEP_TTLS);
        sweeper.unref();
      });
  }

  async function read<T>(action: string, work: () => Promise<T>): Promise<T> {
    await opened();
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        const mapped = failure(error, action, name);
        if (!(mapped instanceof StoreError && mapped.retryable) || attempt >= READ_ATTEMPTS || closed) throw mapped;
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 10 * 2 ** attempt));
    }
  }

  function checkShards(list: readonly number[]): number[] {
    if (!Array.isArray(list) || !list.every((s) => Number.isInteger(s) && s >= 0 && s < shards)) {
      throw new TypeError(`Expected \`shards\` to be an array of shard numbers (0 to ${shards - 1}), got ${describeValue(list)}`);
    }
    return [...list];
  }

  const cluster: StoreCluster = {
    shards,
    leaseTtl,
    shardOf: (agentId) => shardOf(agentId, shards),
    get memberId() {
      return held?.memberId ?? null;
    },
    owns: (agentId) => Boolean(held?.memberId) && leases.owns(shardOf(agentId, shards)),
    owned: () => (held?.memberId ? leases.owned() : []),
    subscribe: (listener: (event: ClusterEvent) => void) => leases.subscribe(listener),
    onHandover: (handler) => leases.onHandover(handler),
    inFlight: async (list) => {
      const scoped = checkShards(list);
      return read('list the turns in flight', () => reads.turnsInFlight(pool, scoped));
    },
    withPending: async (list) => {
      const scoped = checkShards(list);
      return read('list the agents with pending messages', () => reads.agentsWithPending(pool, scoped));
    },
    mailState: async (agentId) => read(`read the mailbox state of agent "${agentId}"`, () => reads.mailState(pool, agentId)),
    takeReply: async (agentId, seq) =>
      read(`take the reply of agent "${agentId}" for message #${seq}`, async () => {
        const { rows } = await pool.query<{ reply: StoredReply }>(`DELETE FROM ${S}.replies WHERE agent_id = $1 AND seq = $2 RETURNING reply`, [
          agentId,
          seq,
        ]);
        return rows[0]?.reply ?? null;
      }),
    release: async () => {
      await opened();
      if (held?.memberId) released = true;
      await leases.release();
    },
    view: async () => {
      await opened();
      return leases.view();
    },
  };

  const store: Store = {
    kind: 'postgres',
    cluster,

    async createAgent(record) {
      await runOne(one({ op: 'createAgent', record }));
    },
    async getAgent(id) {
      return read(`read agent "${id}"`, () => reads.getAgent(pool, id));
    },
    async getAgents(ids) {
      return read('read agents', () => reads.getAgents(pool, ids));
    },
    async listAgents(listOptions = {}) {
      return read('list agents', () => reads.listAgents(pool, listOptions));
    },
    async agentStats(ids) {
      return read('read the counters of agents', () => reads.agentStats(pool, ids));
    },
    async destroyAgent(id) {
      return (await runOne(one({ op: 'destroyAgent', id }))) as boolean;
    },
    async append(batch) {
      checkOpen();
      // One op for the whole array: every message is stored, or none (rule 1).
      if (batch.length === 0) {
        await opened();
        return [];
      }
      return (await runOne(prepareAppend(batch))) as AppendResult[];
    },
    async pending(agentId, limit = Number.POSITIVE_INFINITY) {
      reads.checkLimit(limit);
      return read(`read the mailbox of agent "${agentId}"`, () => reads.pending(pool, agentId, limit));
    },
    async mailboxSize(agentId) {
      return read(`count the mailbox of agent "${agentId}"`, () => reads.mailboxSize(pool, agentId));
    },
    async beginTurn(agentId, seq, at) {
      await runOne(one({ op: 'beginTurn', agentId, seq, at }));
    },
    async commitTurn(commit: CommitTurn): Promise<CommitResult> {
      return (await runOne(one({ op: 'commitTurn', commit }))) as CommitResult;
    },
    async loadSnapshot(agentId) {
      return read(`read the snapshot of agent "${agentId}"`, () => reads.loadSnapshot(pool, agentId));
    },
    async note(agentId, entry) {
      await runOne(one({ op: 'note', agentId, entry }));
    },
    async rollout(agentId, rolloutOptions = {}) {
      reads.checkLimit(rolloutOptions.limit ?? Number.POSITIVE_INFINITY);
      return read(`read the rollout of agent "${agentId}"`, () => reads.rollout(pool, agentId, rolloutOptions.limit));
    },
    async agentsWithPending() {
      return read('list the agents with pending messages', () => reads.agentsWithPending(pool, scope()));
    },
    async turnsInFlight() {
      return read('list the turns in flight', () => reads.turnsInFlight(pool, scope()));
    },
    async dueTimers(now, limit) {
      reads.checkDue(now, limit);
      return read('read the due timers', () => reads.dueTimers(pool, now, limit, scope()));
    },
    async nextDeadline() {
      return read('read the next deadline', () => reads.nextDeadline(pool, scope()));
    },
    async timers(agentId, limit = Number.POSITIVE_INFINITY) {
      reads.checkLimit(limit);
      return read(`read the timers of agent "${agentId}"`, () => reads.timers(pool, agentId, limit));
    },

    async batch(ops) {
      checkOpen();
      const action = `write a batch of ${Array.isArray(ops) ? ops.length : 0} operations`;
      checkOps(ops);
      // Every value is serialized before the transaction starts; one that cannot be stored
      // fails its own op only.
      const prepared = ops.map((op): PreparedOp | Error => {
        try {
          return prepareOp(op, shards, held?.memberId ?? null);
        } catch (error) {
          return error instanceof Error ? error : new StoreError(String(error));
        }
      });
      if (prepared.length === 0) {
        await opened();
        return [];
      }
      return execute(action, prepared);
    },

    async acquire(who) {
      checkOpen();
      const owner = ownerOf(who);
      if (held !== null) throw new StoreLockedError(name, { ...held.owner });
      const claim = { owner, epoch: 0, memberId: null as string | null };
      held = claim;
      try {
        await opened();
        const { rows } = await pool
          .query<{ epoch: string }>(`SELECT nextval('${S}.epochs')::text AS epoch`)
          .catch((error: unknown) => {
            throw failure(error, 'take an owner epoch', name);
          });
        const epoch = Number(rows[0]!.epoch);
        const memberId = epoch.toString(36);
        await leases.join(memberId, owner);
        claim.epoch = epoch;
        claim.memberId = memberId;
        sweepReplies();
        return { epoch };
      } catch (error) {
        if (held === claim) held = null;
        throw error;
      }
    },

    async close() {
      checkOpen();
      closed = true;
      if (sweeper !== null) clearTimeout(sweeper);
      pool.removeListener('error', onPoolError);
      try {
        await ready?.catch(() => {});
        await purging;
        await leases.close();
      } finally {
        held = null;
        if (ownPool) {
          // Errors of connections dropped while the pool ends are of no use to anyone.
          pool.on('error', () => {});
          await pool.end().catch(() => {});
        }
      }
    },
  };
  purges.set(store, () => purging ?? Promise.resolve());
  leasesOf.set(store, leases);
  // Tests may set a smaller purge batch (see setPostgresPurgeBatch).
  batchSetters.set(store, (rows) => {
    purgeBatch = rows;
  });
  return store;
}

const batchSetters = new WeakMap<Store, (rows: number) => void>();

/**
 * Resolves once the background deletion of destroyed agents' rows has nothing left to do,
 * or stopped; at once when none runs.
 *
 * @internal For tests.
 */
export function postgresPurged(store: Store): Promise<void> {
  return purges.get(store)?.() ?? Promise.resolve();
}

/** @internal For tests: sets the rows of each table a background step deletes. */
export function setPostgresPurgeBatch(store: Store, rows: number): void {
  batchSetters.get(store)?.(Math.max(1, Math.trunc(rows)));
}

/** @internal For tests: the store's leases. */
export function postgresLeases(store: Store): Leases | undefined {
  return leasesOf.get(store);
}

/** Checks the options (a `TypeError` for a bad one) and fills in the defaults. */
function optionsOf(url: string | PostgresStoreOptions): {
  connectionString?: string;
  pool?: pg.Pool;
  schema: string;
  shards: number;
  leaseTtl: number;
} {
  const options: PostgresStoreOptions = typeof url === 'string' ? { connectionString: url } : url;
  if (options === null || typeof options !== 'object') {
    throw new TypeError(
      `Expected a connection string or { connectionString?, pool?, schema?, shards?, leaseTtl? }, got ${describeValue(url)}`,
    );
  }
  const { connectionString, pool, schema = DEFAULT_SCHEMA, shards = DEFAULT_SHARDS, leaseTtl = DEFAULT_LEASE_TTL } = options;
  if (connectionString !== undefined && (typeof connectionString !== 'string' || connectionString === '')) {
    throw new TypeError(`Expected \`connectionString\` to be a non-empty string, got ${describeValue(connectionString)}`);
  }
  if (pool !== undefined && (pool === null || typeof pool !== 'object' || typeof (pool as { connect?: unknown }).connect !== 'function')) {
    throw new TypeError(`Expected \`pool\` to be a pg.Pool, got ${describeValue(pool)}`);
  }
  if (connectionString === undefined && pool === undefined) {
    throw new TypeError('Expected `connectionString` or `pool`: postgresStore needs to know which server to use');
  }
  checkSchemaName(schema);
  assertIntegerAtLeast(shards, 'shards', 1);
  if (shards > MAX_SHARDS) throw new TypeError(`Expected \`shards\` to be an integer from 1 to ${MAX_SHARDS}, got ${describeValue(shards)}`);
  assertIntegerAtLeast(leaseTtl, 'leaseTtl', 100);
  return {
    ...(connectionString === undefined ? {} : { connectionString }),
    ...(pool === undefined ? {} : { pool: pool as unknown as pg.Pool }),
    schema,
    shards,
    leaseTtl,
  };
}
