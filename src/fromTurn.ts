/**
 * `fromTurn`: a turn function as agent logic.
 *
 * The turn function gets the agent's state and one message and returns the next state.
 * Under the hood it is a small XState machine holding that state, so both kinds of logic
 * are XState actors to the runtime: snapshots, restore and inspection work the same way.
 * The runtime calls the turn function itself and hands the machine the state it returned
 * (a `residency.state` event): no actor is created per turn. (The machine's `running`
 * state, with the turn invoked as a promise actor, is kept so that older snapshots and
 * direct use of the machine still work.)
 */
import { assign, fromPromise, setup, type AnyStateMachine } from 'xstate';
import type { Message } from './store/Store.js';

export interface SpawnOptions {
  id: string;
  input?: unknown;
  pinned?: boolean;
}

export interface TurnContext<S> {
  /** The agent's state before this turn (a copy: changing it changes nothing). */
  state: S;
  /** The message being handled. */
  message: Message;
  /** Fires when the turn is interrupted or the runtime stops. */
  signal: AbortSignal;
  /** The agent's id. */
  self: string;
  /** Sends a message to another agent; it is delivered when this turn commits. */
  send(to: string, message: Message): void;
  /** Spawns a sub-agent (its `parent` is this agent) when this turn commits. Returns its id. */
  spawn(type: string, options: SpawnOptions): string;
  /** Emits an output: `ask()` returns the outputs of the turn. */
  emit(output: unknown): void;
  /**
   * Schedules a message to this agent (a durable timer), in `delay` ms or `at` a time; a
   * second schedule with the same `key` replaces the first. Takes effect when the turn
   * commits (a failed turn schedules nothing). Returns the key.
   */
  schedule(message: Message, options?: { delay?: number; at?: number; key?: string }): string;
  /** Cancels this agent's timer `key` when the turn commits. */
  cancel(key: string): void;
}

export type TurnFunction<S> = (ctx: TurnContext<S>) => Promise<S> | S;

export interface FromTurnOptions<S> {
  /** The state of a new agent, or a function of the spawn input. */
  initialState: S | ((input: unknown) => S);
}

/** What the runtime needs to run a `fromTurn` agent. @internal */
export interface TurnLogicInfo<S = unknown> {
  fn: TurnFunction<S>;
}

/** @internal Marks a machine made by `fromTurn`. */
export const TURN_LOGIC = Symbol.for('residency.turnLogic');

/** @internal The input of the invoked turn. */
export interface TurnInput {
  state: unknown;
  message: Message;
}

/** @internal Sent by the runtime to abort a running turn. */
export const INTERRUPT_EVENT = 'residency.interrupt';

/**
 * @internal Sent by the runtime with the state a turn returned: the runtime calls the turn
 * function itself (no child actor per turn) and hands the machine its result.
 */
export const STATE_EVENT = 'residency.state';

/**
 * Wraps a turn function as agent logic.
 *
 * @example
 * const counter = fromTurn(async ({ state, message }) => ({ count: state.count + 1, last: message.type }), {
 *   initialState: { count: 0, last: '' },
 * });
 */
export function fromTurn<S>(fn: TurnFunction<S>, options: FromTurnOptions<S>): AnyStateMachine & { [TURN_LOGIC]: TurnLogicInfo<S> } {
  if (typeof fn !== 'function') {
    throw new TypeError(`Expected the turn function to be a function, got \`${String(fn)}\` (${typeof fn})`);
  }
  if (!options || typeof options !== 'object' || !('initialState' in options)) {
    throw new TypeError('Expected fromTurn options with an `initialState`, e.g. fromTurn(fn, { initialState: {} })');
  }
  const { initialState } = options;
  const machine = setup({
    types: {
      context: {} as { state: S },
      input: {} as unknown,
      events: {} as Message,
    },
    actors: {
      // The runtime supplies the real turn (it needs the agent's effects) with .provide().
      turn: fromPromise<S, TurnInput>(async () => {
        throw new Error('fromTurn logic runs inside a residency runtime');
      }),
    },
  }).createMachine({
    id: 'turn',
    context: ({ input }) => ({
      state:
        typeof initialState === 'function'
          ? (initialState as (input: unknown) => S)(input)
          : (structuredClone(initialState) as S),
    }),
    initial: 'idle',
    states: {
      idle: {
        on: {
          [INTERRUPT_EVENT]: {},
          [STATE_EVENT]: { actions: assign({ state: ({ event }) => (event as unknown as { state: S }).state }) },
          '*': { target: 'running' },
        },
      },
      running: {
        invoke: {
          src: 'turn',
          input: ({ context, event }) => ({ state: context.state, message: event as Message }),
          onDone: { target: 'idle', actions: assign({ state: ({ event }) => event.output as S }) },
          // A failed turn leaves the state as it was; the runtime records the failure.
          onError: { target: 'idle' },
        },
        on: { [INTERRUPT_EVENT]: { target: 'idle' } },
      },
    },
  });
  return Object.assign(machine, { [TURN_LOGIC]: { fn } as TurnLogicInfo<S> });
}

/** @internal */
export function isTurnLogic(logic: unknown): logic is AnyStateMachine & { [TURN_LOGIC]: TurnLogicInfo } {
  return typeof logic === 'object' && logic !== null && TURN_LOGIC in logic;
}
