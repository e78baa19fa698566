/**
 * One candidate in its own process (bench/isolated.ts starts it). It builds the
 * candidate named on the command line, then answers `setup`, `run` and `check`
 * requests; `run` reports the wall time of the round and the time V8 spent in
 * garbage collection during it.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { factories, type Kind } from './candidates.js';

export type Request = { id: number; cmd: 'setup' } | { id: number; cmd: 'run'; ops: number } | { id: number; cmd: 'check' };
export type Reply =
  | { id: number; ok: true; ns?: number; gcNs?: number; facts?: Record<string, number>; ms?: number }
  | { id: number; ok: false; error: string };

const [kind, argJson] = process.argv.slice(2) as [Kind, string];
const factory = factories[kind] as (arg: unknown) => ReturnType<(typeof factories)[Kind]>;
if (typeof factory !== 'function') throw new Error(`no candidate kind "${kind}"`);
const candidate = factory(JSON.parse(argJson));

const gcs: { start: number; duration: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ start: e.startTime, duration: e.duration });
}).observe({ entryTypes: ['gc'] });

/** GC time (ms) that started within [t0, t1], after the observer has been given its entries. */
async function gcBetween(t0: number, t1: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 5));
  let ms = 0;
  for (const g of gcs) if (g.start >= t0 && g.start <= t1) ms += g.duration;
  gcs.length = 0;
  return ms;
}

const reply = (r: Reply) => process.send!(r);

process.on('message', async (m: Request) => {
  try {
    if (m.cmd === 'setup') {
      const t0 = performance.now();
      await candidate.setup();
      reply({ id: m.id, ok: true, ms: performance.now() - t0 });
    } else if (m.cmd === 'run') {
      const t0 = performance.now();
      const h0 = process.hrtime.bigint();
      await candidate.run(m.ops);
      const h1 = process.hrtime.bigint();
      const t1 = performance.now();
      reply({ id: m.id, ok: true, ns: Number(h1 - h0), gcNs: (await gcBetween(t0, t1)) * 1e6 });
    } else {
      reply({ id: m.id, ok: true, facts: await candidate.check() });
    }
  } catch (err) {
    reply({ id: m.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
