/**
 * A process of the PostgreSQL section (bench/postgres.ts), started with
 * `node --import tsx bench/postgresChild.ts <mode> <json>` (fork, IPC):
 *
 * - `candidate <kind> <arg>`: one candidate of the side-by-side measurements (accepts,
 *   turns), built by `pgFactories[kind](arg)`; answers `setup`, `run` (the wall time of
 *   the round, or the time the candidate measured itself, and its facts) and `check`, then
 *   `close` (its runtime and pool closed, the process exits).
 * - `member <arg>`: a runtime on `postgresStore` (a shared schema) running the `d` agents
 *   (bench/postgres.ts): it records, per turn, when the turn function started and when
 *   `turn.finished` came (`performance.timeOrigin + performance.now()`, comparable across
 *   processes on one machine). It says `starting` (before `createRuntime`) and `ready`
 *   (after it, with its member id) on its own, then answers `count`, `records`, `warm`
 *   (spawn these agents unless they exist, one message each, wait for their turns) and
 *   `stop` (graceful: its shards are handed over, then it exits), and `trips` (its
 *   statements to the server so far, by kind: see `countTrips`).
 */
import pg from 'pg';
import { createRuntime, type Runtime } from '../src/index.js';
import { postgresStore } from '../src/postgres.js';
import { countTrips, deliveryAgent, pgFactories, wallNow, type MemberArg, type PgKind, type TurnRecord } from './postgres.js';

type Msg = { id: number; cmd: string; ops?: number; extra?: Record<string, number>; ids?: string[] };
const reply = (r: Record<string, unknown>) => process.send!(r);
const [mode, a1, a2] = process.argv.slice(2) as [string, string, string | undefined];
process.on('disconnect', () => process.exit(0));

if (mode === 'candidate') {
  const factory = pgFactories[a1 as PgKind] as (arg: unknown) => ReturnType<(typeof pgFactories)[PgKind]>;
  if (typeof factory !== 'function') throw new Error(`no candidate kind "${a1}"`);
  const candidate = factory(JSON.parse(a2!));
  process.on('message', async (m: Msg) => {
    try {
      if (m.cmd === 'setup') {
        await candidate.setup();
        reply({ id: m.id, ok: true });
      } else if (m.cmd === 'run') {
        const h0 = process.hrtime.bigint();
        const own = await candidate.run(m.ops!, m.extra ?? {});
        const ns = Number(process.hrtime.bigint() - h0);
        reply({ id: m.id, ok: true, ns: own?.ns ?? ns, facts: own?.facts ?? {} });
      } else if (m.cmd === 'check') {
        reply({ id: m.id, ok: true, facts: await candidate.check() });
      } else if (m.cmd === 'close') {
        await candidate.close();
        reply({ id: m.id, ok: true });
        setTimeout(() => process.exit(0), 20);
      }
    } catch (err) {
      reply({ id: m.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  });
} else if (mode === 'member') {
  const arg = JSON.parse(a1) as MemberArg;
  reply({ t: 'starting', at: wallNow() });
  const records: TurnRecord[] = [];
  const open = new Map<string, TurnRecord[]>();
  let finished = 0;
  let failed = 0;
  const agent = deliveryAgent((self, i) => {
    const r: TurnRecord = { i, a: self, s: wallNow(), f: 0 };
    records.push(r);
    const q = open.get(self);
    if (q) q.push(r);
    else open.set(self, [r]);
  });
  // A pool of its own, its statements counted (`trips`); the LISTEN connection is the store's own.
  const pool = new pg.Pool({ connectionString: arg.url, max: 10 });
  pool.on('error', () => {});
  const trips = countTrips(pool);
  const store = postgresStore({ pool, connectionString: arg.url, schema: arg.schema, shards: arg.shards, leaseTtl: arg.leaseTtl });
  const runtime: Runtime = await createRuntime({ agents: [agent], store, residentCap: 1_024, runningCap: 64 });
  runtime.on('turn.finished', (e) => {
    finished++;
    if (e.outcome !== 'done') failed++;
    const r = open.get(e.id)?.shift();
    if (r) r.f = wallNow();
  });
  runtime.on('error', (e) => process.stderr.write(`[member ${arg.schema}] ${e.where}: ${e.error.message}\n`));
  reply({ t: 'ready', at: wallNow(), member: runtime.stats().cluster?.member ?? null });
  process.on('message', async (m: Msg) => {
    try {
      if (m.cmd === 'count') reply({ id: m.id, ok: true, count: finished, failed });
      else if (m.cmd === 'trips') reply({ id: m.id, ok: true, trips })
      else if (m.cmd === 'records') reply({ id: m.id, ok: true, records: records.splice(0) });
      else if (m.cmd === 'warm') {
        const target = finished + m.ids!.length;
        for (const id of m.ids!) await runtime.spawn('d', { id }).catch(() => {});
        await Promise.all(m.ids!.map((id) => runtime.send(id, { type: 'go', i: -1 })));
        while (finished < target) await new Promise<void>((r) => setTimeout(r, 5));
        records.length = 0;
        reply({ id: m.id, ok: true });
      } else if (m.cmd === 'stop') {
        await runtime.stop();
        await pool.end();
        reply({ id: m.id, ok: true });
        setTimeout(() => process.exit(0), 20);
      }
    } catch (err) {
      reply({ id: m.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  });
} else {
  throw new Error(`unknown mode ${mode}`);
}
