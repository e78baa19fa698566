/**
 * Event loop: how late a 1 ms timer in the same process fires while the runtime handles
 * 4,000 messages for 64 resident agents (the workload of bench/durableTurns.ts), on
 * `memoryStore()`, on `sqliteStore` (a real temp file, synchronous FULL) with its writes on
 * the event loop, and on the same with its writer on a worker thread (`writer: 'thread'`),
 * side by side, in two sending modes:
 * - `yield`: the sender awaits a `setImmediate` every 100 sends; lateness is recorded from
 *   the first send until every turn finished;
 * - `broadcast`: all 4,000 sends in one synchronous loop; that loop is the application's,
 *   not the runtime's, so lateness is recorded from the end of the loop on (the loop's own
 *   duration is reported beside).
 * Method: a repeating `setTimeout(tick, 1)`; each firing records `performance.now()` minus
 * the time it was due (scheduled + 1 ms), negatives (libuv's cached clock) as 0. The firing
 * pending when the last turn finished is waited for and counted. A control row runs the
 * same timer in an idle process.
 */
import os from 'node:os';
import type { AsyncCandidate } from './candidates.js';
import { AGENTS, MESSAGES, percentile } from './durableTurns.js';
import { fmt, inBenchFolder } from './harness.js';
import { compareIsolated, spec, type IsolatedMeasured } from './isolated.js';

const ROUNDS = 5;
const TARGET_P99_MS = 5;
const IDLE_MS = 500;

/** The control: the same 1 ms timer for `ops` ms in a process doing nothing else. */
function idleTicker(arg: { skipRuns: number }): AsyncCandidate {
  const lateness: number[] = [];
  let runs = 0;
  return {
    setup() {},
    async run(ops) {
      const measured = runs++ >= arg.skipRuns;
      const end = performance.now() + ops;
      await new Promise<void>((resolve) => {
        let expected = performance.now() + 1;
        const tick = () => {
          const now = performance.now();
          if (measured) lateness.push(Math.max(0, now - expected));
          if (now >= end) return resolve();
          expected = now + 1;
          setTimeout(tick, 1);
        };
        setTimeout(tick, 1);
      });
    },
    check() {
      return { count: lateness.length, p50: percentile(lateness, 50), p99: percentile(lateness, 99), max: percentile(lateness, 100) };
    },
  };
}

export const eventLoopFactories = { idleTicker } as const;

export async function benchEventLoop(): Promise<string> {
  return inBenchFolder('loop', async (file, load) => {
    const cases = (['yield', 'broadcast'] as const).flatMap((mode) =>
      (['memory', 'sqlite', 'sqlite-thread'] as const).map((store) => ({ mode, store })),
    );
    const specs = [
      ...cases.map(({ mode, store }) =>
        spec(`${store}:${mode}`, 'turnsRun', { store, file: store === 'memory' ? undefined : file(`${store}-${mode}`), runningCap: AGENTS, mode, ticker: true, skipRuns: 1 }, MESSAGES),
      ),
      spec('control', 'idleTicker', { skipRuns: 1 }, IDLE_MS),
    ];
    const measured = await compareIsolated(specs, { rounds: ROUNDS, warmup: 1, parallelSetup: false });
    return render(measured, load());
  });
}

function render(m: IsolatedMeasured[], load: string): string {
  const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '–' : `${fmt(v, v >= 100 ? 0 : v >= 10 ? 1 : 2)} ms`);
  const storeName = { memory: '`memoryStore()`', sqlite: "`sqliteStore`, FULL, `writer: 'main'`", 'sqlite-thread': "`sqliteStore`, FULL, `writer: 'thread'` (the default)" } as const;
  const modeName = { yield: 'yields every 100 sends', broadcast: 'broadcast: one synchronous loop' } as const;
  const table = [
    '| sending | store | p50 | p99 | max | firings | sender\'s own loop | turns/s |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const verdicts: string[] = [];
  const few: string[] = [];
  for (const r of m) {
    const f = r.facts;
    if (r.name === 'control') {
      table.push(`| control: the timer alone, idle process, ${IDLE_MS} ms a round | – | ${ms(f.p50)} | ${ms(f.p99)} | ${ms(f.max)} | ${fmt(f.count ?? NaN)} | – | – |`);
      continue;
    }
    const [store, mode] = r.name.split(':') as ['memory' | 'sqlite' | 'sqlite-thread', 'yield' | 'broadcast'];
    table.push(
      `| ${modeName[mode]} | ${storeName[store]} | ${ms(f.p50)} | ${ms(f.p99)} | ${ms(f.max)} | ${fmt(f.count ?? NaN)} | ${mode === 'broadcast' ? ms(f.senderLoopP50) : '–'} | ${fmt(r.opsPerSec)} |`,
    );
    const p99 = f.p99 ?? NaN;
    verdicts.push(
      `${modeName[mode].split(':')[0]}, ${store}: ${p99 <= TARGET_P99_MS ? `**met** (p99 ${ms(p99)})` : `**missed** (p99 ${ms(p99)}, ${fmt(p99 / TARGET_P99_MS, 1)}× the target)`}`,
    );
    if ((f.count ?? 0) < 100) few.push(`${modeName[mode].split(':')[0]}, ${store}: ${fmt(f.count ?? NaN)} firings in ${ROUNDS} rounds`);
  }
  return [
    '## Event loop',
    '',
    `Lateness of a 1 ms timer in the runtime's process while it handles ${fmt(MESSAGES)} messages for ${AGENTS} resident agents`,
    '(the workload of "Durable turns": trivial `fromTurn` turns, all agents loaded beforehand, runningCap 64),',
    "on `memoryStore()`, on `sqliteStore(<temp file>, { writer: 'main' })` with `synchronous=FULL` (its writes on the event loop) and on",
    "`sqliteStore(<temp file>, { writer: 'thread' })`, the default (every write transaction, fsync included, on a worker thread; reads",
    'on the main thread), side by side in the same run, in two sending modes:',
    '',
    '- **yields every 100 sends**: the sender sends without await and awaits a `setImmediate` after every 100',
    '  sends; lateness is recorded from the first send until every turn finished.',
    '- **broadcast**: all 4,000 sends in one synchronous loop (`send` without await). That loop is the',
    "  application's own work, not the runtime's, so lateness is recorded only from the end of the loop on; the",
    "  loop's own duration (median) is in the column \"sender's own loop\".",
    '',
    'Method: a repeating `setTimeout(tick, 1)`; each firing records its lateness, `performance.now()` minus the',
    'time it was due (when it was set + 1 ms); the firing pending when the last turn finished is waited for and',
    'counted, so a stretch that blocks the loop until the end is seen. Negative lateness (libuv caches its clock)',
    `counts as 0. Percentiles over every firing of ${ROUNDS} rounds after a warm-up round; each case in its own`,
    `process (bench/isolated.ts), rounds alternating. Load average ${load}, on ${os.cpus().length} cores. The`,
    '"turns/s" column is the median round\'s rate (first send to last `turn.finished`), timer running.',
    '',
    ...table,
    '',
    `- target p99 ≤ ${TARGET_P99_MS} ms: ${verdicts.join('; ')}.`,
    ...(few.length > 0
      ? [
          `- few firings (${few.join('; ')}): the timer barely ran because the loop was held for most of the round; with`,
          '  about one firing per round, p50, p99 and max are the lengths of the stretches that held the loop.',
        ]
      : []),
  ].join('\n');
}
