/**
 * The host of resident agents: it runs the two statecharts for real. It keeps, per
 * agent that is in memory or has work, an entry with its lifecycle (the agent statechart,
 * run by a small interpreter verified against XState: Lifecycle.ts) and (while
 * resident) its logic actor, carries out the lifecycle's effects (load, turn, flush)
 * as store operations chained per agent, and sends the results back in as events.
 *
 * Agents with no entry are unloaded with an empty mailbox: nothing is kept for them
 * here beyond what the store holds.
 */
import { createActor, fromPromise, type Actor, type AnyActorRef, type AnyStateMachine, type InspectionEvent, type Subscription } from 'xstate';
import { agentMachine, lifecycleOf, type AgentContext, type AgentEvent, type EvictReason, type LifecycleState } from '../../machines/agent.js';
import { supervisorMachine, type SupervisorContext, type SupervisorEffects, type SupervisorEvent } from '../../machines/supervisor.js';
import { agentEventFor, supervisorBoundActions } from '../../machines/protocol.js';
import { Lifecycle } from './Lifecycle.js';
import type { PolicyFactory } from '../../machines/policy.js';
import type { Clock } from '../clock.js';
import type { AgentDefinition } from '../defineAgent.js';
import { AgentExistsError, AgentNotFoundError, StoreCorruptionError, TurnFailedError } from '../errors.js';
import type { RuntimeEmitter } from '../events.js';
import { INTERRUPT_EVENT, TURN_LOGIC, isTurnLogic, type TurnContext, type TurnInput } from '../fromTurn.js';
import type { AgentRecord, AppendRequest, Json, Message, Store, TurnOutcome } from '../store/Store.js';
import { assertAgentId, assertJson, assertMessage } from '../validate.js';
import { SUPERVISOR_SESSION_ID, SessionIds, isStatelyEvent } from '../inspector/stately.js';

export interface TurnResult {
  outcome: 'done' | 'interrupted';
  state: unknown;
  outputs: unknown[];
}

interface Turn {
  seq: number;
  messageId: string;
  message: Message;
  startedAt: number;
  outbox: AppendRequest[];
  spawned: AgentRecord[];
  outputs: unknown[];
  abort: AbortController;
  interrupted: boolean;
  error: unknown;
  /** The logic's persisted snapshot before the turn, to roll back to. */
  before: unknown;
}

export interface Entry {
  id: string;
  def: AgentDefinition;
  record: AgentRecord;
  /** The agent's lifecycle statechart (machines/agent.ts), run by the Lifecycle interpreter. */
  lifecycle: Lifecycle<AgentContext, AgentEvent>;
  actor: Actor<AnyStateMachine> | null;
  /** Store operations of this agent, one after the other. */
  chain: Promise<void>;
  /** Reasons to keep the entry although it is unloaded and idle (accepts in flight). */
  holds: number;
  turn: Turn | null;
  /** The logic's snapshot as last stored (loaded or committed): the state to roll back to. */
  lastPersisted: unknown;
  lastActiveAt: number;
  destroyed: boolean;
  /** Waiting for the agent to leave memory (close). */
  leftMemory: (() => void)[];
}

export interface HostOptions {
  store: Store;
  clock: Clock;
  emitter: RuntimeEmitter;
  definitions: Map<string, AgentDefinition>;
  residentCap: number;
  runningCap: number;
  idleTimeout: number | null;
  policy?: PolicyFactory;
  newId: () => string;
  /** Accepts messages sent by turns' outboxes after commit. */
  onOutboxCommitted: (entry: Entry, accepted: { request: AppendRequest; seq: number; duplicate: boolean }[]) => void;
}

/**
 * The persisted snapshot as stored: XState leaves `output`/`error` as `undefined` at the
 * top level, which JSON drops; anything else that is not JSON makes the turn fail
 * (a context holding a Date or a function would not survive eviction).
 */
function persistable(snapshot: unknown): unknown {
  const copy = dropUndefined(snapshot);
  assertJson(copy, 'the agent snapshot');
  return copy;
}

/** A copy without `undefined` object properties (as JSON would drop them); other values kept as they are. */
function dropUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropUndefined);
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = dropUndefined(v);
  return out;
}

