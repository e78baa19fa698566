/**
 * Property tests: random sequences of spawn / send / ask / interrupt / close / destroy /
 * hold-release / clock advances across a handful of agents with small caps. After every
 * step: (1) unpinned agents in memory ≤ residentCap, (2) running ≤ runningCap,
 * (3) an agent evicted for the cap or for idleness was idle, with an empty mailbox and
 * unpinned. At the end of each sequence, once everything is released: (4) every
 * accepted message was handled exactly once, in acceptance order, (5) each agent's state
 * equals what it would be had it never been evicted, (7) nothing waits: every mailbox
 * drained and no request is queued. The seed is printed; rerun with RESIDENCY_SEED=<n>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { manualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { INTERNALS, type RuntimeInternals } from '../../src/runtime/internals.js';
import type { Store } from '../../src/store/Store.js';
import { counterAgent, deferred, flush, type Deferred, type Handled } from './helpers.js';

const seed = process.env.RESIDENCY_SEED ? Number(process.env.RESIDENCY_SEED) : Date.now() % 2 ** 31;
const IDS = ['a', 'b', 'c', 'd', 'e'];

type Op =
  | { op: 'spawn'; agent: number; pinned: boolean }
  | { op: 'send'; agent: number; hold: boolean }
  | { op: 'ask'; agent: number }
  | { op: 'release' }
  | { op: 'interrupt'; agent: number }
  | { op: 'close'; agent: number }
  | { op: 'destroy'; agent: number }
  | { op: 'advance'; ms: number }
  | { op: 'settle' };

const agent = fc.integer({ min: 0, max: IDS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ op: fc.constant('spawn' as const), agent, pinned: fc.constantFrom(false, false, false, false, true) }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('send' as const), agent, hold: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('ask' as const), agent }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('release' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('interrupt' as const), agent }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), agent }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('destroy' as const), agent }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40_000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('settle' as const) }) },
);

interface World {
  runtime: Runtime;
  internals: RuntimeInternals;
  store: Store;
  clock: ReturnType<typeof manualClock>;
  handled: Handled;
  holds: Map<string, Deferred>;
  problems: string[];
  spawned: Set<string>;
  pinned: Set<string>;
  residentCap: number;
  runningCap: number;
  nextN: number;
  background: Promise<unknown>[];
}

async function makeWorld(residentCap: number, runningCap: number): Promise<World> {
  const handled: Handled = new Map();
  const holds = new Map<string, Deferred>();
  const store = memoryStore();
  const clock = manualClock(0);
  const runtime = await createRuntime({
    agents: [counterAgent(handled, holds)],
    residentCap,
    runningCap,
    idleTimeout: 30_000,
    store,
    clock,
  });
  const internals = (runtime as unknown as Record<symbol, () => RuntimeInternals>)[INTERNALS]!();
  const w: World = {
    runtime, internals, store, clock, handled, holds, problems: [], spawned: new Set(), pinned: new Set(),
    residentCap, runningCap, nextN: 0, background: [],
  };
  // (3) checked at the moment of eviction, from the lifecycle's own view.
  runtime.on('agent.evicting', (e) => {
    if (e.reason !== 'cap' && e.reason !== 'idle') return;
    const v = internals.agents().find((a) => a.id === e.id);
    if (!v || v.mailbox !== 0 || v.pinned || v.inTurn) {
      w.problems.push(`(3) ${e.id} evicted (${e.reason}) with ${JSON.stringify(v)}`);
    }
  });
  return w;
}

function checkCaps(w: World, when: string): void {
  const agents = w.internals.agents();
  const inMemory = agents.filter((a) => ['loading', 'idle', 'running', 'flushing'].includes(a.state) && !a.pinned).length;
  const running = agents.filter((a) => a.state === 'running').length;
  const books = w.internals.books();
  if (inMemory > w.residentCap) w.problems.push(`(1) ${inMemory} unpinned agents in memory, cap ${w.residentCap} (${when})`);
  if (books.phase.size > w.residentCap) w.problems.push(`(1) supervisor books ${books.phase.size} slots, cap ${w.residentCap} (${when})`);
  if (running > w.runningCap) w.problems.push(`(2) ${running} running, cap ${w.runningCap} (${when})`);
}

const quiet = (p: Promise<unknown>) => p.catch(() => undefined);

async function step(w: World, o: Op): Promise<void> {
  const id = 'agent' in o ? IDS[o.agent]! : '';
  switch (o.op) {
    case 'spawn':
      await quiet(w.runtime.spawn('counter', { id, pinned: o.pinned }).then(() => {
        w.spawned.add(id);
        if (o.pinned) w.pinned.add(id);
      }));
      return;
    case 'send': {
      const n = w.nextN++;
      const message = o.hold ? { type: 'hold', key: `k${n}`, n } : { type: 'inc', n };
      if (o.hold) w.holds.set(`k${n}`, deferred());
      await quiet(w.runtime.send(id, message));
      return;
    }
    case 'ask':
      w.background.push(quiet(w.runtime.ask(id, { type: 'inc', n: w.nextN++ })));
      return;
    case 'release':
      for (const d of w.holds.values()) d.resolve();
      return;
    case 'interrupt':
      await quiet(w.runtime.interrupt(id));
      return;
    case 'close':
      w.background.push(quiet(w.runtime.close(id)));
      return;
    case 'destroy':
      w.background.push(
        quiet(w.runtime.destroy(id).then(() => {
          w.spawned.delete(id);
          w.pinned.delete(id);
          w.handled.delete(id);
        })),
      );
      return;
    case 'advance':
      w.clock.advance(o.ms);
      return;
    case 'settle':
      await flush(10);
      return;
  }
}

/** Releases everything and lets the runtime finish all it can. */
async function settle(w: World): Promise<void> {
  for (let round = 0; round < 200; round++) {
    for (const d of w.holds.values()) d.resolve();
    await Promise.all(w.background);
    await w.internals.chains();
    await flush(3);
    const busy = w.internals.agents().some((a) => a.inTurn || ['loading', 'running', 'flushing'].includes(a.state));
    if (!busy && (await w.store.agentsWithPending()).length === 0) return;
  }
  w.problems.push(`(7) the runtime did not settle: ${JSON.stringify(w.internals.agents())}, pending ${JSON.stringify(await w.store.agentsWithPending())}`);
}

