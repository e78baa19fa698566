/**
 * What the runtime benchmarks run: one small XState machine (a counter with `assign`),
 * used both as a residency agent and as a bare XState actor, and a driver that counts
 * handled messages through the `turn.finished` event.
 */
import { assign, emit, setup } from 'xstate';
import { createRuntime, defineAgent, memoryStore, type AgentDefinition, type Runtime, type Store } from '../src/index.js';

export type Inc = { type: 'inc'; by: number };

/** The machine under test: one event, one `assign`. */
export const counterMachine = setup({
  types: { context: {} as { n: number }, events: {} as Inc },
}).createMachine({
  id: 'counter',
  context: { n: 0 },
  on: { inc: { actions: assign({ n: ({ context, event }) => context.n + event.by }) } },
});

export const counterAgent = defineAgent({ type: 'counter', logic: counterMachine });

/**
 * The counter machine with an `emit` action besides (on an event the benches never send):
 * a machine that may emit, whose agents each keep an emit listener (the memory bench).
 */
export const emittingCounterMachine = setup({
  types: { context: {} as { n: number }, events: {} as Inc | { type: 'tell' } },
}).createMachine({
  id: 'counter',
  context: { n: 0 },
  on: {
    inc: { actions: assign({ n: ({ context, event }) => context.n + (event as Inc).by }) },
    tell: { actions: emit({ type: 'told' }) },
  },
});

export const emittingCounterAgent = defineAgent({ type: 'counter', logic: emittingCounterMachine });

export const inc: Inc = { type: 'inc', by: 1 };

export const agentId = (i: number) => `agent-${i}`;

export interface Driven {
  runtime: Runtime;
  store: Store;
  /** Turns finished so far (any outcome). */
  readonly finished: number;
  /** Turns that did not end `done` (must stay 0). */
  readonly failed: number;
  /** Resolves once `n` turns in all have finished. */
  until(n: number): Promise<void>;
}

/**
 * A runtime over `memoryStore()` running the counter agent, with a count of finished turns.
 * `onStore` sees the store before the runtime does (the runtime binds its methods when it
 * starts: a wrapper set later is never called).
 */
export async function drivenRuntime(options: {
  residentCap: number;
  runningCap: number;
  onStore?: (store: Store) => void;
  /** The agent type `counter` (the counter agent by default). */
  agent?: AgentDefinition;
}): Promise<Driven> {
  const { onStore, agent = counterAgent, ...caps } = options;
  const store = memoryStore();
  onStore?.(store);
  const runtime = await createRuntime({ agents: [agent], store, ...caps });
  let finished = 0;
  let failed = 0;
  const waits: { n: number; resolve: () => void }[] = [];
  runtime.on('turn.finished', (e) => {
    finished++;
    if (e.outcome !== 'done') failed++;
    while (waits.length > 0 && finished >= waits[0]!.n) waits.shift()!.resolve();
  });
  return {
    runtime,
    store,
    get finished() {
      return finished;
    },
    get failed() {
      return failed;
    },
    until(n) {
      if (finished >= n) return Promise.resolve();
      return new Promise<void>((resolve) => {
        waits.push({ n, resolve });
        waits.sort((a, b) => a.n - b.n);
      });
    },
  };
}

/** Spawns agents `from … to-1` and makes `from … residentTo-1` resident (one message each, in order). */
export async function populate(d: Driven, to: number, residentTo: number, chunk = 1_000): Promise<void> {
  for (let i = 0; i < to; i += chunk) {
    const spawns: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(to, i + chunk); j++) spawns.push(d.runtime.spawn('counter', { id: agentId(j) }));
    await Promise.all(spawns);
  }
  for (let i = 0; i < residentTo; i += chunk) {
    const k = Math.min(residentTo, i + chunk) - i;
    const done = d.until(d.finished + k);
    for (let j = i; j < i + k; j++) void d.runtime.send(agentId(j), inc);
    await done;
  }
}
