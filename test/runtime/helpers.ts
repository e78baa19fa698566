/**
 * Helpers for runtime tests: deferred turns (held open until the test releases them),
 * a counter agent and a door statechart agent, an event recorder, and `until()`, which yields to the event loop until a condition
 * holds (it gives up only after a number of turns of the loop and 10 s: it never waits a fixed time for anything).
 */
import { createMachine } from 'xstate';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import type { Runtime } from '../../src/createRuntime.js';
import type { Store } from '../../src/store/Store.js';
import type { RuntimeEventName, RuntimeEvents } from '../../src/events.js';

export async function until(condition: () => boolean, what = 'condition', maxTurns = 5_000): Promise<void> {
  const started = performance.now();
  for (let i = 0; ; i++) {
    if (condition()) return;
    // Gives up after maxTurns turns of the event loop and 10 s at least: a sqliteStore writes
    // on its writer thread, in real time, however few turns the loop makes meanwhile.
    if (i >= maxTurns && performance.now() - started >= 10_000) break;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error(`gave up waiting for ${what} after ${maxTurns} event-loop turns and 10 s`);
}

/** Lets every pending promise and immediate run (no timers). */
export async function flush(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A log of every handled message, per agent, in order. */
export type Handled = Map<string, string[]>;

/**
 * A counter agent: its state counts messages and lists their `n` fields; every message
 * handled is also recorded in `handled` (outside the agent, for exactly-once checks).
 * A message `{ type: 'hold', key }` waits until `holds.get(key)` is resolved;
 * `{ type: 'fail' }` throws; `{ type: 'forward', to }` sends `{ type: 'ping' }` to `to`.
 */
export function counterAgent(handled: Handled, holds = new Map<string, Deferred>()) {
  return defineAgent({
    type: 'counter',
    logic: fromTurn<{ count: number; seen: unknown[] }>(
      async ({ state, message, self, send, emit, signal }) => {
        if (message.type === 'hold') {
          const d = holds.get(String(message.key)) ?? deferred();
          holds.set(String(message.key), d);
          await Promise.race([
            d.promise,
            new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))),
          ]);
        }
        if (message.type === 'fail') throw new Error('planned failure');
        if (message.type === 'forward') send(String(message.to), { type: 'ping', from: self });
        const list = handled.get(self) ?? [];
        list.push(String(message.n ?? message.type));
        handled.set(self, list);
        emit({ handled: message.n ?? message.type });
        return { count: state.count + 1, seen: [...state.seen, message.n ?? message.type] };
      },
      { initialState: { count: 0, seen: [] } },
    ),
  });
}

/**
 * A door whose logic is a statechart of its own: `closed` → `opened` (`wide` → `ajar`) →
 * `closed`. For the inspector's drawings of an agent's own machine.
 */
export function doorAgent() {
  return defineAgent({
    type: 'door',
    logic: createMachine({
      id: 'door',
      initial: 'closed',
      states: {
        closed: { on: { open: 'opened' } },
        opened: { initial: 'wide', on: { close: 'closed' }, states: { wide: { on: { narrow: 'ajar' } }, ajar: {} } },
      },
    }),
  });
}

export function record<K extends RuntimeEventName>(runtime: Runtime, name: K): RuntimeEvents[K][] {
  const out: RuntimeEvents[K][] = [];
  runtime.on(name, (e) => out.push(e));
  return out;
}

/** A store that forwards to `inner` (every method bound to it), with some methods replaced. */
export function wrapStore(inner: Store, overrides: Partial<Store>): Store {
  const out = {} as Record<string, unknown>;
  for (const key of Object.keys(inner) as (keyof Store)[]) {
    const v = inner[key];
    out[key] = typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(inner) : v;
  }
  return Object.assign(out, overrides) as unknown as Store;
}
