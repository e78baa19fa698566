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
import { assertIntegerAtLeast } from '../validate.js';

export interface TestRuntimeOptions extends Partial<Omit<RuntimeOptions, 'clock'>> {
  agents: RuntimeOptions['agents'];
  /** Start time of the simulated clock (ms). Default 0. */
  now?: number;
}

export interface TestRuntime extends Runtime {
  readonly clock: ManualClock;
  readonly store: Store;
  /**
   * Moves simulated time forward by `ms` (a finite number ≥ 0), firing due timers, then
   * settles (and rejects as `settle()` does).
   */
  advance(ms: number): Promise<void>;
  /**
   * Runs until no turn is running and no message is pending. Every wait is bounded: a
   * round waits at most one turn of the event loop, and after `maxRounds` rounds
   * (default 1,000) without settling it rejects with an Error that names the agents
   * still running and their state. A turn that awaits a promise nothing resolves (in a
   * `fromTurn` function, or in an actor a machine invokes) makes it reject instead of
   * waiting forever.
   */
  settle(maxRounds?: number): Promise<void>;
  /** The agent's rollout as plain data, oldest first. */
  history(id: string): Promise<RolloutEntry[]>;
}

const NOT_YET = Symbol('not yet');
/** One turn of the event loop (everything queued as microtasks has run by then). */
const tick = () => new Promise<typeof NOT_YET>((resolve) => setImmediate(() => resolve(NOT_YET)));
/** `p`'s value if it settles within one turn of the event loop, else NOT_YET. */
const within = <T>(p: Promise<T>): Promise<T | typeof NOT_YET> => Promise.race([p, tick()]);

const BUSY = new Set(['loading', 'running', 'flushing']);

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
  const busy = () => internals.agents().filter((a) => a.inTurn || BUSY.has(a.state));

  async function settle(maxRounds = 1_000): Promise<void> {
    assertIntegerAtLeast(maxRounds, 'maxRounds', 1);
    // A store query that has not answered yet is asked once and awaited across rounds.
    let pendingQuery: Promise<string[]> | null = null;
    for (let round = 0; round < maxRounds; round++) {
      if ((await within(internals.chains())) === NOT_YET) continue;
      await tick();
      if (busy().length > 0) continue;
      pendingQuery ??= store.agentsWithPending();
      const pending = await within(pendingQuery);
      if (pending === NOT_YET) continue;
      pendingQuery = null;
      if (pending.length > 0) continue;
      if ((await within(internals.chains())) === NOT_YET) continue;
      if (busy().length === 0) return;
    }
    throw new Error(await gaveUp(maxRounds));
  }

  /** What still runs, for the error of a settle() that gave up. */
  async function gaveUp(maxRounds: number): Promise<string> {
    const running: string[] = [];
    for (const a of busy()) {
      const parts: string[] = [a.state];
      if (a.inTurn) parts.push('in a turn');
      const record = await within(store.getAgent(a.id).catch(() => null));
      const machine = record && record !== NOT_YET ? runtime.machineOf(record.type) : null;
      const value = machine ? runtime.logicValue(a.id) : undefined;
      const says = value !== undefined && !(typeof value === 'object' && value !== null && Object.keys(value).length === 0);
      if (says) parts.push(`its logic in state ${JSON.stringify(value)}`);
      running.push(`${JSON.stringify(a.id)} (${parts.join(', ')})`);
    }
    const pending = await within(store.agentsWithPending().catch((): typeof NOT_YET => NOT_YET));
    const mail =
      pending === NOT_YET ? 'the store did not say which agents have mail pending' : pending.length ? `mail pending for ${pending.map((id) => JSON.stringify(id)).join(', ')}` : 'no mail pending';
    return (
      `settle() gave up after ${maxRounds} rounds: ` +
      `${running.length ? `still running ${running.join(', ')}` : 'no agent is running'}; ${mail}. ` +
      'A turn that awaits something nothing resolves (a promise, an actor its machine invokes) never finishes; ' +
      'a store that answers only after real I/O may need more rounds: settle(maxRounds)'
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
