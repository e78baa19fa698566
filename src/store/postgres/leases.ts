/**
 * Shard leases and membership for postgresStore (the contract: src/store/Cluster.ts).
 *
 * Tables (in the store's schema, `createLeaseTables`): `shard_leases`, one row per shard
 * (owner, epoch, expires_at, moves), and `members`, one row per live member (its
 * StoreOwner and `seen_at`). Every time is the DATABASE's clock (`now()`): the clocks of
 * the processes never matter to who owns what.
 *
 * A member (`join`) registers its row, claims its fair share of the free or expired shards
 * in one statement (`FOR UPDATE SKIP LOCKED`: two members claiming at once never get the
 * same shard), each claim bumping the shard's epoch (the fencing token), and emits
 * 'gained'. Then a heartbeat, every leaseTtl/3, renews all of its leases and its member row
 * in one statement (one round trip, O(shards) rows, never per agent): a shard whose row no
 * longer carries this member and the epoch it took it with is 'lost' ('taken').
 *
 * Local safety. Each shard's local validity ends at (local monotonic time when the last
 * successful renewal or claim STARTED) + leaseTtl − margin: the database cannot expire the
 * lease before that, since its `now()` was read after the start. Past it, `owns` is false
 * and 'lost' ('expired') is emitted, so the member stops starting turns before another may
 * take over; a later successful heartbeat claims again whatever is still free (new epochs,
 * 'gained'). Writes never rely on that alone: `fenced`, inside the write's transaction,
 * reads the lease rows `FOR SHARE` and refuses shards not held under this member's epoch.
 * Every statement here that waits for lease row locks takes them in shard order (renewal,
 * release, fence), so a heartbeat and a writer checking its fence never deadlock: a write
 * transaction must call `fenced` once, with all its shards, before anything else that could
 * wait on this member (claims skip locked rows and never wait).
 *
 * Rebalancing, on each heartbeat: live members are those seen within the ttl; each one's
 * fair share is floor(shards / live), the remainder going to the lowest ids (in code-unit
 * order, so every member computes the same). A member under its share claims free shards
 * up to it; a member over it (one joined) gives its highest shards away: it awaits the
 * `onHandover` handler (which finishes their turns and evicts their agents), then releases
 * them (owner null, expires_at now()), emits 'lost' ('taken') for them, and notifies
 * `{"t":"released"}` so the others claim at once instead of at their next heartbeat.
 *
 * Takeover on time. The heartbeat also reads, per other owner, how long its earliest lease
 * has left and how long each live member stays live unless it heartbeats again (both
 * relative to the statement's `now()`, so no process clock is involved). A member and its
 * leases are renewed in one statement, so a member that stopped heartbeating stops being
 * live when its leases expire. If, with the members still live at such an expiry, this
 * member would be under its share, it runs a heartbeat 15 ms (CLAIM_MARGIN_MS) after that
 * expiry (counted from when the answer arrived, so never before it on the database's clock)
 * instead of up to one heartbeat period later. That heartbeat is an ordinary one: it reads
 * membership anew and claims only rows expired by the database's `now()`, skipping locked
 * ones, in shard order; whatever the timer was armed on only decides when it runs. Each
 * heartbeat replaces the timer, so while every owner renews on time (its leases have more
 * than a heartbeat period left) it never fires; and a member resumed after a stop (SIGSTOP)
 * whose timer fires late just runs a heartbeat.
 *
 * Hints. A dedicated connection (not from the pool) LISTENs on `channel` and turns the
 * store's notifications into events: `{"t":"mail","s":shard,"a":agentId}` → 'mail' and
 * `{"t":"destroyed","s","a"}` → 'destroyed' when this member owns the shard,
 * `{"t":"reply","m":member,"a","q":seq}` → 'reply' when m is this member. The members'
 * own payloads, `{"t":"released","m":member}` and `{"t":"joined","m":member}`, make the
 * others run a heartbeat now. Anything else is ignored. A dropped connection reconnects
 * with a backoff (100 ms doubling to 5 s); lost hints are made up for by the runtime's
 * polling. No connection failure ever surfaces as an unhandled 'error'.
 */

import type pg from 'pg';
import type { ClusterEvent, ClusterMember, ClusterView } from '../Cluster.js';
import type { StoreOwner } from '../Store.js';
import { StoreError } from '../../errors.js';

/** `"name"`, for SQL (the names are validated by the caller; this also escapes quotes). */
/**
 * The fence, defined once: an SQL expression for the shards among `shards` (an int[]) that
 * `member` no longer holds under the epochs it took them with (`epochs`, a bigint[] in the
 * same order; -1 for a shard it does not hold), as an int[]. The lease rows are read FOR
 * SHARE in shard order (no takeover commits before the statement does; the order keeps it
 * from deadlocking with heartbeats and releases). `Leases.fenced` runs it; postgresStore's
 * `apply_fenced` embeds it, checking and writing in one statement. `s`: the quoted schema.
 */
