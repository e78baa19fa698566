/**
 * Durable timers (issue 14): 100,000 pending timers (1,000 resident agents × 100 timers
 * each), all due at the same instant, on a `manualClock()`:
 * - the host timers the process holds for them (the clock's `pending()`, after every
 *   schedule was committed): the runtime keeps one, for the earliest deadline;
 * - the firing rate: from `clock.advance()` past the deadline until the 100,000th
 *   `turn.finished` event, against plain `runtime.send` of the same messages to the same
 *   agents (one synchronous loop, no await) until the 100,000th `turn.finished`, in the
 *   same run; each candidate in its own process (bench/isolated.ts), rounds alternating;
 * - the heap (`--expose-gc`, after full GCs) with the 100,000 timers pending, against the
 *   same runtime before they were scheduled.
 *
 * A round of the timer candidate first schedules the 100,000 timers (`runtime.schedule(id,
 * message, { at, key })`, 5,000 in flight at a time; not timed), then advances the clock and
 * times the firing; the harness's round time includes the scheduling, so the section
 * reports the times each candidate measured itself (medians over the measured rounds).
 */
import os from 'node:os';
import { createRuntime, defineAgent, fromTurn, manualClock, memoryStore, sqliteStore, type ManualClock, type Runtime } from '../src/index.js';
import type { AsyncCandidate } from './candidates.js';
import { fmt, median, inBenchFolder } from './harness.js';
import { compareIsolated, spec, type IsolatedMeasured } from './isolated.js';

export const TIMER_AGENTS = 1_000;
export const TIMERS_PER_AGENT = 100;
export const TIMERS = TIMER_AGENTS * TIMERS_PER_AGENT;
const RATIO_TARGET = 0.5;
/** Timers scheduled concurrently. */
const IN_FLIGHT = 5_000;
/** How far ahead of the clock the deadlines are (ms). */
const AHEAD = 60_000;

