/**
 * The agents' logic as XState actors: the logic of each type with the runtime's turn
 * supplied (fromTurn), one actor per resident agent (restored from its snapshot), and the
 * effects a turn produces — messages to send, agents to spawn, outputs — gathered on the
 * turn, to be committed with it.
 */
import { createActor, fromPromise, type Actor, type AnyActorRef, type AnyStateMachine } from 'xstate';
import type { Clock } from '../clock.js';
import type { AgentDefinition } from '../defineAgent.js';
import { UnknownAgentTypeError } from '../errors.js';
import type { RuntimeEmitter } from '../events.js';
import { STATE_EVENT, TURN_LOGIC, isTurnLogic, type TurnContext, type TurnInput } from '../fromTurn.js';

const WOKEN = Symbol('woken');

/**
 * The error observer of every agent actor (an actor that errors with none makes XState
 * rethrow from a timer), one object for all of them: `subscribe` would make an observer
 * and bind its `error` per actor (96 B; about 550 B when the function's name was set by a
 * transpiler, as tsx does, which makes each bound copy a slow-mode object).
 */
const SILENT: { next: undefined; error: (err: unknown) => void; complete: undefined } = { next: undefined, error: () => {}, complete: undefined };

/** Whether a machine has an action that may emit (XState's `emit`, or `enqueueActions`, which can); by machine. */
const emitting = new WeakMap<AnyStateMachine, boolean>();

/**
 * Whether the machine may ever emit an event: it has an `emit` action, or an
 * `enqueueActions` (which may enqueue one), inline or named, anywhere (entry, exit, any
 * transition: events, `always`, `after`, done and error of invokes). Only those reach an
 * actor's `on` listeners (a custom action function cannot emit); anything not recognised
 * counts as emitting. A machine that never emits needs no listener per actor (about 300 B).
 */
export function mayEmit(machine: AnyStateMachine): boolean {
  let found = emitting.get(machine);
  if (found !== undefined) return found;
  const named = ((machine.implementations as { actions?: Record<string, unknown> } | undefined)?.actions ?? {}) as Record<string, unknown>;
  const emits = (action: unknown, depth: number): boolean => {
    if (depth > 8) return true;
    if (action == null) return false;
    if (Array.isArray(action)) return action.some((a) => emits(a, depth + 1));
    if (typeof action === 'string') return action in named ? emits(named[action], depth + 1) : false;
    if (typeof action === 'function') {
      const type = (action as { type?: unknown }).type;
      if (type === 'xstate.emit' || type === 'xstate.enqueueActions') return true;
      return false; // another built-in action (assign, raise, sendTo …) or a custom function: neither emits
    }
    if (typeof action === 'object' && typeof (action as { type?: unknown }).type === 'string') {
      const type = (action as { type: string }).type; // a named action with params
      return type in named ? emits(named[type], depth + 1) : false;
    }
    return true;
  };
  found = false;
  try {
    const nodes: unknown[] = [machine.root];
    while (nodes.length > 0 && !found) {
      const n = nodes.pop() as {
        states?: Record<string, unknown>;
        entry?: unknown[];
        exit?: unknown[];
        transitions?: Map<string, { actions?: unknown[] }[]>;
        always?: { actions?: unknown[] }[];
        after?: { actions?: unknown[] }[];
      };
      if (!n || typeof n !== 'object' || !(n.transitions instanceof Map)) {
        found = true;
        break;
      }
      const transitions = [...[...n.transitions.values()].flat(), ...(n.always ?? []), ...(n.after ?? [])];
      found = emits(n.entry, 0) || emits(n.exit, 0) || transitions.some((t) => emits(t.actions, 0));
      nodes.push(...Object.values(n.states ?? {}));
    }
  } catch {
    found = true;
  }
  emitting.set(machine, found);
  return found;
}

/** Adds the shared error observer to the actor: to its observer set when XState's is there, else by `subscribe`. */
function silence(actor: AnyActorRef): void {
  const observers = (actor as unknown as { observers?: unknown }).observers;
  if (observers instanceof Set) observers.add(SILENT);
  else actor.subscribe(SILENT);
}

/** The runtime's clock, except that its timers never fire (XState's delays become durable timers). */
function heldClock(clock: Clock): Clock {
  let n = 0;
  return { now: () => clock.now(), setTimeout: () => ++n, clearTimeout: () => {} };
}
import type { Message } from '../store/Store.js';
import { assertAgentId, copyJson, copyMessage, copyPlain } from '../validate.js';
import type { Inspection } from './Inspection.js';
import { assertTimerKey, timerOf } from './Timers.js';
import { durableDelaysSupported } from './delays.js';
import type { Entry, Turn } from './types.js';

