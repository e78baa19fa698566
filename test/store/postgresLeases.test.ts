/**
 * Shard leases and membership (src/store/postgres/leases.ts) against a real PostgreSQL:
 * claims, heartbeats, local expiry, rebalancing with handover, release, fencing, and the
 * LISTEN connection. Every wait is for a condition (with a generous bound), never a fixed
 * sleep; the timings measured are printed.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterEvent } from '../../src/store/Cluster.js';
import { createLeaseTables, Leases, type LeasesOptions } from '../../src/store/postgres/leases.js';
import { pgTest } from './pgTest.js';

const db = await pgTest('leases');

const owner = { pid: process.pid, host: 'test', since: Date.now() };

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await predicate()) return performance.now() - start;
    if (performance.now() - start > timeoutMs) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe.skipIf(!db.available)('Leases (PostgreSQL)', () => {
  let pool: pg.Pool;
  const open: Leases[] = [];
  const pools: pg.Pool[] = [];

  beforeAll(() => {
    pool = new pg.Pool({ connectionString: db.url, max: 20 });
    pool.on('error', () => {});
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((l) => l.close()));
    await Promise.all(pools.splice(0).map((p) => p.end()));
  });
  afterAll(async () => {
    await pool.end();
  });

  async function schema(shards: number): Promise<string> {
    const name = db.schema();
    const client = await pool.connect();
    try {
      await createLeaseTables(client, name, shards);
    } finally {
      client.release();
    }
    return name;
  }

  interface Member {
    leases: Leases;
    events: { at: number; event: ClusterEvent }[];
    errors: { error: unknown; context: string }[];
    handovers: { shards: number[]; ownedDuring: number[] }[];
  }

  function member(name: string, shards: number, leaseTtl: number, extra: Partial<LeasesOptions> = {}): Member {
    const errors: Member['errors'] = [];
    const leases = new Leases({
      pool,
      schema: name,
      shards,
      leaseTtl,
      channel: `${name}_wake`,
      onError: (error, context) => errors.push({ error, context }),
      ...extra,
    });
    open.push(leases);
    const m: Member = { leases, events: [], errors, handovers: [] };
    leases.subscribe((event) => m.events.push({ at: performance.now(), event }));
    return m;
  }

  /** Two members of a new 8-shard schema, both joined, once they hold 4 shards each. */
  async function balancedPair(leaseTtl: number, timeoutMs?: number): Promise<{ name: string; a: Member; b: Member }> {
    const name = await schema(8);
    const a = member(name, 8, leaseTtl);
    const b = member(name, 8, leaseTtl);
    await a.leases.join('a', owner);
    await b.leases.join('b', owner);
    await waitFor('balanced', () => a.leases.owned().length === 4 && b.leases.owned().length === 4, timeoutMs);
    return { name, a, b };
  }

  function lostOf(m: Member, reason: string): number[] {
    return m.events.flatMap(({ event }) => (event.type === 'lost' && event.reason === reason ? event.shards : []));
  }

  async function rows(name: string) {
    const { rows } = await db.query<{ shard: number; owner: string | null; epoch: string }>(
      `select shard, owner, epoch::text as epoch from "${name}".shard_leases order by shard`,
    );
    return rows.map((r) => ({ shard: r.shard, owner: r.owner, epoch: Number(r.epoch) }));
  }

  it('creates its tables idempotently and refuses another shard count', async () => {
    const name = await schema(8);
    const client = await pool.connect();
    try {
      await createLeaseTables(client, name, 8);
      await expect(createLeaseTables(client, name, 16)).rejects.toThrow(/made with 8 shards, not 16/);
    } finally {
      client.release();
    }
    expect((await rows(name)).map((r) => r.shard)).toEqual(range(8));
  });

  it('a lone member owns every shard when join resolves, and says so before', async () => {
    const name = await schema(8);
    const a = member(name, 8, 2_000);
    const seen: number[][] = [];
    a.leases.subscribe(() => {
      throw new Error('a listener that throws');
    });
    a.leases.subscribe((e) => {
      if (e.type === 'gained') seen.push(e.shards);
    });
    const client = await pool.connect();
    try {
      expect(await a.leases.fenced(client, [0, 1])).toEqual(new Set()); // not joined: unfenced
    } finally {
      client.release();
    }
    await a.leases.join('a', owner);
    expect(seen).toEqual([range(8)]);
    expect(a.leases.owned()).toEqual(range(8));
    expect(a.leases.owns(3)).toBe(true);
    expect(a.errors.some((e) => /listener threw/.test(e.context))).toBe(true);
    expect((await rows(name)).every((r) => r.owner === 'a' && r.epoch === 1)).toBe(true);
    const view = await a.leases.view();
    expect(view).toMatchObject({ shards: 8, unowned: 0, moves: 0 });
    expect(view.members).toEqual([{ id: 'a', owner, shards: 8, seenAt: expect.any(Number) }]);
    await a.leases.close();
    await a.leases.close();
    expect(a.leases.owned()).toEqual([]);
    expect(await a.leases.view()).toMatchObject({ members: [], unowned: 8 });
  });

  it('a member joining takes its share through a handover: the giver finishes first, then releases', async () => {
    const name = await schema(8);
    const a = member(name, 8, 2_000);
    const b = member(name, 8, 2_000);
    let bOwnedWhenHandoverEnded: number[] = [];
    a.leases.onHandover(async (shards) => {
      a.handovers.push({ shards, ownedDuring: a.leases.owned() });
      await new Promise((r) => setTimeout(r, 100));
      bOwnedWhenHandoverEnded = b.leases.owned();
    });
    await a.leases.join('a', owner);
    const t0 = performance.now();
    await b.leases.join('b', owner);
    expect(b.leases.owned()).toEqual([]); // nothing free: it waits for the handover
    await waitFor('b at its share', () => b.leases.owned().length === 4);
    const rebalanceMs = performance.now() - t0;
    console.log(`rebalance after a join (with a 100 ms handover handler): ${rebalanceMs.toFixed(0)} ms`);
    expect(a.handovers).toEqual([{ shards: [4, 5, 6, 7], ownedDuring: range(8) }]);
    expect(bOwnedWhenHandoverEnded).toEqual([]);
    expect(a.leases.owned()).toEqual([0, 1, 2, 3]);
    expect(b.leases.owned()).toEqual([4, 5, 6, 7]);
    expect(lostOf(a, 'taken')).toEqual([4, 5, 6, 7]);
    expect((await rows(name)).map((r) => r.owner)).toEqual(['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b']);
    const view = await b.leases.view();
    expect(view.moves).toBe(4);
    expect(view.members.map((m) => [m.id, m.shards])).toEqual([
      ['a', 4],
      ['b', 4],
    ]);
  });

  it('a handover handler that throws is reported, and the shards are released anyway', async () => {
    const name = await schema(4);
    const a = member(name, 4, 2_000);
    const b = member(name, 4, 2_000);
    a.leases.onHandover(async () => {
      throw new Error('flush failed');
    });
    await a.leases.join('a', owner);
    await b.leases.join('b', owner);
    await waitFor('b at its share', () => b.leases.owned().length === 2);
    expect(a.errors.some((e) => /handover/.test(e.context) && (e.error as Error).message === 'flush failed')).toBe(true);
  });

  it('a handover handler that never ends is given up after handoverTimeout', async () => {
    const name = await schema(4);
    const a = member(name, 4, 2_000, { handoverTimeout: 200 });
    const b = member(name, 4, 2_000);
    a.leases.onHandover(() => new Promise(() => {}));
    await a.leases.join('a', owner);
    await b.leases.join('b', owner);
    await waitFor('b at its share', () => b.leases.owned().length === 2);
    expect(a.errors.some((e) => /handover/.test(e.context) && /did not finish within 200 ms/.test(String(e.error)))).toBe(true);
    expect(lostOf(a, 'taken')).toEqual([2, 3]);
  });

  it('two members joining at once own disjoint sets covering every shard, each at its fair share', async () => {
    for (let round = 0; round < 5; round++) {
      const name = await schema(8);
      const a = member(name, 8, 2_000);
      const b = member(name, 8, 2_000);
      for (const m of [a, b]) m.leases.onHandover(async (shards) => void m.handovers.push({ shards, ownedDuring: m.leases.owned() }));
      await Promise.all([a.leases.join('a', owner), b.leases.join('b', owner)]);
      expect(a.leases.owned().filter((s) => b.leases.owned().includes(s))).toEqual([]);
      await waitFor('both at fair share', () => a.leases.owned().length === 4 && b.leases.owned().length === 4);
      expect([...a.leases.owned(), ...b.leases.owned()].sort((x, y) => x - y)).toEqual(range(8));
      // Whoever claimed more than its share first gave exactly its excess away.
      for (const [giver, other] of [
        [a, b],
        [b, a],
      ] as const) {
        for (const h of giver.handovers) {
          expect(h.shards.every((s) => other.leases.owned().includes(s))).toBe(true);
          expect(lostOf(giver, 'taken')).toEqual(h.shards);
        }
      }
      const db = await rows(name);
      for (const r of db) {
        const holder = r.owner === 'a' ? a : b;
        expect(holder.leases.epochOf(r.shard)).toBe(r.epoch);
      }
      await Promise.all([a.leases.close(), b.leases.close()]);
    }
  });

  it('three members spread the shards evenly, the remainder going to the lowest ids', async () => {
    const name = await schema(10);
    const [a, b, c] = [member(name, 10, 2_000), member(name, 10, 2_000), member(name, 10, 2_000)];
    await a.leases.join('a', owner);
    await Promise.all([b.leases.join('b', owner), c.leases.join('c', owner)]);
    await waitFor('4/3/3', () => a.leases.owned().length === 4 && b.leases.owned().length === 3 && c.leases.owned().length === 3);
    expect([...a.leases.owned(), ...b.leases.owned(), ...c.leases.owned()].sort((x, y) => x - y)).toEqual(range(10));
    const view = await a.leases.view();
    expect(view.unowned).toBe(0);
    expect(view.members.map((m) => [m.id, m.shards])).toEqual([
      ['a', 4],
      ['b', 3],
      ['c', 3],
    ]);
  });

  it('a member that stops heartbeating expires first, then loses its shards to the other, and fenced() reports them', async () => {
    const ttl = 500;
    const { name, a, b } = await balancedPair(ttl);
    const aShards = a.leases.owned();
    const oldEpochs = new Map(aShards.map((s) => [s, a.leases.epochOf(s)!]));
    const t0 = performance.now();
    a.leases.paused = true;
    await waitFor('b owns everything', () => b.leases.owned().length === 8);
    const takeoverMs = performance.now() - t0;
    console.log(`takeover after a stopped heartbeat (ttl ${ttl} ms, heartbeat ${(ttl / 3).toFixed(0)} ms): ${takeoverMs.toFixed(0)} ms`);
    expect(takeoverMs).toBeLessThan(ttl + 2 * b.leases.interval + 250);
    // a stopped owning before b started to.
    const expiredAt = a.events.find((e) => e.event.type === 'lost' && e.event.reason === 'expired')?.at;
    const gainedAt = b.events.filter((e) => e.event.type === 'gained').at(-1)!.at;
    expect(lostOf(a, 'expired')).toEqual(aShards);
    expect(expiredAt).toBeLessThan(gainedAt);
    expect(a.leases.owned()).toEqual([]);

    const client = await pool.connect();
    try {
      await client.query('begin');
      expect(await a.leases.fenced(client, aShards)).toEqual(new Set(aShards));
      expect(await b.leases.fenced(client, range(8))).toEqual(new Set());
      await client.query('commit');
    } finally {
      client.release();
    }
    for (const r of await rows(name)) {
      expect(r.owner).toBe('b');
      if (aShards.includes(r.shard)) expect(r.epoch).toBeGreaterThan(oldEpochs.get(r.shard)!);
      expect(b.leases.epochOf(r.shard)).toBe(r.epoch);
    }
  });

  it('takes over just after the stopped member\'s leases expire, not at its next heartbeat', async () => {
    const ttl = 3_000;
    const { name, a, b } = await balancedPair(ttl);
    // The worst phase for a heartbeat-driven takeover: a's last renewal comes just after one of
    // b's heartbeats, so each of b's heartbeats finds a's leases a little short of expiring.
    let bBeats = 0;
    b.leases.beforeQuery = (what) => {
      if (what === 'heartbeat') bBeats++;
    };
    const seen = bBeats;
    await waitFor("one of b's heartbeats", () => bBeats > seen);
    await b.leases.settled();
    await a.leases.tick();
    a.leases.paused = true;
    const t0 = performance.now();
    const { rows: left } = await db.query<{ ms: number }>(
      `select (extract(epoch from max(expires_at) - now()) * 1000)::float8 as ms from "${name}".shard_leases where owner = 'a'`,
    );
    const leaseLeft = left[0]!.ms;
    await waitFor('b owns everything', () => b.leases.owned().length === 8, 10_000);
    const gainedAt = b.events.filter((e) => e.event.type === 'gained').at(-1)!.at;
    const takeover = gainedAt - t0;
    const late = takeover - leaseLeft;
    console.log(
      `takeover after a stopped heartbeat (ttl ${ttl} ms, heartbeat ${b.leases.interval.toFixed(0)} ms): ${takeover.toFixed(0)} ms, ` +
        `lease left ${leaseLeft.toFixed(0)} ms, takeover − lease left ${late.toFixed(0)} ms`,
    );
    expect(leaseLeft).toBeGreaterThan(ttl - b.leases.interval);
    // Measured 15–139 ms (2 cores, loaded); a full heartbeat period (~1,005 ms) when b waits for its next heartbeat.
    expect(late).toBeLessThan(b.leases.interval / 2 + 150);
    // Never before the lease ran out, and a stopped owning before b started to.
    expect(late).toBeGreaterThan(0);
    const expiredAt = a.events.find((e) => e.event.type === 'lost' && e.event.reason === 'expired')?.at;
    expect(expiredAt).toBeLessThan(gainedAt);
    expect((await rows(name)).every((r) => r.owner === 'b' && b.leases.epochOf(r.shard) === r.epoch)).toBe(true);
  });

  it('fenced() drops a shard whose row another member took, and reports it lost (fenced)', async () => {
    const name = await schema(4);
    const a = member(name, 4, 10_000, { heartbeat: 'manual' });
    await a.leases.join('a', owner);
    await db.query(`update "${name}".shard_leases set owner = 'intruder', epoch = epoch + 1 where shard = 2`);
    const client = await pool.connect();
    try {
      await client.query('begin');
      expect(await a.leases.fenced(client, [1, 2, 2, 3])).toEqual(new Set([2]));
      await client.query('commit');
    } finally {
      client.release();
    }
    expect(a.events.at(-1)?.event).toEqual({ type: 'lost', shards: [2], reason: 'fenced' });
    expect(a.leases.owned()).toEqual([0, 1, 3]);
  });

  it('a renewal racing a claim of the expired lease: never two holders with the same epoch, and fenced() decides', async () => {
    const outcomes = { renewed: 0, taken: 0 };
    for (let round = 0; round < 20; round++) {
      const name = await schema(4);
      const a = member(name, 4, 10_000, { heartbeat: 'manual' });
      const b = member(name, 4, 10_000, { heartbeat: 'manual' });
      await a.leases.join('a', owner);
      await b.leases.join('b', owner);
      expect(b.leases.owned()).toEqual([]);
      // a's leases expire in the database and a looks dead to b: b may claim them all.
      await db.query(`update "${name}".shard_leases set expires_at = now() - interval '1 millisecond'`);
      await db.query(`update "${name}".members set seen_at = now() - interval '1 hour' where id = 'a'`);
      const jitter = () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 3)));
      await Promise.all([jitter().then(() => a.leases.tick()), jitter().then(() => b.leases.tick())]);
      await Promise.all([a.leases.settled(), b.leases.settled()]);

      const client = await pool.connect();
      let fa: Set<number>;
      let fb: Set<number>;
      try {
        await client.query('begin');
        fa = await a.leases.fenced(client, range(4));
        fb = await b.leases.fenced(client, range(4));
        await client.query('commit');
      } finally {
        client.release();
      }
      for (const r of await rows(name)) {
        const ea = a.leases.epochOf(r.shard);
        const eb = b.leases.epochOf(r.shard);
        expect(ea !== null && ea === eb).toBe(false);
        expect(a.leases.owns(r.shard) && b.leases.owns(r.shard)).toBe(false);
        // Exactly the row's owner may write (an owner released by a's handover: nobody).
        expect(!fa.has(r.shard)).toBe(r.owner === 'a');
        expect(!fb.has(r.shard)).toBe(r.owner === 'b');
        if (r.owner === 'a') expect(ea).toBe(r.epoch);
        if (r.owner === 'b') expect(eb).toBe(r.epoch);
        if (r.owner === 'b' && r.epoch > 1) outcomes.taken++;
        if (r.owner === 'a') outcomes.renewed++;
      }
      await Promise.all([a.leases.close(), b.leases.close()]);
    }
    console.log(`renew/claim race, 20 rounds × 4 shards: ${outcomes.renewed} kept by the renewer, ${outcomes.taken} taken by the claimer`);
  });

  it('a graceful release hands every shard over at once, much faster than the lease ttl', async () => {
    const ttl = 3_000;
    const { a, b } = await balancedPair(ttl, 20_000);
    const t0 = performance.now();
    await a.leases.release();
    expect(a.leases.owned()).toEqual([]);
    await waitFor('b owns everything', () => b.leases.owned().length === 8);
    const ms = performance.now() - t0;
    console.log(`takeover after a graceful release (ttl ${ttl} ms): ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(ttl / 2);
    expect((await b.leases.view()).members.map((m) => m.id)).toEqual(['b']);
    expect(a.events.at(-1)?.event).toEqual({ type: 'lost', shards: [0, 1, 2, 3], reason: 'taken' });
    // The released member claims nothing again (b's release leaves every shard free).
    await a.leases.tick();
    await b.leases.release();
    await a.leases.tick();
    expect((await b.leases.view()).unowned).toBe(8);
    expect(a.leases.owned()).toEqual([]);
  });

  it('turns notifications into events: mail and destroyed for owned shards, replies for this member, nothing else', async () => {
    const { name, a, b } = await balancedPair(2_000);
    const notify = (payload: string) => db.query('select pg_notify($1, $2)', [`${name}_wake`, payload]);
    const hints = (m: Member) => m.events.map((e) => e.event).filter((e) => e.type !== 'gained' && e.type !== 'lost');
    for (const payload of [
      'not json',
      '[1]',
      'null',
      '{"t":"mail","s":"0","a":"x"}',
      '{"t":"mail","s":0}',
      '{"t":"unknown"}',
      JSON.stringify({ t: 'mail', s: 0, a: 'to-a' }),
      JSON.stringify({ t: 'mail', s: 7, a: 'to-b' }),
      JSON.stringify({ t: 'destroyed', s: 1, a: 'gone' }),
      JSON.stringify({ t: 'reply', m: 'b', a: 'asked', q: 3 }),
      JSON.stringify({ t: 'reply', m: 'nobody', a: 'asked', q: 4 }),
      JSON.stringify({ t: 'mail', s: 3, a: 'last' }),
    ]) {
      await notify(payload);
    }
    await waitFor('the last hint', () => hints(a).some((e) => e.type === 'mail' && e.agentIds[0] === 'last'));
    await waitFor('b hints', () => hints(b).length >= 2);
    expect(hints(a)).toEqual([
      { type: 'mail', agentIds: ['to-a'] },
      { type: 'destroyed', agentIds: ['gone'] },
      { type: 'mail', agentIds: ['last'] },
    ]);
    expect(hints(b)).toEqual([
      { type: 'mail', agentIds: ['to-b'] },
      { type: 'reply', agentId: 'asked', seq: 3 },
    ]);
  });

  it('the LISTEN connection reconnects after pg_terminate_backend and still delivers hints', async () => {
    const name = await schema(4);
    const a = member(name, 4, 600);
    await a.leases.join('a', owner);
    for (let i = 0; i < 3; i++) {
      const old = a.leases.listenPid();
      expect(old).not.toBeNull();
      const t0 = performance.now();
      await db.query('select pg_terminate_backend($1)', [old]);
      await waitFor('a new LISTEN connection', () => a.leases.listenPid() !== null && a.leases.listenPid() !== old);
      console.log(`LISTEN reconnected in ${(performance.now() - t0).toFixed(0)} ms`);
      await db.query('select pg_notify($1, $2)', [`${name}_wake`, JSON.stringify({ t: 'mail', s: 1, a: `after-${i}` })]);
      await waitFor('the hint', () => a.events.some((e) => e.event.type === 'mail' && e.event.agentIds[0] === `after-${i}`));
    }
    expect(a.leases.owned()).toEqual(range(4));
  });

  it('survives its pool connections being terminated over and over, and owns again afterwards', async () => {
    const name = await schema(4);
    const app = `leases_drop_${process.pid}`;
    const own = new pg.Pool({ connectionString: db.url, max: 4, application_name: app });
    own.on('error', () => {}); // the pool's owner (postgresStore) must do this for idle clients
    pools.push(own);
    const a = member(name, 4, 600, { pool: own });
    await a.leases.join('a', owner);
    const until = performance.now() + 1_500;
    let terminated = 0;
    while (performance.now() < until) {
      const { rowCount } = await db.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 or pid = $2`,
        [app, a.leases.listenPid() ?? 0],
      );
      terminated += rowCount ?? 0;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(terminated).toBeGreaterThan(0);
    await waitFor('owning every shard again', () => a.leases.owned().length === 4);
    await waitFor('listening again', () => a.leases.listenPid() !== null);
    await db.query('select pg_notify($1, $2)', [`${name}_wake`, JSON.stringify({ t: 'mail', s: 0, a: 'back' })]);
    await waitFor('a hint', () => a.events.some((e) => e.event.type === 'mail' && e.event.agentIds[0] === 'back'));
  });

  it("emits 'expired' before the database would expire the lease when renewals fail, and claims again afterwards", async () => {
    const ttl = 1_000;
    const name = await schema(4);
    const a = member(name, 4, ttl);
    await a.leases.join('a', owner);
    const before = new Map(range(4).map((s) => [s, a.leases.epochOf(s)!]));
    let failed = 0;
    a.leases.beforeQuery = () => {
      failed++;
      throw new Error('the database is unreachable');
    };
    const t0 = performance.now();
    let stillValidInDb: boolean | null = null;
    a.leases.subscribe((e) => {
      if (e.type === 'lost' && e.reason === 'expired') {
        void db
          .query<{ ok: boolean }>(`select bool_and(expires_at > now()) as ok from "${name}".shard_leases`)
          .then((r) => (stillValidInDb = r.rows[0]!.ok));
      }
    });
    await waitFor("'expired'", () => lostOf(a, 'expired').length === 4);
    const ms = performance.now() - t0;
    console.log(`'expired' ${ms.toFixed(0)} ms after renewals began to fail (ttl ${ttl} ms, margin ${a.leases.margin} ms)`);
    expect(ms).toBeLessThan(ttl); // at most ttl − margin after the last renewal started, plus timer lateness
    expect(failed).toBeGreaterThan(0);
    expect(a.leases.owns(0)).toBe(false);
    await waitFor('the database read', () => stillValidInDb !== null);
    expect(stillValidInDb).toBe(true);
    a.leases.beforeQuery = null;
    await waitFor('gained again', () => a.leases.owned().length === 4);
    for (const s of range(4)) expect(a.leases.epochOf(s)).toBeGreaterThan(before.get(s)!);
    expect(a.events.at(-1)?.event).toEqual({ type: 'gained', shards: range(4) });
  });

  it('heartbeats and writers checking their fence never deadlock (both lock lease rows in shard order)', async () => {
    const name = await schema(64);
    const a = member(name, 64, 10_000, { heartbeat: 'manual' });
    await a.leases.join('a', owner);
    const writer = async () => {
      const client = await pool.connect();
      try {
        for (let i = 0; i < 150; i++) {
          const shards = range(64).filter(() => Math.random() < 0.3).sort(() => Math.random() - 0.5);
          await client.query('begin');
          const fenced = await a.leases.fenced(client, shards);
          await new Promise((r) => setImmediate(r));
          await client.query('commit');
          expect(fenced).toEqual(new Set());
        }
      } finally {
        client.release();
      }
    };
    const beats = async () => {
      for (let i = 0; i < 150; i++) await a.leases.tick();
    };
    await Promise.all([writer(), writer(), writer(), beats()]);
    expect(a.leases.owned().length).toBe(64);
  });

  it('a heartbeat is one round trip', async () => {
    const name = await schema(256);
    const a = member(name, 256, 10_000, { heartbeat: 'manual' });
    await a.leases.join('a', owner);
    expect(a.leases.owned().length).toBe(256);
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      await a.leases.tick();
      times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    console.log(
      `heartbeat of 256 shards: median ${times[25]!.toFixed(2)} ms, p90 ${times[45]!.toFixed(2)} ms (one statement)`,
    );
    expect(a.leases.owned().length).toBe(256);
  });
});