const tAgent = defineAgent({
  type: 't',
  logic: fromTurn<{ n: number }>(({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }),
});
const GO = { type: 'go' } as const;
const tAgentId = (i: number) => `t-${i}`;

export interface TimersArg {
  store: 'memory' | 'sqlite';
  file?: string;
  via: 'timer' | 'send';
  runningCap: number;
  /** Rounds (warm-up included) not recorded. */
  skipRuns: number;
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();
async function heapUsed(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((r) => setImmediate(r));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

function timersRun(arg: TimersArg): AsyncCandidate {
  let runtime!: Runtime;
  let clock!: ManualClock;
  let finished = 0;
  let failed = 0;
  let sendErrors = 0;
  let handled = 0;
  let runs = 0;
  let round = 0;
  const waits: { n: number; resolve: () => void }[] = [];
  const until = (n: number) =>
    finished >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          waits.push({ n, resolve });
          waits.sort((a, b) => a.n - b.n);
        });
  const handleMs: number[] = [];
  const scheduleMs: number[] = [];
  const hostTimers: number[] = [];
  const facts: Record<string, number> = {};

  return {
    async setup() {
      clock = manualClock(Date.now());
      const store = arg.store === 'memory' ? memoryStore() : sqliteStore(arg.file!, { synchronous: 'FULL' });
      runtime = await createRuntime({ agents: [tAgent], store, clock, residentCap: TIMER_AGENTS, runningCap: arg.runningCap });
      runtime.on('turn.finished', (e) => {
        finished++;
        if (e.outcome !== 'done') failed++;
        while (waits.length > 0 && finished >= waits[0]!.n) waits.shift()!.resolve();
      });
      for (let i = 0; i < TIMER_AGENTS; i += 500) {
        const spawns: Promise<unknown>[] = [];
        for (let j = i; j < Math.min(TIMER_AGENTS, i + 500); j++) spawns.push(runtime.spawn('t', { id: tAgentId(j) }));
        await Promise.all(spawns);
      }
      const loaded = until(TIMER_AGENTS);
      for (let i = 0; i < TIMER_AGENTS; i++) void runtime.send(tAgentId(i), GO);
      await loaded;
      handled = TIMER_AGENTS;
      facts.hostTimersIdle = clock.pending();
    },
    async run() {
      const measured = runs++ >= arg.skipRuns;
      const r = round++;
      const target = finished + TIMERS;
      if (arg.via === 'timer') {
        const first = r === 0;
        const heap0 = first ? await heapUsed() : 0;
        const at = clock.now() + AHEAD;
        const s0 = performance.now();
        for (let i = 0; i < TIMERS; i += IN_FLIGHT) {
          const ps: Promise<unknown>[] = [];
          for (let k = i; k < Math.min(TIMERS, i + IN_FLIGHT); k++) {
            ps.push(runtime.schedule(tAgentId(k % TIMER_AGENTS), GO, { at, key: `r${r}-${k}` }));
          }
          await Promise.all(ps);
        }
        const s1 = performance.now();
        hostTimers.push(clock.pending());
        if (first) {
          const heap1 = await heapUsed();
          facts.heapBefore = heap0;
          facts.heapPending = heap1;
          let pending = 0;
          for (let i = 0; i < TIMER_AGENTS; i++) pending += (await runtime.get(tAgentId(i)))!.timers;
          facts.pendingCounted = pending;
        }
        if (finished !== target - TIMERS) throw new Error('a turn ran before the timers came due');
        const done = until(target);
        const t0 = performance.now();
        clock.advance(AHEAD);
        await done;
        const t1 = performance.now();
        if (measured) {
          scheduleMs.push(s1 - s0);
          handleMs.push(t1 - t0);
        }
        if (first) facts.heapAfterFiring = await heapUsed();
      } else {
        const done = until(target);
        const onError = () => void sendErrors++;
        const t0 = performance.now();
        for (let k = 0; k < TIMERS; k++) runtime.send(tAgentId(k % TIMER_AGENTS), GO).catch(onError);
        await done;
        const t1 = performance.now();
        if (measured) handleMs.push(t1 - t0);
      }
      handled += TIMERS;
    },
    async check() {
      if (failed > 0) throw new Error(`${failed} turns failed`);
      if (sendErrors > 0) throw new Error(`${sendErrors} sends rejected`);
      let total = 0;
      let pending = 0;
      for (let i = 0; i < TIMER_AGENTS; i++) {
        const info = (await runtime.get(tAgentId(i)))!;
        total += info.turns;
        if (!info.resident) throw new Error(`${info.id} is ${info.state}`);
        pending += info.timers;
      }
      if (total !== handled) throw new Error(`agents finished ${total} turns, expected ${handled}`);
      if (pending !== 0) throw new Error(`${pending} timers still pending`);
      return {
        ...facts,
        handleMs: median(handleMs),
        perSec: TIMERS / (median(handleMs) / 1000),
        ...(scheduleMs.length ? { scheduleMs: median(scheduleMs), hostTimersMax: Math.max(...hostTimers) } : {}),
      };
    },
  };
}

export const timersFactories = { timersRun } as const;

// --- the section ------------------------------------------------------------------------

const ROUNDS = 3;

export async function benchTimers(): Promise<string> {
  return inBenchFolder('timers', async (file, load) => {
    const base = { runningCap: 64, skipRuns: 1 } as const;
    const specs = [
      spec('memoryStore, timers', 'timersRun', { ...base, store: 'memory', via: 'timer' }, TIMERS),
      spec('memoryStore, sends', 'timersRun', { ...base, store: 'memory', via: 'send' }, TIMERS),
      spec('sqliteStore FULL, timers', 'timersRun', { ...base, store: 'sqlite', file: file('timers'), via: 'timer' }, TIMERS),
      spec('sqliteStore FULL, sends', 'timersRun', { ...base, store: 'sqlite', file: file('sends'), via: 'send' }, TIMERS),
    ];
    const measured = await compareIsolated(specs, { rounds: ROUNDS, warmup: 1, parallelSetup: false, execArgv: ['--expose-gc'] });
    return render(measured, load());
  });
}

function render(m: IsolatedMeasured[], load: string): string {
  const [memT, memS, sqlT, sqlS] = m as [IsolatedMeasured, IsolatedMeasured, IsolatedMeasured, IsolatedMeasured];
  const ratio = (t: IsolatedMeasured, s: IsolatedMeasured) => t.facts.perSec! / s.facts.perSec!;
  const verdict = (r: number) => (r >= RATIO_TARGET ? `**met** (${fmt(r, 2)}×)` : `**missed** (${fmt(r, 2)}×)`);
  const perTimer = (t: IsolatedMeasured) => (t.facts.heapPending! - t.facts.heapBefore!) / TIMERS;
  const mb = (b: number) => `${fmt(b / 2 ** 20, 1)} MB`;
  const row = (store: string, t: IsolatedMeasured, s: IsolatedMeasured) =>
    `| ${store} | ${fmt(t.facts.perSec!)} | ${fmt(s.facts.perSec!)} | **${fmt(ratio(t, s), 2)}×** | ${fmt(t.facts.handleMs! / 1000, 2)} s / ${fmt(s.facts.handleMs! / 1000, 2)} s | ${fmt(t.facts.scheduleMs! / 1000, 2)} s (${fmt(TIMERS / (t.facts.scheduleMs! / 1000))}/s) | ${fmt(t.facts.hostTimersMax!)} |`;
  const heapRow = (store: string, t: IsolatedMeasured) =>
    `| ${store} | ${mb(t.facts.heapBefore!)} | ${mb(t.facts.heapPending!)} | ${fmt(perTimer(t))} B | ${mb(t.facts.heapAfterFiring!)} | ${fmt(t.facts.pendingCounted!)} |`;
  return [
    '## Durable timers',
    '',
    `${fmt(TIMERS)} pending durable timers: ${fmt(TIMER_AGENTS)} agents × ${TIMERS_PER_AGENT} timers each, all resident before anything`,
    `is measured (residentCap ${fmt(TIMER_AGENTS)}, runningCap 64), a trivial \`fromTurn\` logic (\`({ state }) => ({ n: state.n + 1 })\`),`,
    `on a \`manualClock()\`. A round of the timer side schedules the ${fmt(TIMERS)} timers from outside`,
    `(\`runtime.schedule(id, { type: 'go' }, { at, key })\`, round-robin over the agents, ${fmt(IN_FLIGHT)} in flight, all at the same`,
    `\`at\`, ${AHEAD / 1000} s ahead; not timed), then is timed from \`clock.advance()\` past the deadline until the ${fmt(TIMERS)}th`,
    '`turn.finished` event. The send side is timed from the first of the same messages sent to the same agents',
    `(\`runtime.send\`, round-robin, without await, one synchronous loop) until the ${fmt(TIMERS)}th \`turn.finished\`.`,
    `\`sqliteStore(<temp file>)\` is WAL, \`synchronous=FULL\`, in ${os.tmpdir()}. Every candidate in its own process`,
    `(bench/isolated.ts, \`--expose-gc\`); medians of ${ROUNDS} rounds after a warm-up round, rounds alternating. Load average`,
    `${load}, on ${os.cpus().length} cores. Checked at the end: every agent finished all its turns (\`get(id).turns\`) and is still resident, no timer pending, no turn failed.`,
    '',
    '| store | timers/s (due → handled) | sends/s (sent → handled) | timers / sends | timers, sends (per round) | scheduling (not timed) | host timers with 100,000 pending |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('`memoryStore()`', memT, memS),
    row('`sqliteStore` FULL', sqlT, sqlS),
    '',
    `- goal timers/s ≥ ${RATIO_TARGET} × sends/s: ${verdict(ratio(memT, memS))} on \`memoryStore()\`, ${verdict(ratio(sqlT, sqlS))} on \`sqliteStore\` FULL.`,
    `- host timers: the manual clock's \`pending()\` after all ${fmt(TIMERS)} schedules were committed (max over the rounds): ${fmt(memT.facts.hostTimersMax!)} (memory), ${fmt(sqlT.facts.hostTimersMax!)} (SQLite); with no timer pending, ${fmt(memT.facts.hostTimersIdle!)} and ${fmt(sqlT.facts.hostTimersIdle!)}.`,
    '',
    `Heap (\`heapUsed\` after full GCs, the whole process) in the timer candidate's first round: before scheduling, with the ${fmt(TIMERS)}`,
    'timers pending (`get(id).timers` summed over the agents, last column), and once they all fired. With `memoryStore()` the',
    'store lives in the same heap, so the figure per timer is the store\'s record plus whatever the runtime keeps; with',
    '`sqliteStore` the timers are on disk and the figure is what the runtime (and the store\'s JS side) keeps per pending timer.',
    '',
    '| store | heap before | with 100,000 pending | per pending timer | after firing | pending counted |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    heapRow('`memoryStore()`', memT),
    heapRow('`sqliteStore` FULL', sqlT),
  ].join('\n');
}
