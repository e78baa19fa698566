/**
 * The agents' logic as XState actors: the logic of each type with the runtime's turn
 * supplied (fromTurn), one actor per resident agent (restored from its snapshot), and the
 * effects a turn produces — messages to send, agents to spawn, outputs — gathered on the
 * turn, to be committed with it.
 */
import { copyPlain } from '../plainCopy.js';
import { createActor, fromPromise, type Actor, type AnyActorRef, type AnyStateMachine } from 'xstate';
import type { Clock } from '../clock.js';
import type { AgentDefinition } from '../defineAgent.js';
import { UnknownAgentTypeError } from '../errors.js';
import type { RuntimeEmitter } from '../events.js';
import { STATE_EVENT, TURN_LOGIC, isTurnLogic, type TurnContext, type TurnInput } from '../fromTurn.js';

const WOKEN = Symbol('woken');

/** An error observer for every agent actor: an actor that errors with none makes XState rethrow from a timer. */
const SILENT = { error: () => {} };

/** The runtime's clock, except that its timers never fire (XState's delays become durable timers). */
function heldClock(clock: Clock): Clock {
  let n = 0;
  return { now: () => clock.now(), setTimeout: () => ++n, clearTimeout: () => {} };
}
import type { Message } from '../store/Store.js';
import { assertAgentId, copyJson, copyMessage } from '../validate.js';
import type { Inspection } from './Inspection.js';
import { assertTimerKey, timerOf } from './Timers.js';
import { durableDelaysSupported } from './delays.js';
import type { Entry, Turn } from './types.js';

export class Actors {
  readonly #logic = new Map<string, AnyStateMachine>();
  readonly #owner = new WeakMap<AnyActorRef, Entry>();
  /** One clock for every machine agent: the runtime's time, timers that never fire. */
  #held: Clock | null = null;

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
    this.#owner.set(actor, entry);
    actor.subscribe(SILENT); // the turn or the load reads the error from the snapshot
    if (!isTurnLogic(entry.def.logic)) {
      actor.on('*', (ev: { type: string; [k: string]: unknown }) => this.#machineEffect(entry, ev));
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
    return actor;
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