async function checkEnd(w: World): Promise<void> {
  const books = w.internals.books();
  if (books.slotQueue.size > 0 || books.permitQueue.size > 0) {
    w.problems.push(`(7) requests still queued after settling: ${books.slotQueue.size} slots, ${books.permitQueue.size} permits`);
  }
  for (const id of w.spawned) {
    const rollout = await w.store.rollout(id);
    const accepted = rollout.filter((e) => e.kind === 'accepted') as { seq: number; message: { n?: number; type: string } }[];
    const finished = rollout.filter((e) => e.kind === 'turn.finished') as { seq: number; outcome: string }[];
    // (4) every accepted message handled exactly once, in acceptance order.
    const seqs = finished.map((f) => f.seq);
    const want = accepted.map((a) => a.seq);
    if (JSON.stringify(seqs) !== JSON.stringify(want)) {
      w.problems.push(`(4) ${id}: accepted seqs ${JSON.stringify(want)}, turns finished for ${JSON.stringify(seqs)}`);
      continue;
    }
    const done = accepted.filter((_, i) => finished[i]!.outcome === 'done');
    const byLogic = w.handled.get(id) ?? [];
    const expected = done.map((a) => String(a.message.n));
    if (JSON.stringify(byLogic) !== JSON.stringify(expected)) {
      w.problems.push(`(4) ${id}: the logic handled ${JSON.stringify(byLogic)}, the done turns were ${JSON.stringify(expected)}`);
    }
    // (5) the state equals the never-evicted state: count and order of done turns.
    const snap = (await w.store.loadSnapshot(id)) as { context?: { state?: { count: number; seen: unknown[] } } } | null;
    const state = snap?.context?.state ?? { count: 0, seen: [] };
    const model = { count: done.length, seen: done.map((a) => a.message.n) };
    if (JSON.stringify(state) !== JSON.stringify(model)) {
      w.problems.push(`(5) ${id}: stored state ${JSON.stringify(state)}, never-evicted state ${JSON.stringify(model)}`);
    }
  }
}

describe('runtime property tests', () => {
  for (const [residentCap, runningCap, runs] of [
    [2, 1, 600],
    [3, 2, 400],
  ] as const) {
    it(`holds the invariants over ${runs} random sequences (residentCap ${residentCap}, runningCap ${runningCap})`, async () => {
      console.log(`runtime property test (cap ${residentCap}/${runningCap}): seed ${seed}`);
      let steps = 0;
      const totals = { turns: 0, evictions: 0, loads: 0 };
      await fc.assert(
        fc.asyncProperty(fc.array(fc.boolean(), { minLength: IDS.length, maxLength: IDS.length }), fc.array(opArb, { minLength: 10, maxLength: 60, size: 'max' }), async (pins, ops) => {
          const w = await makeWorld(residentCap, runningCap);
          // Every agent exists from the start (one in five pinned); destroy and spawn vary it.
          for (const [i, pinned] of pins.entries()) await step(w, { op: 'spawn', agent: i, pinned: pinned && i === 0 });
          for (const o of ops) {
            await step(w, o);
            await flush(2);
            steps++;
            checkCaps(w, JSON.stringify(o));
          }
          await settle(w);
          checkCaps(w, 'end');
          await checkEnd(w);
          totals.turns += (await Promise.all([...w.spawned].map((id) => w.store.rollout(id)))).flat().filter((e) => e.kind === 'turn.finished').length;
          totals.evictions += w.runtime.stats().evictions;
          totals.loads += w.runtime.stats().loads;
          await w.runtime.stop();
          if (w.problems.length) throw new Error(w.problems.join('\n'));
        }),
        { numRuns: runs, seed },
      );
      console.log(`  ${steps} steps checked; ${totals.turns} turns, ${totals.loads} loads, ${totals.evictions} evictions`);
      expect(steps).toBeGreaterThan(runs * 10);
      expect(totals.evictions).toBeGreaterThan(runs);
      expect(totals.turns).toBeGreaterThan(runs * 5);
    });
  }
});
