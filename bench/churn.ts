/**
 * Churn: evict + reload cycles per second through the runtime, with a small resident
 * cap and more agents than the cap, against the same cycle on bare XState (persist the
 * least recently used actor, stop it, restore the target from its snapshot, start it,
 * send it the message). Target: the runtime cycles at ≥ 0.5× bare XState.
 */
import { fmt } from './harness.js';
import { compareIsolated, spec, type IsolatedMeasured } from './isolated.js';

const row = (m: IsolatedMeasured) =>
  `| ${m.name} | ${fmt(m.nsPerOp / 1000, 1)} µs | ${fmt(m.opsPerSec)} | ${fmt(m.gcShare * 100)} % | ${fmt(m.facts.loadsPerOp ?? NaN, 2)} / ${fmt(m.facts.evictionsPerOp ?? NaN, 2)} |`;

export async function benchChurn(): Promise<string> {
  const ms = await compareIsolated(
    [
      spec('bare XState: persist + stop + restore + start + send, 1 live of 2 actors', 'bareCycle', { resident: 1, batch: 1 }, 20_000),
      spec('runtime: residentCap 1, 2 agents, one message at a time to the unloaded one', 'runtimeCycle', { resident: 1, batch: 1, runningCap: 1 }, 1_000),
      spec('bare XState: the same cycle, 8 live of 16 actors', 'bareCycle', { resident: 8, batch: 8 }, 20_000),
      spec('runtime: residentCap 8, runningCap 8, 16 agents, 8 messages at a time to the 8 unloaded', 'runtimeCycle', { resident: 8, batch: 8, runningCap: 8 }, 2_000),
    ],
    { rounds: 7, warmup: 2 },
  );
  const [bare1, rt1, bare8, rt8] = ms;
  if (!bare1 || !rt1 || !bare8 || !rt8) throw new Error('missing candidate');
  const ratio = (rt: IsolatedMeasured, bare: IsolatedMeasured) => bare.nsPerOp / rt.nsPerOp;
  const verdict = (r: number) => (r >= 0.5 ? '**met**' : `**missed**: ${fmt(0.5 / r, 1)}× short of 0.5×`);
  return [
    '## Churn: evict + reload cycles',
    '',
    'One cycle = a message to an unloaded agent when the resident cap is full: the least',
    'recently used agent is evicted (its actor stopped; its state was committed at the end of',
    'its last turn), the target is loaded from the store (snapshot read, actor restored and',
    'started) and handles the message (turn, commit). Bare XState does the same cycle with no',
    'store: `getPersistedSnapshot()` + `stop()` of the LRU actor, `createActor(machine,',
    '{ snapshot }).start()` + `send` of the target. The last column counts loads and evictions',
    'per cycle (from `runtime.stats()`): 1 / 1 shows every message really was a miss. Own',
    'process per candidate, alternating rounds, medians of 7. Target: runtime ≥ 0.5× bare.',
    '',
    '| case | per cycle | cycles/s | GC | loads / evictions per cycle |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...ms.map(row),
    '',
    `- residentCap 1: runtime / bare = **${ratio(rt1, bare1).toFixed(3)}×** — ${verdict(ratio(rt1, bare1))}`,
    `- residentCap 8: runtime / bare = **${ratio(rt8, bare8).toFixed(3)}×** — ${verdict(ratio(rt8, bare8))}`,
  ].join('\n');
}