export class Actors {
  readonly #logic = new Map<string, AnyStateMachine>();
  readonly #owner = new WeakMap<AnyActorRef, Entry>();
  /** One clock for every machine agent: the runtime's time, timers that never fire. */
  #held: Clock | null = null;
  /** What a running agent actor keeps as its options, by clock (see #settleOptions). */
  readonly #startedOptions = new Map<unknown, { clock: unknown; logger: unknown; devTools: unknown }>();

  constructor(
    private readonly o: {
      definitions: Map<string, AgentDefinition>;
      clock: Clock;
      emitter: RuntimeEmitter;
      newId: () => string;
    },
    private readonly inspection: Inspection,
  ) {}

  /** The definition's logic with the runtime's turn supplied (once per type). */
  logicOf(def: AgentDefinition): AnyStateMachine {
    let logic = this.#logic.get(def.type);
    if (logic) return logic;
    if (isTurnLogic(def.logic)) {
      const { fn } = def.logic[TURN_LOGIC];
      logic = def.logic.provide({
        actors: {
          turn: fromPromise<unknown, TurnInput>(async ({ input, self }) => {
            const parent = (self as unknown as { _parent?: AnyActorRef })._parent;
            const entry = parent ? this.#owner.get(parent) : undefined;
            const turn = entry?.turn;
            if (!entry || !turn) throw new Error('a turn ran outside the runtime');
            try {
              const next = await fn(this.#turnContext(entry, turn, input.state, input.message));
              // Copied once and checked: what is committed is exactly what was checked.
              return copyJson(next, 'the state returned by the turn');
            } catch (err) {
              turn.error ??= { thrown: err };
              return input.state;
            }
          }),
        },
      });
    } else {
      logic = def.logic;
    }
    this.#logic.set(def.type, logic);
    return logic;
  }

  /**
   * Runs a fromTurn turn: calls the turn function and hands its result, copied and
   * checked, to the agent's machine (`STATE_EVENT`). Resolves when the function settled,
   * or at once when the turn is interrupted (its result is then dropped).
   */
  async runTurnFunction(entry: Entry, turn: Turn): Promise<void> {
    const { fn } = (entry.def.logic as AnyStateMachine & { [TURN_LOGIC]: { fn: (ctx: TurnContext<unknown>) => unknown } })[TURN_LOGIC];
    const actor = entry.actor!;
    const state = (actor.getSnapshot().context as { state: unknown }).state;
    let next: unknown;
    try {
      const result = fn(this.#turnContext(entry, turn, state, turn.message));
      if (result instanceof Promise || (typeof result === 'object' && result !== null && typeof (result as PromiseLike<unknown>).then === 'function')) {
        const woken = new Promise<typeof WOKEN>((resolve) => (turn.wake = () => resolve(WOKEN)));
        const settled = await Promise.race([result as Promise<unknown>, woken]);
        turn.wake = null;
        if (settled === WOKEN) return; // interrupted or destroyed: the result is dropped
        next = settled;
      } else {
        next = result;
      }
      next = copyJson(next, 'the state returned by the turn'); // copied once: what is committed is what was checked
    } catch (err) {
      turn.error ??= { thrown: err };
      return;
    }
    if (turn.interrupted || entry.destroyed) return;
    actor.send({ type: STATE_EVENT, state: next } as never);
  }

  #turnContext(entry: Entry, turn: Turn, state: unknown, message: Message): TurnContext<unknown> {
    return {
      state: copyPlain(state),
      message: copyPlain(message),
      get signal() {
        turn.abort ??= new AbortController();
        if (turn.interrupted && !turn.abort.signal.aborted) turn.abort.abort(new Error('interrupted'));
        return turn.abort.signal;
      },
      self: entry.id,
      send: (to, msg) => this.send(turn, to, msg),
      spawn: (type, options) => this.spawn(entry, turn, type, options),
      emit: (output) => {
        turn.outputs.push(copyJson(output, 'an output'));
      },
      schedule: (message, options) => {
        const timer = timerOf(entry.id, message, options, this.o.clock.now(), () => `t.${this.o.newId()}`);
        turn.timers ??= { schedule: [], cancel: [] };
        turn.timers.schedule = turn.timers.schedule.filter((t) => t.key !== timer.key);
        turn.timers.cancel = turn.timers.cancel.filter((k) => k !== timer.key);
        turn.timers.schedule.push(timer);
        return timer.key;
      },
      cancel: (key) => {
        assertTimerKey(key);
        turn.timers ??= { schedule: [], cancel: [] };
        turn.timers.schedule = turn.timers.schedule.filter((t) => t.key !== key);
        if (!turn.timers.cancel.includes(key)) turn.timers.cancel.push(key);
      },
    };
  }

  /** A message the turn sends: committed with the turn, delivered after. */
  send(turn: Turn, to: string, message: Message): void {
    assertAgentId(to, 'to');
    turn.outbox.push({ agentId: to, messageId: this.o.newId(), message: copyMessage(message), at: this.o.clock.now() });
  }

  /** An agent the turn spawns: created with the turn's commit. */
  spawn(entry: Entry, turn: Turn, type: string, options: { id: string; input?: unknown; pinned?: boolean }): string {
    if (typeof type !== 'string' || !this.o.definitions.has(type)) throw new UnknownAgentTypeError(String(type), [...this.o.definitions.keys()]);
    assertAgentId(options?.id, 'id');
    turn.spawned.push({
      id: options.id,
      type,
      parent: entry.id,
      pinned: options.pinned === true,
      input: options.input === undefined ? null : copyJson(options.input, 'input'),
      createdAt: this.o.clock.now(),
    });
    return options.id;
  }

  /**
   * A started actor of the agent's logic, from a stored snapshot (or fresh). Throws when
   * the snapshot does not restore; the actor is never started then. Every actor has an
   * error observer from the start: an actor that errors with none makes XState rethrow
   * the error from a timer, which would end the process.
   */
  create(entry: Entry, snapshot: unknown | null): Actor<AnyStateMachine> {
    const logic = this.logicOf(entry.def);
    const input = entry.record.input;
    // A machine's own delays (`after`, delayed raise/sendTo) never fire in memory: XState
    // keeps them in its scheduler, the runtime keeps each as a durable timer (delays.ts),
    // and its event comes back as a message, handled as a turn like any other.
    const clock = isTurnLogic(entry.def.logic) || !durableDelaysSupported() ? this.o.clock : (this.#held ??= heldClock(this.o.clock));
    const actor = createActor(logic, snapshot == null ? { input, clock } : { snapshot: snapshot as never, input, clock });
    const initial = actor.getSnapshot() as { status: string; error?: unknown };
    if (initial.status === 'error') throw initial.error ?? new Error('the snapshot does not restore');
    // The fromTurn logic finds its agent from its actor (machine agents need no such entry).
    if (isTurnLogic(entry.def.logic)) this.#owner.set(actor, entry);
    silence(actor); // the turn or the load reads the error from the snapshot
    if (!isTurnLogic(entry.def.logic) && mayEmit(logic)) {
      actor.on('*', this.#machineEffect.bind(this, entry)); // bound: lighter than a closure and its context
    }
    this.inspection.created(entry.id, actor);
    try {
      actor.start();
    } catch (err) {
      this.inspection.stop(actor);
      throw err;
    }
    const started = actor.getSnapshot() as { status: string; error?: unknown };
    if (started.status === 'error') {
      this.inspection.stop(actor);
      throw started.error ?? new Error('the logic failed as it started');
    }
    this.#settleOptions(actor);
    return actor;
  }

  /**
   * XState reads an actor's options only while it makes and starts the actor, but keeps
   * them for the actor's life: the agent's input, the stored snapshot it was restored from
   * (a resident idle agent keeps none: Entry.lastPersisted is dropped on idle too), and,
   * since they are XState's defaults spread with keys the defaults lack, a hidden class of
   * their own (about 230 B per agent). Once the actor runs, one shared object per clock
   * takes their place, with what XState's defaults hold (clock, logger, devTools).
   */
  #settleOptions(actor: AnyActorRef): void {
    const own = actor as unknown as { options?: { clock?: unknown; logger?: unknown; devTools?: unknown } };
    const o = own.options;
    if (!o || typeof o !== 'object') return;
    let shared = this.#startedOptions.get(o.clock);
    if (!shared || shared.logger !== o.logger || shared.devTools !== o.devTools) {
      shared = { clock: o.clock, logger: o.logger, devTools: o.devTools };
      this.#startedOptions.set(o.clock, shared);
    }
    own.options = shared;
  }

  /** An event emitted by a machine agent: an effect for the runtime, or an output. */
  #machineEffect(entry: Entry, ev: { type: string; [k: string]: unknown }): void {
    const turn = entry.turn;
    if (!turn || turn.phase !== 'running') {
      this.o.emitter.emit('error', () => ({
        id: entry.id,
        at: this.o.clock.now(),
        error: new Error(`agent "${entry.id}" emitted "${ev.type}" outside a turn; it was dropped`),
        where: 'emit',
      }));
      return;
    }
    try {
      if (ev.type === 'agent.send') this.send(turn, ev.to as string, ev.message as Message);
      else if (ev.type === 'agent.spawn') this.spawn(entry, turn, ev.agentType as string, ev as never);
      else turn.outputs.push(copyJson(ev, 'an emitted event'));
    } catch (err) {
      turn.error ??= { thrown: err };
    }
  }
}