/**
 * At rest: not running, or a machine whose children are all at rest. An active promise,
 * callback or observable child is work in progress; a child machine waiting for events
 * is at rest.
 */
export function quiescent(actor: AnyActorRef): boolean {
  const snap = actor.getSnapshot() as { status: string; children?: Record<string, AnyActorRef>; machine?: unknown };
  if (snap.status !== 'active') return true;
  if (!snap.machine || !snap.children) return false;
  return Object.values(snap.children).every(quiescent);
}

/** An inspection observer as the Host keeps it. */
interface InspectionSink {
  next: (e: InspectionEvent) => void;
  /** The Stately bridge: agents only, `@xstate.actor`, `@xstate.event` and `@xstate.snapshot` only. */
  stately: boolean;
}

/** The state value of a machine snapshot, unless it says nothing (`{}`: a machine without states). */
function stateValueOf(snapshot: unknown): Json | undefined {
  const value = (snapshot as { value?: Json } | null)?.value;
  if (value === undefined || (typeof value === 'object' && value !== null && Object.keys(value).length === 0)) return undefined;
  return value;
}

export type Waiter = { resolve: (r: TurnResult) => void; reject: (e: unknown) => void };

export class Host {
  readonly entries = new Map<string, Entry>();
  readonly supervisor: Actor<typeof supervisorMachine>;
  readonly counters = { loads: 0, evictions: 0, hits: 0, misses: 0 };
  /** ask() waiters, by agent id and message id (one flat map: nothing left behind per agent). */
  readonly #waiters = new Map<string, Waiter>();

  addWaiter(agentId: string, messageId: string, w: Waiter): void {
    this.#waiters.set(`${agentId}\u0000${messageId}`, w);
  }

  takeWaiter(agentId: string, messageId: string): Waiter | undefined {
    const key = `${agentId}\u0000${messageId}`;
    const w = this.#waiters.get(key);
    this.#waiters.delete(key);
    return w;
  }
  /** Inspection observers (runtime.inspect() and the `inspect` option); none: no XState inspection at all. */
  readonly #sinks = new Set<InspectionSink>();
  /** The inspection subscription of every live agent actor's system, only while someone observes. */
  readonly #watched = new Map<AnyActorRef, Subscription>();
  #supervisorWatch: Subscription | null = null;
  readonly #sessions = new SessionIds();
  #lifecycleLogic: typeof agentMachine;
  #logic = new Map<string, AnyStateMachine>();
  #idleTimer: unknown = null;
  #idleAt = Infinity;

