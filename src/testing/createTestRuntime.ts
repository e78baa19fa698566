/**
 * `createTestRuntime`: a runtime for tests. It runs on `memoryStore()` (or a store you
 * give) with a simulated clock, so timers (idle timeouts, ask timeouts, your machines'
 * `after` delays) fire only when the test calls `advance(ms)`. Nothing runs on real
 * time; scheduling is deterministic for the same calls.
 *
 * @example
 * const t = await createTestRuntime({ agents: [chat] });
 * await t.spawn('chat', { id: 'alice' });
 * await t.send('alice', { type: 'hi' });
 * await t.settle();
 * await t.history('alice'); // => [{ kind: 'accepted', … }, { kind: 'turn.started', … }, …]
 */
import { createRuntime, type Runtime, type RuntimeOptions } from '../createRuntime.js';
import { manualClock, type ManualClock } from '../clock.js';
import { INTERNALS, type RuntimeInternals } from '../runtime/internals.js';
import { memoryStore } from '../store/memoryStore.js';
import type { RolloutEntry, Store } from '../store/Store.js';

export interface TestRuntimeOptions extends Partial<Omit<RuntimeOptions, 'clock'>> {
  agents: RuntimeOptions['agents'];
  /** Start time of the simulated clock (ms). Default 0. */
  now?: number;
}

export interface TestRuntime extends Runtime {
  readonly clock: ManualClock;
  readonly store: Store;
  /** Moves simulated time forward, firing due timers, then settles. */
  advance(ms: number): Promise<void>;
  /**
   * Runs until no turn is running and no message is pending. Turns must be able to
   * finish without outside help (a turn awaiting a promise the test never resolves
   * would keep it waiting: settle gives up after `maxRounds` and says what still runs).
   */
  settle(maxRounds?: number): Promise<void>;
  /** The agent's rollout as plain data, oldest first. */
  history(id: string): Promise<RolloutEntry[]>;
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function createTestRuntime(options: TestRuntimeOptions): Promise<TestRuntime> {
  const clock = manualClock(options.now ?? 0);
  const store = options.store ?? memoryStore();
  const runtime = await createRuntime({
    residentCap: 8,
    runningCap: 1,
    ...options,
    store,
    clock,
  });
  const internals = (runtime as unknown as Record<symbol, () => RuntimeInternals>)[INTERNALS]!();

  async function settle(maxRounds = 1_000): Promise<void> {
    for (let round = 0; round < maxRounds; round++) {
      await internals.chains();
      await tick();
      const busy = internals.agents().filter((a) => a.inTurn || a.state === 'loading' || a.state === 'running' || a.state === 'flushing');
      if (busy.length === 0 && (await store.agentsWithPending()).length === 0) {
        await internals.chains();
        if (internals.agents().every((a) => !a.inTurn && a.state !== 'loading' && a.state !== 'running' && a.state !== 'flushing')) return;
      }
    }
    const busy = internals.agents().filter((a) => a.state !== 'idle' && a.state !== 'unloaded');
    throw new Error(
      `settle() gave up after ${maxRounds} rounds: still busy ${JSON.stringify(busy)}, pending mail for ${JSON.stringify(await store.agentsWithPending())}`,
    );
  }

  const t: TestRuntime = Object.assign(Object.create(null) as object, runtime, {
    clock,
    store,
    async advance(ms: number) {
      clock.advance(ms);
      await settle();
    },
    settle,
    history: (id: string) => store.rollout(id),
  }) as TestRuntime;
  Object.defineProperty(t, INTERNALS, { enumerable: false, value: (runtime as unknown as Record<symbol, unknown>)[INTERNALS] });
  return t;
}
