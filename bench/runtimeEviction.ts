/**
 * Eviction scaling through the whole runtime: the cost of one evict + reload cycle with
 * 1,000 vs 100,000 resident agents (residentCap = N, N agents resident, each cycle a
 * message to one of 64 unloaded agents). Bare XState doing the same cycle at the same
 * sizes is the control: what holding N actors in the heap costs with no runtime at all.
 * Target: ratio ≤ 1.2.
 */
import { fmt } from './harness.js';
import { compareIsolated, spec, type IsolatedMeasured } from './isolated.js';

const row = (m: IsolatedMeasured) =>
  `| ${m.name} | ${fmt(m.nsPerOp / 1000, 1)} µs | ${fmt(m.opsPerSec)} | ${fmt(m.gcShare * 100)} % | ${fmt(m.facts.loadsPerOp ?? NaN, 2)} / ${fmt(m.facts.evictionsPerOp ?? NaN, 2)} | ${fmt(m.setupMs / 1000, 1)} s |`;

export async function benchRuntimeEviction(): Promise<string> {
  const SMALL = 1_000;
  const LARGE = 100_000;
  const BATCH = 64;
  const ms = await compareIsolated(
    [
      spec(`runtime, ${fmt(SMALL)} resident`, 'runtimeCycle', { resident: SMALL, batch: BATCH, runningCap: 8 }, 2_048),
      spec(`runtime, ${fmt(LARGE)} resident`, 'runtimeCycle', { resident: LARGE, batch: BATCH, runningCap: 8 }, 2_048),
      spec(`control: bare XState cycle, ${fmt(SMALL)} live actors`, 'bareCycle', { resident: SMALL, batch: BATCH }, 20_000),
      spec(`control: bare XState cycle, ${fmt(LARGE)} live actors`, 'bareCycle', { resident: LARGE, batch: BATCH }, 20_000),
    ],
    { rounds: 7, warmup: 1, parallelSetup: true },
  );
  const [small, large, bareSmall, bareLarge] = ms;
  if (!small || !large || !bareSmall || !bareLarge) throw new Error('missing candidate');
  const r = large.nsPerOp / small.nsPerOp;
  const gcFree = (m: IsolatedMeasured) => m.nsPerOp * (1 - m.gcShare);
  return [
    '## Eviction scaling through the runtime',
    '',
    `Cost of one evict + reload cycle through \`createRuntime\` (memoryStore, residentCap = N,`,
    `N agents resident, ${BATCH} more unloaded; each round sends ${BATCH} messages at a time to the`,
    `${BATCH} least recently used agents, which are all unloaded, and waits until they are handled),`,
    `with N = ${fmt(SMALL)} and N = ${fmt(LARGE)}. Each candidate runs in its own process, so neither`,
    'pays for marking the other\'s heap; rounds alternate; medians of 7. "setup" is the time to',
    'spawn the agents and make N of them resident (one message each), not measured. Target:',
    'ratio ≤ 1.2.',
    '',
    '| case | per cycle | cycles/s | GC | loads / evictions per cycle | setup |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...ms.map(row),
    '',
    `- runtime: ${fmt(LARGE)} / ${fmt(SMALL)} = **${r.toFixed(2)}×** — ${r <= 1.2 ? '**met**' : `**missed** by ${(r - 1.2).toFixed(2)} (${fmt((r / 1.2 - 1) * 100)} % over ≤ 1.2×)`}`,
    `- runtime without its GC time: ${fmt(LARGE)} / ${fmt(SMALL)} = **${(gcFree(large) / gcFree(small)).toFixed(2)}×** (GC is ${fmt(small.gcShare * 100)} % of a cycle at ${fmt(SMALL)}, ${fmt(large.gcShare * 100)} % at ${fmt(LARGE)})`,
    `- control, bare XState: ${fmt(LARGE)} / ${fmt(SMALL)} = **${(bareLarge.nsPerOp / bareSmall.nsPerOp).toFixed(2)}×**`,
  ].join('\n');
}