  constructor(private readonly o: HostOptions) {
    const { clock } = o;
    this.supervisor = createActor(
      supervisorMachine.provide({
        actions: {
          grantSlot: (_, p: SupervisorEffects['grantSlot']) => this.#deliver(p.id, 'grantSlot', p),
          grantPermit: (_, p: SupervisorEffects['grantPermit']) => this.#deliver(p.id, 'grantPermit', p),
          evict: (_, p: SupervisorEffects['evict']) => this.#deliver(p.id, 'evict', p),
          reportSaturated: (_, p: SupervisorEffects['reportSaturated']) => {
            const head = (this.supervisor?.getSnapshot().context as SupervisorContext | undefined)?.slotQueue.peek() ?? '*';
            o.emitter.emit('residency.saturated', () => ({ id: head, at: clock.now(), ...p }));
          },
        },
      }),
      { input: { residentCap: o.residentCap, runningCap: o.runningCap, idleTimeout: o.idleTimeout, policy: o.policy } },
    );
    const bound = supervisorBoundActions((e) => this.supervisor.send(e), () => clock.now());
    const entryOf = (c: AgentContext) => this.entries.get(c.id);
    this.#lifecycleLogic = agentMachine.provide({
      actions: {
        ...bound,
        becomeEvictable: (a) => {
          bound.becomeEvictable(a);
          this.#scheduleIdleCheck(clock.now() + (o.idleTimeout ?? Infinity));
        },
        notifyFlushing: (a) => {
          bound.notifyFlushing(a);
          const reason = a.context.flushReason ?? 'close';
          o.emitter.emit('agent.evicting', () => ({ id: a.context.id, at: clock.now(), reason }));
        },
        startLoad: ({ context }) => this.#load(entryOf(context)!),
        startTurn: ({ context }) => this.#runTurn(entryOf(context)!),
        abortTurn: ({ context }) => this.#abortTurn(entryOf(context)!),
        startFlush: ({ context }) => this.#flush(entryOf(context)!, context.flushReason ?? 'close'),
        reportIllegal: ({ context, event }) =>
          o.emitter.emit('error', () => ({
            id: context.id,
            at: clock.now(),
            error: new Error(`agent "${context.id}" got "${event.type}" in a state that cannot take it`),
            where: 'lifecycle',
          })),
      },
    });
    this.supervisor.start();
  }

  // --- entries -----------------------------------------------------------------

  /** The entry of an agent, created (unloaded, empty mailbox) when absent. */
  ensureEntry(record: AgentRecord, mailbox = 0): Entry {
    const existing = this.entries.get(record.id);
    if (existing) return existing;
    const def = this.o.definitions.get(record.type);
    if (!def) throw new Error(`agent "${record.id}" has type "${record.type}", which this runtime does not define`);
    const entry: Entry = {
      id: record.id,
      def,
      record,
      lifecycle: null as never,
      actor: null,
      chain: Promise.resolve(),
      holds: 0,
      turn: null,
      lastPersisted: undefined,
      lastActiveAt: this.o.clock.now(),
      destroyed: false,
      leftMemory: [],
    };
    this.entries.set(record.id, entry);
    entry.lifecycle = new Lifecycle<AgentContext, AgentEvent>(this.#lifecycleLogic, { id: record.id, pinned: record.pinned, mailbox });
    entry.lifecycle.subscribe(() => this.#maybeDrop(entry));
    entry.lifecycle.start();
    return entry;
  }

  /** Drops one hold taken for an accept in flight. */
  release(entry: Entry): void {
    entry.holds--;
    this.#maybeDrop(entry);
  }

  stateOf(id: string): LifecycleState {
    const e = this.entries.get(id);
    return e ? lifecycleOf(e.lifecycle.getSnapshot().value) : 'unloaded';
  }

  /** Unloaded, no mail, nothing in flight: the entry can go (the store holds everything). */
  #droppable(entry: Entry): boolean {
    if (entry.destroyed || entry.holds > 0 || entry.turn || this.entries.get(entry.id) !== entry) return false;
    const snap = entry.lifecycle.getSnapshot();
    return snap.context.mailbox === 0 && (snap.value as { unloaded?: string }).unloaded === 'dormant';
  }

  /** Drops the entry once its queued store work is done, if it is still droppable then. */
  #maybeDrop(entry: Entry): void {
    if (!this.#droppable(entry)) return;
    void entry.chain.then(() => {
      if (!this.#droppable(entry)) return;
      this.entries.delete(entry.id);
      entry.lifecycle.stop();
    });
  }

  /** A message was accepted into the agent's mailbox. */
  accepted(entry: Entry, seq: number, messageId: string, type: string): void {
    const st = lifecycleOf(entry.lifecycle.getSnapshot().value);
    if (st === 'idle' || st === 'running') this.counters.hits++;
    else this.counters.misses++;
    entry.lastActiveAt = this.o.clock.now();
    entry.lifecycle.send({ type: 'message.accepted' });
    this.o.emitter.emit('message.accepted', () => ({ id: entry.id, at: this.o.clock.now(), seq, messageId, type }));
  }

  // --- supervisor effects ----------------------------------------------------------

  #deliver(id: string, effect: 'grantSlot' | 'grantPermit' | 'evict', p: SupervisorEffects['grantSlot'] | SupervisorEffects['evict']): void {
    const entry = this.entries.get(id);
    if (entry) {
      entry.lifecycle.send(agentEventFor(effect, p));
      return;
    }
    // The agent is gone: hand the grant back, refuse the eviction.
    const back: SupervisorEvent =
      effect === 'grantSlot' ? { type: 'agent.released', id } : effect === 'grantPermit' ? { type: 'permit.release', id } : { type: 'evict.refused', id };
    this.supervisor.send(back);
  }

  #scheduleIdleCheck(at: number): void {
    if (this.o.idleTimeout === null || !Number.isFinite(at) || at >= this.#idleAt) return;
    if (this.#idleTimer !== null) this.o.clock.clearTimeout(this.#idleTimer);
    this.#idleAt = at;
    this.#idleTimer = this.o.clock.setTimeout(() => {
      this.#idleTimer = null;
      this.#idleAt = Infinity;
      this.supervisor.send({ type: 'idle.check', now: this.o.clock.now() });
      const c = this.supervisor.getSnapshot().context as SupervisorContext;
      const next = c.idleSince?.peekValue();
      if (next !== undefined) this.#scheduleIdleCheck(next + this.o.idleTimeout!);
    }, Math.max(0, at - this.o.clock.now()));
  }

  // --- the logic -------------------------------------------------------------------

  /** The definition's logic with the runtime's turn supplied (once per type). */
  #logicOf(def: AgentDefinition): AnyStateMachine {
    let logic = this.#logic.get(def.type);
    if (logic) return logic;
    if (isTurnLogic(def.logic)) {
      const { fn } = def.logic[TURN_LOGIC];
      logic = def.logic.provide({
        actors: {
          turn: fromPromise<unknown, TurnInput & { agentId?: string }>(async ({ input, self }) => {
            const entry = this.#entryOfTurnActor(self);
            const turn = entry?.turn;
            if (!entry || !turn) throw new Error('a turn ran outside the runtime');
            try {
              const next = await fn(this.#turnContext(entry, turn, input.state, input.message));
              assertJson(next, 'the state returned by the turn');
              return next;
            } catch (err) {
              turn.error = err;
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

  #actorOwner = new WeakMap<AnyActorRef, Entry>();
  #entryOfTurnActor(self: AnyActorRef): Entry | undefined {
    const parent = (self as unknown as { _parent?: AnyActorRef })._parent;
    return parent ? this.#actorOwner.get(parent) : undefined;
  }

  #turnContext(entry: Entry, turn: Turn, state: unknown, message: Message): TurnContext<unknown> {
    return {
      state: structuredClone(state),
      message: structuredClone(message),
      signal: turn.abort.signal,
      self: entry.id,
      send: (to, msg) => this.#outboxSend(turn, to, msg),
      spawn: (type, options) => this.#outboxSpawn(entry, turn, type, options),
      emit: (output) => {
        assertJson(output, 'an output');
        turn.outputs.push(structuredClone(output));
      },
    };
  }

  #outboxSend(turn: Turn, to: string, message: Message): void {
    assertAgentId(to, 'to');
    assertMessage(message);
    turn.outbox.push({ agentId: to, messageId: this.o.newId(), message: structuredClone(message), at: this.o.clock.now() });
  }

  #outboxSpawn(entry: Entry, turn: Turn, type: string, options: { id: string; input?: unknown; pinned?: boolean }): string {
    if (!this.o.definitions.has(type)) throw new Error(`no agent type "${type}" is defined`);
    assertAgentId(options?.id, 'id');
    if (options.input !== undefined) assertJson(options.input, 'input');
    turn.spawned.push({
      id: options.id,
      type,
      parent: entry.id,
      pinned: options.pinned === true,
      input: options.input === undefined ? null : structuredClone(options.input),
      createdAt: this.o.clock.now(),
    });
    return options.id;
  }

  #newActor(entry: Entry, snapshot: unknown | null): Actor<AnyStateMachine> {
    const logic = this.#logicOf(entry.def);
    const input = entry.record.input;
    // Timers of the logic (`after`) run on the runtime's clock.
    const clock = this.o.clock;
    const actor = createActor(logic, snapshot == null ? { input, clock } : { snapshot: snapshot as never, input, clock });
    this.#actorOwner.set(actor, entry);
    if (!isTurnLogic(entry.def.logic)) {
      actor.on('*', (ev: { type: string; [k: string]: unknown }) => this.#machineEffect(entry, ev));
    }
    if (this.#sinks.size > 0) {
      this.#watch(entry.id, actor);
      // XState announced the actor (and children of its first state) in the constructor, unobserved.
      for (const ev of this.#sessions.actorEvents(actor, entry.id)) for (const sink of this.#sinks) this.#notify(sink, ev, entry.id);
    }
    try {
      actor.start();
    } catch (err) {
      this.#stopActor(actor);
      throw err;
    }
    return actor;
  }

  /** An event emitted by a machine agent: an effect for the runtime, or an output. */
  #machineEffect(entry: Entry, ev: { type: string; [k: string]: unknown }): void {
    const turn = entry.turn;
    if (!turn) {
      this.o.emitter.emit('error', () => ({
        id: entry.id,
        at: this.o.clock.now(),
        error: new Error(`agent "${entry.id}" emitted "${ev.type}" outside a turn; it was dropped`),
        where: 'emit',
      }));
      return;
    }
    try {
      if (ev.type === 'agent.send') this.#outboxSend(turn, ev.to as string, ev.message as Message);
      else if (ev.type === 'agent.spawn') this.#outboxSpawn(entry, turn, ev.agentType as string, ev as never);
      else {
        assertJson(ev, 'an emitted event');
        turn.outputs.push(structuredClone(ev));
      }
    } catch (err) {
      turn.error ??= err;
    }
  }

  // --- lifecycle effects -----------------------------------------------------------

  #queue(entry: Entry, op: () => Promise<void>): void {
    entry.chain = entry.chain.then(op).catch((err: unknown) => {
      this.o.emitter.emit('error', () => ({
        id: entry.id,
        at: this.o.clock.now(),
        error: err instanceof Error ? err : new Error(String(err)),
        where: 'store',
      }));
    });
  }

  #load(entry: Entry): void {
    const started = this.o.clock.now();
    this.counters.loads++;
    this.o.emitter.emit('agent.loading', () => ({ id: entry.id, at: started }));
    this.#queue(entry, async () => {
      if (entry.destroyed) return;
      let snapshot: unknown;
      try {
        snapshot = await this.o.store.loadSnapshot(entry.id);
        await this.o.store.pending(entry.id, 1); // the next message must be readable too
      } catch (err) {
        this.#loadFailed(entry, err, err instanceof StoreCorruptionError);
        return;
      }
      try {
        if (snapshot != null && (typeof snapshot !== 'object' || !('value' in (snapshot as object)))) {
          throw new StoreCorruptionError(entry.id, 'its snapshot is not an XState snapshot');
        }
        entry.actor = this.#newActor(entry, snapshot);
        entry.lastPersisted = snapshot ?? undefined;
        if (entry.actor.getSnapshot().status === 'error') throw new StoreCorruptionError(entry.id, 'its snapshot does not restore');
      } catch (err) {
        if (entry.actor) this.#stopActor(entry.actor);
        entry.actor = null;
        this.#loadFailed(entry, err instanceof StoreCorruptionError ? err : new StoreCorruptionError(entry.id, `its snapshot does not restore (${(err as Error).message})`, { cause: err }), true);
        return;
      }
      void this.o.store.note(entry.id, { kind: 'note', note: 'loaded', at: this.o.clock.now() }).catch(() => {});
      entry.lifecycle.send({ type: 'load.done' });
      this.o.emitter.emit('agent.loaded', () => ({ id: entry.id, at: this.o.clock.now(), durationMs: this.o.clock.now() - started }));
    });
  }

  #loadFailed(entry: Entry, err: unknown, corrupt: boolean): void {
    const error = err instanceof Error ? err : new Error(String(err));
    entry.lifecycle.send({ type: 'load.failed', corrupt });
    if (corrupt) this.o.emitter.emit('agent.failed', () => ({ id: entry.id, at: this.o.clock.now(), error }));
    else {
      this.o.emitter.emit('error', () => ({ id: entry.id, at: this.o.clock.now(), error, where: 'load' }));
      // Back off, then try again (a store outage must not become a hot loop).
      this.o.clock.setTimeout(() => entry.lifecycle.send({ type: 'retry' }), 100);
    }
  }

  #runTurn(entry: Entry): void {
    this.#queue(entry, async () => {
      if (entry.destroyed || !entry.actor) return;
      const [head] = await this.o.store.pending(entry.id, 1);
      if (!head) {
        throw new Error(`agent "${entry.id}" was given a turn with an empty mailbox in the store`);
      }
      const actor = entry.actor;
      let before: unknown;
      let unpersistable: unknown;
      try {
        before = entry.lastPersisted ?? actor.getPersistedSnapshot();
      } catch (err) {
        // e.g. an inline child actor: such a state cannot be kept across eviction.
        unpersistable = new TypeError(
          `the state of agent "${entry.id}" cannot be persisted (${(err as Error).message}); ` +
            'spawn child actors from logic registered by name in setup({ actors })',
          { cause: err },
        );
      }
      const turn: Turn = {
        seq: head.seq,
        messageId: head.messageId,
        message: head.message,
        startedAt: this.o.clock.now(),
        outbox: [],
        spawned: [],
        outputs: [],
        abort: new AbortController(),
        interrupted: false,
        error: unpersistable,
        before,
      };
      entry.turn = turn;
      await this.o.store.beginTurn(entry.id, head.seq, turn.startedAt);
      this.o.emitter.emit('turn.started', () => ({ id: entry.id, at: turn.startedAt, seq: head.seq }));
      if (unpersistable === undefined) await this.#execute(entry, actor, turn);
      if (turn.interrupted || entry.destroyed) return; // recorded by the interrupt, or gone
      await this.#commit(entry, turn);
    });
  }

  /** Sends the message to the logic and waits until it is quiescent (no active child actor). */
  #execute(entry: Entry, actor: Actor<AnyStateMachine>, turn: Turn): Promise<void> {
    // A machine that reached its final state takes no more events: the turn changes nothing.
    if (actor.getSnapshot().status !== 'active') return Promise.resolve();
    return new Promise<void>((resolve) => {
      let done = false;
      let sub: Subscription | null = null;
      const check = () => {
        if (done || !sub) return;
        if (quiescent(actor) || turn.interrupted || entry.destroyed) {
          done = true;
          sub.unsubscribe();
          turn.abort.signal.removeEventListener('abort', check);
          resolve();
        }
      };
      sub = actor.subscribe({ next: check, error: check, complete: check });
      turn.abort.signal.addEventListener('abort', check);
      try {
        actor.send(turn.message as never);
      } catch (err) {
        turn.error ??= err;
      }
      check();
    });
  }

  async #commit(entry: Entry, turn: Turn): Promise<void> {
    const actor = entry.actor!;
    const snap = actor.getSnapshot();
    let failure: unknown = turn.error ?? (snap.status === 'error' ? snap.error : undefined);
    const at = this.o.clock.now();
    const durationMs = at - turn.startedAt;
    let outboxResults: { request: AppendRequest; seq: number; duplicate: boolean }[] = [];
    if (failure === undefined) {
      try {
        const snapshot = persistable(actor.getPersistedSnapshot());
        // A statechart's state after the turn goes in the rollout too (the inspector's timeline);
        // not for fromTurn logic, nor a machine without states (its value is always `{}`).
        const value = isTurnLogic(entry.def.logic) ? undefined : stateValueOf(snapshot);
        const r = await this.o.store.commitTurn({
          agentId: entry.id,
          seq: turn.seq,
          outcome: 'done',
          snapshot,
          value,
          outputs: turn.outputs,
          outbox: turn.outbox,
          spawned: turn.spawned,
          at,
          durationMs,
        });
        entry.lastPersisted = snapshot;
        outboxResults = turn.outbox.map((request, i) => ({ request, seq: r.outbox[i]!.seq, duplicate: r.outbox[i]!.duplicate }));
      } catch (err) {
        if (!(err instanceof AgentNotFoundError || err instanceof AgentExistsError || err instanceof TypeError)) throw err;
        failure = err;
      }
    }
    if (failure !== undefined) {
      // A failed turn leaves the state as it was: roll the logic back.
      this.#rollback(entry, turn);
      await this.o.store.commitTurn({
        agentId: entry.id,
        seq: turn.seq,
        outcome: 'failed',
        error: failure instanceof Error ? failure.message : String(failure),
        at,
        durationMs,
      });
    }
    this.#finish(entry, turn, failure === undefined ? 'done' : 'failed', durationMs, failure);
    if (failure === undefined) {
      for (const rec of turn.spawned) {
        this.o.emitter.emit('agent.spawned', () => ({ id: rec.id, at, type: rec.type, parent: rec.parent, pinned: rec.pinned }));
      }
      this.o.onOutboxCommitted(entry, outboxResults);
    }
    entry.lifecycle.send({ type: 'turn.done', outcome: failure === undefined ? 'done' : 'failed' });
  }

  #rollback(entry: Entry, turn: Turn): void {
    if (isTurnLogic(entry.def.logic) && entry.actor?.getSnapshot().status === 'active') return; // state untouched
    if (turn.before === undefined) return; // the turn did not run
    if (entry.actor) this.#stopActor(entry.actor);
    entry.actor = this.#newActor(entry, turn.before);
  }

  /** Records the end of a turn for observers and ask() callers. */
  #finish(entry: Entry, turn: Turn, outcome: TurnOutcome, durationMs: number, failure: unknown): void {
    entry.turn = null;
    entry.lastActiveAt = this.o.clock.now();
    const error = failure === undefined ? undefined : failure instanceof Error ? failure.message : String(failure);
    this.o.emitter.emit('turn.finished', () => ({ id: entry.id, at: this.o.clock.now(), seq: turn.seq, outcome, durationMs, ...(error ? { error } : {}) }));
    const w = this.takeWaiter(entry.id, turn.messageId);
    if (!w) return;
    if (outcome === 'failed') w.reject(new TurnFailedError(entry.id, turn.seq, failure));
    else w.resolve({ outcome: outcome === 'interrupted' ? 'interrupted' : 'done', state: this.stateOfLogic(entry), outputs: turn.outputs });
  }

  /** The agent's state as users see it: a turn function's state, or a machine's value and context. */
  stateOfLogic(entry: Entry): unknown {
    const snap = entry.actor?.getSnapshot() as { value: unknown; context: unknown } | undefined;
    if (!snap) return undefined;
    if (isTurnLogic(entry.def.logic)) return structuredClone((snap.context as { state: unknown }).state);
    return structuredClone({ value: snap.value, context: snap.context });
  }

  #abortTurn(entry: Entry): void {
    const turn = entry.turn;
    if (!turn || turn.interrupted) return;
    turn.interrupted = true;
    turn.abort.abort(new Error('interrupted'));
    if (entry.destroyed) return;
    if (isTurnLogic(entry.def.logic)) entry.actor?.send({ type: INTERRUPT_EVENT } as never);
    else this.#rollback(entry, turn);
    const at = this.o.clock.now();
    // The interrupted turn is recorded before anything else of this agent happens.
    this.#queue(entry, async () => {
      await this.o.store.commitTurn({ agentId: entry.id, seq: turn.seq, outcome: 'interrupted', at, durationMs: at - turn.startedAt });
      this.#finish(entry, turn, 'interrupted', at - turn.startedAt, undefined);
    });
  }

  #flush(entry: Entry, reason: EvictReason): void {
    this.#queue(entry, async () => {
      // State was committed at the end of every turn: flushing only stops the actor.
      if (entry.actor) this.#stopActor(entry.actor);
      entry.actor = null;
      if (!entry.destroyed) {
        await this.o.store.note(entry.id, { kind: 'note', note: 'evicted', reason, at: this.o.clock.now() }).catch(() => {});
      }
      this.counters.evictions++;
      entry.lifecycle.send({ type: 'flush.done' });
      this.o.emitter.emit('agent.evicted', () => ({ id: entry.id, at: this.o.clock.now(), reason }));
      for (const r of entry.leftMemory.splice(0)) r();
    });
  }

  // --- user calls that act on an entry -----------------------------------------------

  interrupt(id: string): void {
    const entry = this.entries.get(id);
    if (entry && lifecycleOf(entry.lifecycle.getSnapshot().value) === 'running') entry.lifecycle.send({ type: 'interrupt' });
  }

  /** Passivates the agent; resolves once it has left memory (or at once if not in memory). */
  close(id: string, reason: 'close' | 'stop'): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) return Promise.resolve();
    const st = lifecycleOf(entry.lifecycle.getSnapshot().value);
    if (st === 'unloaded' || st === 'failed' || st === 'destroyed') {
      entry.lifecycle.send({ type: 'close', reason });
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      entry.leftMemory.push(resolve);
      entry.lifecycle.send({ type: 'close', reason });
    });
  }

  /** Takes the agent out of memory for good, after its in-flight store work. */
  async destroy(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.destroyed = true;
    entry.lifecycle.send({ type: 'destroy' });
    if (entry.turn && !entry.turn.interrupted) {
      entry.turn.interrupted = true;
      entry.turn.abort.abort(new Error('destroyed'));
    }
    await entry.chain;
    if (entry.actor) this.#stopActor(entry.actor);
    entry.actor = null;
    entry.lifecycle.stop();
    for (const r of entry.leftMemory.splice(0)) r();
    this.entries.delete(id);
  }

  /** Rejects every ask() waiting on this agent (or on every agent, without an id). */
  rejectWaiters(id: string | null, err: unknown): void {
    const prefix = id === null ? '' : `${id}\u0000`;
    for (const [key, w] of this.#waiters) {
      if (!key.startsWith(prefix)) continue;
      this.#waiters.delete(key);
      w.reject(err);
    }
  }

  // --- inspection --------------------------------------------------------------------
  //
  // Nothing at all while nobody observes: no XState inspection callback is attached (one
  // costs about half the throughput). With an observer, every live agent actor's system
  // has one subscription that maps the events (src/inspector/stately.ts: session ids that
  // name the agent) and hands them to every observer; the supervisor's system has one
  // while a runtime.inspect() observer (not only the Stately bridge) is attached.

  /**
   * Attaches an observer. `stately`: the Stately bridge, which gets only `@xstate.actor`,
   * `@xstate.event` and `@xstate.snapshot` of agents (never the supervisor's). Agents
   * already resident are announced to it at once (`@xstate.actor`). Returns a detach.
   */
  attachInspector(next: (e: InspectionEvent) => void, options: { stately: boolean }): () => void {
    const sink: InspectionSink = { next, stately: options.stately };
    this.#sinks.add(sink);
    if (!sink.stately && !this.#supervisorWatch) {
      this.#supervisorWatch = this.supervisor.system.inspect((e) => this.#dispatch(SUPERVISOR_SESSION_ID, e, true));
    }
    for (const e of this.entries.values()) {
      if (!e.actor) continue;
      this.#watch(e.id, e.actor);
      for (const ev of this.#sessions.actorEvents(e.actor, e.id)) this.#notify(sink, ev, e.id);
    }
    return () => {
      if (!this.#sinks.delete(sink)) return;
      if (this.#supervisorWatch && ![...this.#sinks].some((s) => !s.stately)) {
        this.#supervisorWatch.unsubscribe();
        this.#supervisorWatch = null;
      }
      if (this.#sinks.size === 0) {
        for (const sub of this.#watched.values()) sub.unsubscribe();
        this.#watched.clear();
      }
    };
  }

  /** Subscribes to an agent actor's system (once). */
  #watch(agentId: string, actor: AnyActorRef): void {
    if (this.#watched.has(actor)) return;
    this.#watched.set(actor, actor.system.inspect((e: InspectionEvent) => this.#dispatch(agentId, e, false)));
  }

  /** Stops an agent actor and drops its inspection subscription (after its last events). */
  #stopActor(actor: AnyActorRef): void {
    actor.stop();
    const sub = this.#watched.get(actor);
    if (!sub) return;
    sub.unsubscribe();
    this.#watched.delete(actor);
  }

  /** Maps an event of the agent (or the supervisor) `root` once and hands it to the observers that want it. */
  #dispatch(root: string, raw: InspectionEvent, supervisor: boolean): void {
    const forStately = !supervisor && isStatelyEvent(raw);
    let mapped: InspectionEvent | undefined;
    for (const sink of this.#sinks) {
      if (sink.stately && !forStately) continue;
      mapped ??= this.#sessions.event(raw, root);
      this.#notify(sink, mapped, supervisor ? '*' : root);
    }
  }

  /** A throwing observer never breaks the runtime: it is reported as an `error` event. */
  #notify(sink: InspectionSink, event: InspectionEvent, id: string): void {
    try {
      sink.next(event);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      // Later, as for event listeners: the observer may have thrown in the middle of a transition.
      queueMicrotask(() => this.o.emitter.emit('error', () => ({ id, at: this.o.clock.now(), error, where: 'inspect observer' })));
    }
  }

  stopAll(): void {
    if (this.#idleTimer !== null) this.o.clock.clearTimeout(this.#idleTimer);
    for (const e of this.entries.values()) {
      if (e.actor) this.#stopActor(e.actor);
      e.lifecycle.stop();
    }
    this.supervisor.stop();
  }
}