export function fencedShardsSql(s: string, member: string, shards: string, epochs: string): string {
  return `(SELECT coalesce(array_agg(h.shard ORDER BY h.shard), '{}'::int[])
      FROM unnest(${shards}, ${epochs}) AS h(shard, epoch)
      LEFT JOIN (SELECT l.shard, l.owner, l.epoch FROM ${s}.shard_leases l WHERE l.shard = ANY(${shards}) ORDER BY l.shard FOR SHARE) l
        ON l.shard = h.shard
      WHERE l.shard IS NULL OR l.owner IS DISTINCT FROM ${member} OR l.epoch <> h.epoch)`;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Creates the lease tables when missing, with one row per shard (idempotent; safe inside
 * the migration's transaction). Refuses a schema whose lease table has another number of
 * shards than `shards` (the shard of an agent depends on it).
 */
export async function createLeaseTables(client: pg.ClientBase, schema: string, shards: number): Promise<void> {
  if (!Number.isInteger(shards) || shards < 1) {
    throw new TypeError(`Expected \`shards\` to be an integer ≥ 1, got \`${String(shards)}\` (${typeof shards})`);
  }
  const s = ident(schema);
  await client.query(`create schema if not exists ${s}`);
  await client.query(
    `create table if not exists ${s}.shard_leases (
       shard int primary key,
       owner text null,
       epoch bigint not null default 0,
       expires_at timestamptz null,
       moves bigint not null default 0
     )`,
  );
  await client.query(
    `create table if not exists ${s}.members (
       id text primary key,
       pid int,
       host text,
       since double precision,
       seen_at timestamptz
     )`,
  );
  const { rows } = await client.query<{ n: number }>(`select count(*)::int as n from ${s}.shard_leases`);
  const existing = rows[0]?.n ?? 0;
  if (existing !== 0 && existing !== shards) {
    throw new StoreError(
      `The schema "${schema}" was made with ${existing} shards, not ${shards}: pass { shards: ${existing} } ` +
        '(the shard of an agent depends on it), or use another schema',
    );
  }
  if (existing === 0) {
    await client.query(
      `insert into ${s}.shard_leases (shard) select g from generate_series(0, $1::int - 1) as g on conflict (shard) do nothing`,
      [shards],
    );
  }
}

export interface LeasesOptions {
  pool: pg.Pool;
  /** For the LISTEN connection; the pool's own settings when absent. */
  connectionString?: string;
  schema: string;
  shards: number;
  /** The lease duration in ms. */
  leaseTtl: number;
  /** The NOTIFY channel of the store's hints: `${schema}_wake`. */
  channel: string;
  /**
   * Where failures that have no caller go (a heartbeat that could not reach the database, a
   * handover handler or an event listener that threw, a LISTEN connection that dropped).
   * Default: handover and listener failures are written with `console.error`, connection
   * failures are not reported (they are retried).
   */
  onError?: (error: unknown, context: string) => void;
  /** How long a handover handler may run before its shards are released anyway (ms; default max(30 s, 10 × leaseTtl)). */
  handoverTimeout?: number;
  /**
   * @internal Tests: 'manual' starts no heartbeat timer (the test calls `tick()`), and
   * notifications do not trigger heartbeats either.
   */
  heartbeat?: 'auto' | 'manual';
}

interface Held {
  epoch: number;
  /** Local validity (performance.now() ms): start of the last renewal or claim + ttl − margin. */
  until: number;
}

type PgClientCtor = new (config: unknown) => pg.Client;

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** How long after another member's lease expires (database clock) the claim heartbeat runs (ms). */
const CLAIM_MARGIN_MS = 15;

/** One member's leases on the shards of a shared store, and its membership. */
export class Leases {
  readonly shards: number;
  readonly leaseTtl: number;
  /** How long before the database's expiry this member stops owning (ms). */
  readonly margin: number;
  /** The heartbeat period (ms). */
  readonly interval: number;
  /**
   * How long a handover handler may take before the shards are released anyway (ms): the
   * runtime's writes to them are then fenced, and 'lost' tells it to drop their agents.
   */
  readonly handoverTimeout: number;

  readonly #pool: pg.Pool;
  readonly #channel: string;
  readonly #clientConfig: Record<string, unknown>;
  readonly #Client: PgClientCtor;
  readonly #onError: ((error: unknown, context: string) => void) | undefined;
  readonly #manual: boolean;
  readonly #sql: ReturnType<typeof statements>;

  #memberId: string | null = null;
  #owner: StoreOwner | null = null;
  /** join resolved, and neither release nor close since. */
  #active = false;
  #closed = false;
  #closing: Promise<void> | null = null;

  readonly #held = new Map<number, Held>();
  #listeners: ((e: ClusterEvent) => void)[] = [];
  #handover: ((shards: number[]) => Promise<void>) | null = null;
  #handingOver: Promise<void> | null = null;

  /** Serializes the lease statements of this member (heartbeat, claim, release). */
  #chain: Promise<void> = Promise.resolve();
  #kickQueued = false;
  #beatTimer: NodeJS.Timeout | null = null;
  #deadlineTimer: NodeJS.Timeout | null = null;
  #deadlineAt = Infinity;
  /** A heartbeat just after another member's lease expires, when this member would then claim. */
  #claimTimer: NodeJS.Timeout | null = null;

  #listen: pg.Client | null = null;
  #listenBackoff = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | null = null;

  /** @internal Tests: heartbeats are skipped while true (the member looks dead). */
  paused = false;
  /** @internal Tests: when set, called before each heartbeat and claim statement (throw to fail it). */
  beforeQuery: ((what: 'heartbeat' | 'claim') => void) | null = null;

  constructor(options: LeasesOptions) {
    const { pool, schema, shards, leaseTtl, channel } = options;
    if (!Number.isInteger(shards) || shards < 1) {
      throw new TypeError(`Expected \`shards\` to be an integer ≥ 1, got \`${String(shards)}\` (${typeof shards})`);
    }
    if (!Number.isFinite(leaseTtl) || leaseTtl < 50) {
      throw new TypeError(`Expected \`leaseTtl\` to be a number of ms ≥ 50, got \`${String(leaseTtl)}\` (${typeof leaseTtl})`);
    }
    this.#pool = pool;
    this.shards = shards;
    this.leaseTtl = Math.round(leaseTtl);
    this.margin = Math.max(this.leaseTtl / 5, Math.min(200, this.leaseTtl / 4));
    this.interval = this.leaseTtl / 3;
    this.handoverTimeout = options.handoverTimeout ?? Math.max(30_000, 10 * this.leaseTtl);
    this.#channel = channel;
    this.#onError = options.onError;
    this.#manual = options.heartbeat === 'manual';
    this.#sql = statements(ident(schema), this.leaseTtl);
    const poolInternals = pool as unknown as { Client?: PgClientCtor; options?: Record<string, unknown> };
    if (typeof poolInternals.Client !== 'function') {
      throw new TypeError('Expected `pool` to be a pg.Pool (it has no Client class for the LISTEN connection)');
    }
    this.#Client = poolInternals.Client;
    this.#clientConfig =
      options.connectionString !== undefined ? { connectionString: options.connectionString } : { ...poolInternals.options };
  }

  /** This member's id once joined; null before. */
  get memberId(): string | null {
    return this.#memberId;
  }

  /**
   * Registers the member, claims its fair share of the free or expired shards (all of
   * them when it is alone) and emits 'gained' for them before resolving, then starts the
   * heartbeat and the LISTEN connection.
   */
  async join(memberId: string, owner: StoreOwner): Promise<void> {
    if (typeof memberId !== 'string' || memberId === '') {
      throw new TypeError(`Expected \`memberId\` to be a non-empty string, got \`${String(memberId)}\``);
    }
    if (this.#closed) throw new StoreError('Cannot join the cluster: the leases were closed');
    if (this.#memberId !== null) throw new StoreError(`This store already joined the cluster as member "${this.#memberId}"`);
    this.#memberId = memberId;
    this.#owner = owner;
    try {
      await this.#connectListen(true);
      await this.#serial(async () => {
        this.#active = true;
        await this.#beat(true);
      });
    } catch (cause) {
      this.#active = false;
      this.#stopListen();
      await this.#pool.query(this.#sql.leave, [memberId, this.#channel, '']).catch(() => {});
      this.#memberId = null;
      this.#owner = null;
      throw cause instanceof StoreError
        ? cause
        : new StoreError(`Could not join the cluster as member "${memberId}": ${describe(cause)}`, { cause, retryable: true });
    }
    if (this.owned().length < this.#shareGuess) void this.#notify({ t: 'joined', m: memberId });
    if (!this.#manual) this.#scheduleBeat();
  }

  /** Held, not lost, and not past its local expiry. */
  owns(shard: number): boolean {
    if (!this.#active) return false;
    const h = this.#held.get(shard);
    return h !== undefined && performance.now() < h.until;
  }

  /** The shards this member owns now, ascending. */
  owned(): number[] {
    if (!this.#active) return [];
    const now = performance.now();
    const out: number[] = [];
    for (const [shard, h] of this.#held) if (now < h.until) out.push(shard);
    return out.sort((a, b) => a - b);
  }

  /**
   * Inside the caller's write transaction on `client`: reads the lease rows of `shards`
   * FOR SHARE (no takeover commits before the transaction ends) and returns those NOT held
   * by this member under the epoch it took them with. Those it held are dropped and
   * reported 'lost' ('fenced'). Before join, or after release or close: an empty set (an
   * unowned store writes unfenced).
   */
  async fenced(client: pg.ClientBase, shards: readonly number[]): Promise<Set<number>> {
    const expected = this.expected(shards);
    if (expected === null || expected.shards.length === 0) return new Set();
    const { rows } = await client.query<{ fenced: number[] }>(this.#sql.fence, [this.#memberId, expected.shards, expected.epochs]);
    const out = rows[0]?.fenced ?? [];
    this.fencedBy(out);
    return new Set(out);
  }

  /**
   * The epochs this member holds for these shards (-1 for one it does not hold), for a fence
   * the database checks itself in the write's own statement (`apply_fenced`); `null` before
   * join and after close (an unowned store writes unfenced).
   */
  expected(shards: readonly number[]): { shards: number[]; epochs: number[] } | null {
    if (!this.#active) return null;
    const wanted = [...new Set(shards)].sort((a, b) => a - b);
    return { shards: wanted, epochs: wanted.map((s) => this.#held.get(s)?.epoch ?? -1) };
  }

  /** Shards a fence checked in the database found held by another member or epoch: dropped here ('lost', 'fenced'). */
  fencedBy(shards: readonly number[]): void {
    const lost: number[] = [];
    for (const shard of new Set(shards)) {
      if (!this.#held.has(shard)) continue;
      this.#held.delete(shard);
      lost.push(shard);
    }
    if (lost.length > 0) this.#emit({ type: 'lost', shards: lost.sort((a, b) => a - b), reason: 'fenced' });
  }

  subscribe(listener: (e: ClusterEvent) => void): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  onHandover(handler: (shards: number[]) => Promise<void>): void {
    this.#handover = handler;
  }

  /**
   * Hands every owned shard over now (a graceful stop, after the runtime flushed its
   * agents): they are dropped ('lost', reason 'taken'), released in the database (owner
   * null, expires_at now()) with this member's row, and `{"t":"released"}` is notified so
   * the others claim them at once. The member claims nothing afterwards.
   */
  async release(): Promise<void> {
    if (!this.#active) return;
    this.#active = false;
    this.#clearTimer('beat');
    this.#clearTimer('deadline');
    this.#clearTimer('claim');
    await this.#serial(async () => {
      const dropped = [...this.#held.keys()].sort((a, b) => a - b);
      this.#held.clear();
      if (dropped.length > 0) this.#emit({ type: 'lost', shards: dropped, reason: 'taken' });
      await this.#pool.query(this.#sql.leave, [this.#memberId, this.#channel, this.#payload('released')]);
    });
  }

  /** Live members, shard owners and moves. */
  async view(): Promise<ClusterView> {
    const [members, totals] = await Promise.all([
      this.#pool.query<{ id: string; pid: number; host: string; since: number; seen_at: number; shards: number }>(
        this.#sql.viewMembers,
      ),
      this.#pool.query<{ unowned: number; moves: string }>(this.#sql.viewTotals),
    ]);
    return {
      shards: this.shards,
      members: members.rows.map(
        (r): ClusterMember => ({
          id: r.id,
          owner: { pid: r.pid, host: r.host, since: r.since },
          shards: r.shards,
          seenAt: r.seen_at,
        }),
      ),
      unowned: totals.rows[0]?.unowned ?? this.shards,
      moves: Number(totals.rows[0]?.moves ?? 0),
    };
  }

  /** Releases, stops the heartbeat and the LISTEN connection, deletes the member row. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        if (this.#active) await this.release();
        else if (this.#memberId !== null) {
          await this.#serial(() => this.#pool.query(this.#sql.leave, [this.#memberId, this.#channel, '']).then(() => {}));
        }
      } catch (error) {
        // The leases expire after their ttl anyway.
        this.#report(error, 'close: release', true);
      } finally {
        this.#closed = true;
        this.#active = false;
        this.#held.clear();
        this.#clearTimer('beat');
        this.#clearTimer('deadline');
        this.#clearTimer('claim');
        this.#stopListen();
      }
    })();
    return this.#closing;
  }

  // --- test hooks ---

  /** @internal Runs one heartbeat now (renewal, membership, rebalancing), as the timer would. */
  tick(): Promise<void> {
    return this.#serial(() => this.#beat(false));
  }

  /** @internal The epoch this member holds a shard under (locally), or null. */
  epochOf(shard: number): number | null {
    return this.#held.get(shard)?.epoch ?? null;
  }

  /** @internal Resolves when no lease statement and no handover is running. */
  async settled(): Promise<void> {
    for (;;) {
      const chain = this.#chain;
      const handover = this.#handingOver;
      await chain;
      if (handover) await handover;
      if (chain === this.#chain && handover === this.#handingOver) return;
    }
  }

  /** @internal The backend pid of the LISTEN connection, or null while disconnected. */
  listenPid(): number | null {
    const pid = (this.#listen as unknown as { processID?: number } | null)?.processID;
    return typeof pid === 'number' ? pid : null;
  }

  // --- heartbeat ---

  /** The fair share computed at the last heartbeat. */
  #shareGuess = 0;

  /** One heartbeat, inside the chain: renew, read membership, rebalance. */
  async #beat(joining: boolean): Promise<void> {
    if (!this.#active || (this.paused && !joining)) return;
    const me = this.#memberId!;
    const owner = this.#owner!;
    const sent = [...this.#held].map(([shard, h]) => ({ shard, epoch: h.epoch }));
    const start = performance.now();
    this.beforeQuery?.('heartbeat');
    const { rows } = await this.#pool.query<{
      k: 'r' | 'm' | 'x' | 'f';
      shard: number | null;
      epoch: string | null;
      id: string | null;
      ms: number | null;
    }>({
      text: this.#sql.heartbeat,
      values: [me, sent.map((s) => s.shard), sent.map((s) => s.epoch), owner.pid, owner.host, owner.since],
      query_timeout: this.leaseTtl,
    } as pg.QueryConfig);
    const answeredAt = performance.now();
    if (!this.#active) return;
    const renewed = new Map<number, number>();
    const live = [me];
    /** ms each other live member stays live without another heartbeat. */
    const liveFor = new Map<string, number>();
    /** ms until the earliest unexpired lease of each other owner expires. */
    const expiries: number[] = [];
    let free = 0;
    for (const r of rows) {
      if (r.k === 'r') renewed.set(r.shard!, Number(r.epoch));
      else if (r.k === 'm') {
        live.push(r.id!);
        liveFor.set(r.id!, r.ms!);
      } else if (r.k === 'x') expiries.push(r.ms!);
      else free = r.shard ?? 0;
    }
    const taken: number[] = [];
    for (const { shard, epoch } of sent) {
      const h = this.#held.get(shard);
      if (h === undefined || h.epoch !== epoch) continue; // dropped (fenced, expired) meanwhile
      if (renewed.get(shard) === epoch) h.until = start + this.leaseTtl - this.margin;
      else {
        this.#held.delete(shard);
        taken.push(shard);
      }
    }
    this.#armDeadline();
    if (taken.length > 0) this.#emit({ type: 'lost', shards: taken.sort((a, b) => a - b), reason: 'taken' });

    // Rebalance: the same fair share on every member (ids in code-unit order).
    live.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const n = live.length;
    const share = Math.floor(this.shards / n) + (live.indexOf(me) < this.shards % n ? 1 : 0);
    this.#shareGuess = share;
    if (this.#handingOver === null) {
      const holding = this.#held.size;
      if (holding < share && free > 0) await this.#claim(share - holding);
      else if (holding > share && !joining) this.#giveAway(holding - share);
    }
    this.#armClaim(me, liveFor, expiries, answeredAt);
  }

  /**
   * Arms (or clears) the claim timer after a heartbeat answered at `answeredAt`: a heartbeat
   * `CLAIM_MARGIN_MS` after the earliest expiry of another owner's lease at which this member
   * would be under its fair share, counting live only the members whose last heartbeat is
   * still within the ttl then (a member that renews meanwhile stays live; the heartbeat that
   * runs then reads it anew). Delays are from the statement's `now()`, which came before the
   * answer: the timer never fires before the expiry on the database's clock.
   */
  #armClaim(me: string, liveFor: ReadonlyMap<string, number>, expiries: number[], answeredAt: number): void {
    this.#clearTimer('claim');
    if (!this.#active || this.#manual || expiries.length === 0) return;
    const holding = this.#held.size;
    let at: number | null = null;
    for (const ms of expiries.sort((a, b) => a - b)) {
      const live = [me];
      for (const [id, left] of liveFor) if (left > ms) live.push(id);
      live.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const n = live.length;
      const share = Math.floor(this.shards / n) + (live.indexOf(me) < this.shards % n ? 1 : 0);
      if (holding < share) {
        at = ms;
        break;
      }
    }
    if (at === null) return;
    const wait = Math.max(0, answeredAt + at + CLAIM_MARGIN_MS - performance.now());
    this.#claimTimer = setTimeout(() => {
      this.#claimTimer = null;
      this.#kick();
    }, Math.ceil(wait));
    this.#claimTimer.unref();
  }

  /** Claims up to `limit` free, expired or orphaned shards (inside the chain). */
  async #claim(limit: number): Promise<void> {
    const start = performance.now();
    this.beforeQuery?.('claim');
    const { rows } = await this.#pool.query<{ shard: number; epoch: string }>({
      text: this.#sql.claim,
      values: [this.#memberId, [...this.#held.keys()], limit],
      query_timeout: this.leaseTtl,
    } as pg.QueryConfig);
    // Claimed in the database even when the member was stopped meanwhile: those rows are
    // released by `release` (owner = this member) or expire.
    if (!this.#active || rows.length === 0) return;
    const gained: number[] = [];
    for (const r of rows) {
      this.#held.set(r.shard, { epoch: Number(r.epoch), until: start + this.leaseTtl - this.margin });
      gained.push(r.shard);
    }
    this.#armDeadline();
    this.#emit({ type: 'gained', shards: gained.sort((a, b) => a - b) });
  }

  /**
   * Gives `count` shards away (the highest): awaits the handover handler outside the chain
   * (heartbeats keep renewing them meanwhile), then drops and releases them.
   */
  #giveAway(count: number): void {
    const shards = [...this.#held.keys()].sort((a, b) => b - a).slice(0, count).sort((a, b) => a - b);
    const epochs = new Map(shards.map((s) => [s, this.#held.get(s)!.epoch]));
    const run = async () => {
      if (this.#handover !== null) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            this.#handover(shards),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () => reject(new StoreError(`The handover did not finish within ${this.handoverTimeout} ms: the shards are released anyway`)),
                this.handoverTimeout,
              );
              timer.unref();
            }),
          ]);
        } catch (error) {
          this.#report(error, `handover of shards ${shards.join(', ')}`);
        } finally {
          clearTimeout(timer);
        }
      }
      await this.#serial(async () => {
        if (!this.#active) return;
        const still = shards.filter((s) => this.#held.get(s)?.epoch === epochs.get(s));
        if (still.length === 0) return;
        for (const s of still) this.#held.delete(s);
        this.#armDeadline();
        this.#emit({ type: 'lost', shards: still, reason: 'taken' });
        await this.#pool.query(this.#sql.release, [
          this.#memberId,
          still,
          still.map((s) => epochs.get(s)),
          this.#channel,
          this.#payload('released'),
        ]);
      });
    };
    const p: Promise<void> = run()
      .catch((error) => this.#report(error, 'release after handover'))
      .finally(() => {
        if (this.#handingOver === p) this.#handingOver = null;
      });
    this.#handingOver = p;
  }

  /** The next heartbeat in `wait` ms; each one starts `interval` after the previous one started. */
  #scheduleBeat(wait = this.interval): void {
    this.#clearTimer('beat');
    if (!this.#active) return;
    this.#beatTimer = setTimeout(() => {
      this.#beatTimer = null;
      const started = performance.now();
      this.#serial(() => this.#beat(false))
        .catch((error) => this.#report(error, 'heartbeat', true))
        .finally(() => {
          this.#pingListen();
          this.#scheduleBeat(Math.max(0, started + this.interval - performance.now()));
        });
    }, wait);
    this.#beatTimer.unref();
  }

  /** A heartbeat as soon as possible (another member released shards or joined, or a lease this member would claim expired). */
  #kick(): void {
    if (!this.#active || this.#manual || this.#kickQueued) return;
    this.#kickQueued = true;
    this.#serial(async () => {
      this.#kickQueued = false;
      await this.#beat(false);
    }).catch((error) => this.#report(error, 'heartbeat', true));
  }

  /** Drops the shards whose local validity ended ('lost', 'expired'), and re-arms. */
  #armDeadline(): void {
    let next = Infinity;
    for (const h of this.#held.values()) if (h.until < next) next = h.until;
    if (next === this.#deadlineAt && this.#deadlineTimer !== null) return;
    this.#clearTimer('deadline');
    this.#deadlineAt = next;
    if (next === Infinity) return;
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = null;
      this.#deadlineAt = Infinity;
      const now = performance.now();
      const expired: number[] = [];
      for (const [shard, h] of this.#held) {
        if (h.until <= now) {
          this.#held.delete(shard);
          expired.push(shard);
        }
      }
      this.#armDeadline();
      if (expired.length > 0 && this.#active) this.#emit({ type: 'lost', shards: expired.sort((a, b) => a - b), reason: 'expired' });
    }, Math.max(0, Math.ceil(next - performance.now())));
    this.#deadlineTimer.unref();
  }

  #clearTimer(which: 'beat' | 'deadline' | 'claim' | 'reconnect'): void {
    if (which === 'beat' && this.#beatTimer !== null) {
      clearTimeout(this.#beatTimer);
      this.#beatTimer = null;
    } else if (which === 'claim' && this.#claimTimer !== null) {
      clearTimeout(this.#claimTimer);
      this.#claimTimer = null;
    } else if (which === 'deadline' && this.#deadlineTimer !== null) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = null;
      this.#deadlineAt = Infinity;
    } else if (which === 'reconnect' && this.#reconnectTimer !== null) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  // --- LISTEN ---

  /** Connects the LISTEN client; on failure schedules a reconnect (`first`: the join's attempt, never throws). */
  async #connectListen(first = false): Promise<void> {
    if (this.#closed || this.#listen !== null) return;
    const client = new this.#Client({
      ...this.#clientConfig,
      application_name: `residency ${this.#memberId ?? ''} listen`.slice(0, 63),
      keepAlive: true,
    });
    let connected = false;
    client.on('error', (error: Error) => {
      if (connected) this.#dropListen(client, error);
    });
    client.on('end', () => {
      if (connected) this.#dropListen(client, null);
    });
    client.on('notification', (n: pg.Notification) => {
      if (n.channel === this.#channel && n.payload !== undefined) this.#onNotification(n.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${ident(this.#channel)}`);
    } catch (error) {
      client.end().catch(() => {});
      this.#report(error, 'LISTEN connection', true);
      this.#scheduleReconnect();
      return;
    }
    if (this.#closed) {
      client.end().catch(() => {});
      return;
    }
    connected = true;
    this.#listen = client;
    this.#listenBackoff = RECONNECT_MIN_MS;
    // Notifications sent while disconnected are lost: look for released shards now.
    if (!first) this.#kick();
  }

  #dropListen(client: pg.Client, error: Error | null): void {
    if (this.#listen !== client) return;
    this.#listen = null;
    client.end().catch(() => {});
    if (error !== null) this.#report(error, 'LISTEN connection', true);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== null) return;
    const wait = this.#listenBackoff;
    this.#listenBackoff = Math.min(RECONNECT_MAX_MS, this.#listenBackoff * 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      void this.#connectListen();
    }, wait);
    this.#reconnectTimer.unref();
  }

  #beats = 0;
  #pinging = false;

  /**
   * A silently dead LISTEN connection (no RST) is found by a query that times out: one every
   * third heartbeat, with a lenient timeout (a needless reconnect loses the hints sent
   * meanwhile).
   */
  #pingListen(): void {
    const client = this.#listen;
    if (client === null || this.#pinging || ++this.#beats % 3 !== 0) return;
    this.#pinging = true;
    client
      .query({ text: 'select 1', query_timeout: Math.max(2 * this.leaseTtl, 10_000) } as pg.QueryConfig)
      .catch((error: Error) => this.#dropListen(client, error))
      .finally(() => {
        this.#pinging = false;
      });
  }

  #stopListen(): void {
    this.#clearTimer('reconnect');
    const client = this.#listen;
    this.#listen = null;
    client?.end().catch(() => {});
  }

  #onNotification(payload: string): void {
    let m: unknown;
    try {
      m = JSON.parse(payload);
    } catch {
      return;
    }
    if (typeof m !== 'object' || m === null) return;
    const { t, s, a, m: member, q } = m as Record<string, unknown>;
    switch (t) {
      case 'mail':
      case 'destroyed':
        if (Number.isInteger(s) && typeof a === 'string' && this.owns(s as number)) {
          this.#emit({ type: t, agentIds: [a] });
        }
        return;
      case 'reply':
        if (this.#memberId !== null && member === this.#memberId && typeof a === 'string' && Number.isInteger(q)) {
          this.#emit({ type: 'reply', agentId: a, seq: q as number });
        }
        return;
      case 'released':
      case 'joined':
        if (member !== this.#memberId) this.#kick();
        return;
      default:
        return;
    }
  }

  #payload(t: 'released' | 'joined'): string {
    return JSON.stringify({ t, m: this.#memberId });
  }

  #notify(message: { t: 'released' | 'joined'; m: string }): Promise<void> {
    return this.#pool
      .query('select pg_notify($1, $2)', [this.#channel, JSON.stringify(message)])
      .then(() => {})
      .catch((error) => this.#report(error, 'notify', true));
  }

  // --- events and errors ---

  #emit(event: ClusterEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#report(error, `a cluster listener threw on '${event.type}'`);
      }
    }
  }

  /** `quiet`: a connection failure, retried; reported only to an `onError` option. */
  #report(error: unknown, context: string, quiet = false): void {
    if (this.#onError) {
      try {
        this.#onError(error, context);
      } catch {
        // An error reporter that throws has nowhere left to report to.
      }
    } else if (!quiet) {
      console.error(`residency: cluster ${context}:`, error);
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The SQL of one schema, built once (the ttl is a validated integer, inlined). */
function statements(s: string, ttl: number) {
  /** This member's rows ($1) among the shards ($2) it holds under these epochs ($3), locked in shard order. */
  const heldRows = `
        select t.shard from ${s}.shard_leases t
        join unnest($2::int[], $3::bigint[]) as h(shard, epoch) on t.shard = h.shard and t.epoch = h.epoch
        where t.owner = $1
        order by t.shard
        for update of t
      `;
  const ttlInterval = `interval '${ttl} milliseconds'`;
  return {
    /**
     * One round trip: renew this member's leases (by shard AND epoch), upsert its row,
     * forget members unseen for long, and read the other live members (with the ms each
     * stays live without another heartbeat), per other owner the ms until its earliest
     * unexpired lease expires, and how many shards it could claim now ($2: the shards it
     * holds, never claimed by itself).
     */
    heartbeat: `
      with mine as (${heldRows}), renewed as (
        update ${s}.shard_leases t set expires_at = now() + ${ttlInterval}
        from mine where t.shard = mine.shard
        returning t.shard, t.epoch
      ), seen as (
        insert into ${s}.members (id, pid, host, since, seen_at) values ($1, $4, $5, $6, now())
        on conflict (id) do update set seen_at = now()
        returning id
      ), gone as (
        delete from ${s}.members
        where seen_at < now() - greatest(${ttlInterval} * 10, interval '10 minutes') and id <> $1
      )
      select 'r' as k, shard, epoch::text as epoch, null::text as id, null::float8 as ms from renewed
      union all
      select 'm', null, null, id, (extract(epoch from seen_at + ${ttlInterval} - now()) * 1000)::float8
      from ${s}.members where seen_at > now() - ${ttlInterval} and id <> $1
      union all
      select 'x', null, null, owner, (extract(epoch from min(expires_at) - now()) * 1000)::float8
      from ${s}.shard_leases where owner <> $1 and expires_at >= now()
      group by owner
      union all
      select 'f', count(*)::int, null, null, null from ${s}.shard_leases
      where not (shard = any($2::int[])) and (owner is null or expires_at < now() or owner = $1)`,
    /**
     * Free, expired, or this member's own rows it no longer holds locally (dropped after a
     * local expiry): never a shard it holds ($2). A move is a claim of a shard that had
     * another owner (or was released) before.
     */
    claim: `
      with free as (
        select shard from ${s}.shard_leases
        where not (shard = any($2::int[])) and (owner is null or expires_at < now() or owner = $1)
        order by shard
        limit $3
        for update skip locked
      )
      update ${s}.shard_leases t
      set owner = $1, epoch = t.epoch + 1, expires_at = now() + ${ttlInterval},
          moves = t.moves + case when t.epoch > 0 and t.owner is distinct from $1 then 1 else 0 end
      from free where t.shard = free.shard
      returning t.shard, t.epoch::text as epoch`,
    /** Releases these shards if still held under these epochs, and tells the others. */
    release: `
      with mine as (${heldRows}), released as (
        update ${s}.shard_leases t set owner = null, expires_at = now()
        from mine where t.shard = mine.shard
        returning t.shard
      )
      select pg_notify($4, $5) from (select 1) as one where exists (select 1 from released)`,
    /** Releases every shard of the member and deletes its row ($3 = '': no notification). */
    leave: `
      with mine as (
        select shard from ${s}.shard_leases where owner = $1 order by shard for update
      ), released as (
        update ${s}.shard_leases t set owner = null, expires_at = now()
        from mine where t.shard = mine.shard
        returning t.shard
      ), gone as (
        delete from ${s}.members where id = $1
      )
      select pg_notify($2, $3) from (select 1) as one where $3 <> '' and exists (select 1 from released)`,
    fence: `select ${fencedShardsSql(s, '$1::text', '$2::int[]', '$3::bigint[]')} as fenced`,
    viewMembers: `
      select m.id, m.pid, m.host, m.since, (extract(epoch from m.seen_at) * 1000)::float8 as seen_at,
             (select count(*)::int from ${s}.shard_leases l where l.owner = m.id and l.expires_at >= now()) as shards
      from ${s}.members m where m.seen_at > now() - ${ttlInterval}
      order by m.id`,
    viewTotals: `
      select count(*) filter (where owner is null or expires_at < now())::int as unowned,
             coalesce(sum(moves), 0)::text as moves
      from ${s}.shard_leases`,
  };
}
