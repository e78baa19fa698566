/**
 * The host of resident agents: it runs the two statecharts for real. It keeps, per
 * agent that is in memory or has work, an entry with its lifecycle (the agent statechart,
 * run by a small interpreter verified against XState: Lifecycle.ts) and (while
 * resident) its logic actor, carries out the lifecycle's effects (load, turn, flush)
 * as store operations chained per agent, and sends the results back in as events.
 *
 * Every effect ends what it started, whatever is thrown and wherever: a turn ends with an
 * outcome (`turn.done`), or, when not even its outcome can be written, the agent is
 * quarantined (`turn.lost` → `failed`). Either way its permit is released and its caller
 * answered.
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
import { FencedError, StoreCorruptionError, StoreError, TurnFailedError, UnknownAgentTypeError } from '../errors.js';
import type { RuntimeEmitter } from '../events.js';
import { INTERRUPT_EVENT, TURN_LOGIC, isTurnLogic, type TurnContext, type TurnInput } from '../fromTurn.js';
import type { AgentRecord, AppendRequest, Json, Message, Store, StoredMessage, TurnOutcome } from '../store/Store.js';
import { assertAgentId, copyJson, copyMessage, describeThrown } from '../validate.js';
import { SUPERVISOR_SESSION_ID, SessionIds, isStatelyEvent } from '../inspector/stately.js';

export interface TurnResult {
  outcome: 'done' | 'interrupted';
  state: unknown;
  outputs: unknown[];
}

/** How often a store call is retried while the store is busy: after 10, 20, 40 … 1,000 ms (about 4.3 s of backoff in all). */
const STORE_RETRIES = 10;

interface Turn {
  seq: number;
  messageId: string;
  message: Message;
  startedAt: number;
  outbox: AppendRequest[];
  spawned: AgentRecord[];
  outputs: unknown[];
  abort: AbortController;
  /** `running`: the logic runs (an interrupt aborts it); `committing`: its outcome is being written. */
  phase: 'running' | 'committing';
  interrupted: boolean;
  /** What made the turn fail, boxed (a thrown `undefined` is a failure too). */
  error: { thrown: unknown } | null;
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
  /** Loads that failed in a row (not corruption): the backoff doubles with each. */
  loadFailures: number;
  /** Why the agent is quarantined (`failed`). */
  failure: Error | null;
  /** A message whose turn ran but whose outcome could not be written: recorded `crashed` first. */
  lostSeq: number | null;
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
  /** Hold the process open (a ref'd host timer) while there is work: a turn, mail, an ask. */
  keepAlive: boolean;
}

/**
 * The persisted snapshot as it is stored: a plain JSON copy. XState leaves `output`/`error`
 * as `undefined` at the top level, which JSON drops; anything else that is not JSON makes
 * the turn fail (a context holding a Date, a function or a cycle would not survive eviction).
 */
function storedSnapshot(agentId: string, actor: AnyActorRef): unknown {
  let persisted: unknown;
  try {
    persisted = actor.getPersistedSnapshot();
  } catch (err) {
    if (err instanceof RangeError) {
      // XState's own copy recursed forever: a cycle in the context. Say where it is.
      copyJson((actor.getSnapshot() as { context?: unknown }).context, 'the agent context');
    }
    throw notPersistable(agentId, err);
  }
  return copyJson(persisted, 'the agent snapshot', { dropUndefined: true });
}

function notPersistable(agentId: string, err: unknown): TypeError {
  return new TypeError(
    `the state of agent "${agentId}" cannot be persisted (${describeThrown(err)}); ` +
      'spawn child actors from logic registered by name in setup({ actors })',
    { cause: err },
  );
}

/** What `ask` answers with: a turn function's state, or a machine's value and context (copies). */
function resultState(entry: Entry, snapshot: unknown): unknown {
  if (snapshot === undefined || snapshot === null) return undefined;
  const s = structuredClone(snapshot) as { value?: unknown; context?: { state?: unknown } };
  if (isTurnLogic(entry.def.logic)) return s.context?.state;
  return { value: s.value, context: s.context };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(describeThrown(err));
}

/** The source of XState's promise logic, to tell promise children from long-lived ones. */
const PROMISE_TRANSITION = String(fromPromise(async () => undefined).transition);
const promiseLike = new WeakMap<object, boolean>();
function isPromiseLogic(logic: unknown): boolean {
  if (typeof logic !== 'object' || logic === null) return false;
  let known = promiseLike.get(logic);
  if (known === undefined) {
    known = String((logic as { transition?: unknown }).transition) === PROMISE_TRANSITION;
    promiseLike.set(logic, known);
  }
  return known;
}

type ActorShape = AnyActorRef & { logic?: unknown };
const snapshotOf = (actor: AnyActorRef) =>
  actor.getSnapshot() as { status: string; children?: Record<string, ActorShape>; machine?: unknown };

/**
 * At rest: not running, or a machine whose children are all at rest. An active promise,
 * callback or observable child is work in progress; a child machine waiting for events
 * is at rest. (Used for eviction: an agent is flushed only at rest.)
 */
export function quiescent(actor: AnyActorRef): boolean {
  const snap = snapshotOf(actor);
  if (snap.status !== 'active') return true;
  if (!snap.machine || !snap.children) return false;
  return Object.values(snap.children).every(quiescent);
}

/**
 * A turn of a machine is over when the event is processed and every promise child (at any
 * depth) has settled. A long-lived child (a callback, an observable) does not keep the turn
 * open: it keeps the agent resident instead (see `hasLiveChildren`).
 */
function turnOver(actor: AnyActorRef): boolean {
  const snap = snapshotOf(actor);
  if (snap.status !== 'active' || !snap.children) return true;
  for (const child of Object.values(snap.children)) {
    if (isPromiseLogic(child.logic)) {
      if (snapshotOf(child).status === 'active') return false;
    } else if (!turnOver(child)) return false;
  }
  return true;
}

/** A long-lived child (callback, observable…) is active somewhere in the machine. */
function hasLiveChildren(actor: AnyActorRef): boolean {
  const snap = snapshotOf(actor);
  if (snap.status !== 'active' || !snap.children) return false;
  return Object.values(snap.children).some((child) => (snapshotOf(child).machine ? hasLiveChildren(child) : snapshotOf(child).status === 'active'));
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

export type Waiter = {
  resolve: (r: TurnResult) => void;
  reject: (e: unknown) => void;
  /** Its message was accepted (only then may a destroy of the agent reject it). */
  accepted?: boolean;
};

export class Host {
  readonly entries = new Map<string, Entry>();
  readonly supervisor: Actor<typeof supervisorMachine>;
  readonly counters = { loads: 0, evictions: 0, hits: 0, misses: 0 };
  /** Agents whose stored record cannot be read (found when a message was delivered to them). */
  readonly damaged = new Map<string, Error>();
  /** ask() waiters, by agent id and message id (one flat map: nothing left behind per agent). */
  readonly #waiters = new Map<string, Waiter>();
  /** Entries with work (mail, a turn, a load or a flush): they keep the process alive. */
  readonly #busy = new Set<Entry>();
  #aliveHandle: ReturnType<typeof setInterval> | null = null;

  addWaiter(agentId: string, messageId: string, w: Waiter): void {
    this.#waiters.set(`${agentId}\u0000${messageId}`, w);
    this.#keepAlive();
  }

  takeWaiter(agentId: string, messageId: string): Waiter | undefined {
    const key = `${agentId}\u0000${messageId}`;
    const w = this.#waiters.get(key);
    this.#waiters.delete(key);
    if (w) this.#keepAlive();
    return w;
  }

  /**
   * While a turn runs, a message waits or an ask waits, a ref'd host timer keeps the
   * process alive (every other timer of the runtime is unref'd); when idle, nothing does.
   */
  #keepAlive(): void {
    if (!this.o.keepAlive) return;
    const needed = this.#busy.size > 0 || this.#waiters.size > 0;
    if (needed && this.#aliveHandle === null) this.#aliveHandle = setInterval(() => {}, 1 << 30);
    else if (!needed && this.#aliveHandle !== null) {
      clearInterval(this.#aliveHandle);
      this.#aliveHandle = null;
    }
  }

  #trackBusy(entry: Entry): void {
    const snap = entry.lifecycle.getSnapshot();
    const st = lifecycleOf(snap.value);
    const idle =
      entry.destroyed ||
      st === 'failed' ||
      st === 'destroyed' ||
      (snap.context.mailbox === 0 && (st === 'idle' || (snap.value as { unloaded?: string }).unloaded === 'dormant'));
    const had = this.#busy.has(entry);
    if (idle && had) this.#busy.delete(entry);
    else if (!idle && !had) this.#busy.add(entry);
    else return;
    this.#keepAlive();
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
          // A live long-lived child (a callback, an observable) keeps the agent resident.
          const actor = this.entries.get(a.context.id)?.actor;
          if (actor && hasLiveChildren(actor)) return;
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
    if (!def) throw new UnknownAgentTypeError(record.type, [...this.o.definitions.keys()], record.id);
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
      loadFailures: 0,
      failure: null,
      lostSeq: null,
    };
    this.entries.set(record.id, entry);
    entry.lifecycle = new Lifecycle<AgentContext, AgentEvent>(this.#lifecycleLogic, { id: record.id, pinned: record.pinned, mailbox });
    entry.lifecycle.subscribe(() => {
      this.#trackBusy(entry);
      this.#maybeDrop(entry);
    });
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
    const w = this.#waiters.get(`${entry.id}\u0000${messageId}`);
    if (w) w.accepted = true;
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
        turn.outputs.push(copyJson(output, 'an output'));
      },
    };
  }

  #outboxSend(turn: Turn, to: string, message: Message): void {
    assertAgentId(to, 'to');
    turn.outbox.push({ agentId: to, messageId: this.o.newId(), message: copyMessage(message), at: this.o.clock.now() });
  }

  #outboxSpawn(entry: Entry, turn: Turn, type: string, options: { id: string; input?: unknown; pinned?: boolean }): string {
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
  #newActor(entry: Entry, snapshot: unknown | null): Actor<AnyStateMachine> {
    const logic = this.#logicOf(entry.def);
    const input = entry.record.input;
    // Timers of the logic (`after`) run on the runtime's clock.
    const clock = this.o.clock;
    const actor = createActor(logic, snapshot == null ? { input, clock } : { snapshot: snapshot as never, input, clock });
    const initial = actor.getSnapshot() as { status: string; error?: unknown };
    if (initial.status === 'error') throw initial.error ?? new Error('the snapshot does not restore');
    this.#actorOwner.set(actor, entry);
    actor.subscribe({ error: () => {} }); // the turn or the load reads the error from the snapshot
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
    const started = actor.getSnapshot() as { status: string; error?: unknown };
    if (started.status === 'error') {
      this.#stopActor(actor);
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
      if (ev.type === 'agent.send') this.#outboxSend(turn, ev.to as string, ev.message as Message);
      else if (ev.type === 'agent.spawn') this.#outboxSpawn(entry, turn, ev.agentType as string, ev as never);
      else turn.outputs.push(copyJson(ev, 'an emitted event'));
    } catch (err) {
      turn.error ??= { thrown: err };
    }
  }

  // --- lifecycle effects -----------------------------------------------------------

  /**
   * Runs `op` after the agent's earlier store work. `op` must end what it started (every
   * effect below catches its own failures); anything that still escapes is reported.
   */
  #queue(entry: Entry, op: () => Promise<void>): void {
    entry.chain = entry.chain.then(op).catch((err: unknown) => {
      this.o.emitter.emit('error', () => ({ id: entry.id, at: this.o.clock.now(), error: asError(err), where: 'store' }));
    });
  }

  /**
   * A store call, retried with backoff while the store says it is busy (another connection
   * holds its write lock): 10 ms, 20 ms, … up to STORE_RETRIES times, then its error.
   */
  async #retrying<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof StoreError) || !err.retryable || attempt >= STORE_RETRIES) throw err;
      }
      await new Promise<void>((resolve) => this.o.clock.setTimeout(resolve, Math.min(10 * 2 ** attempt, 1_000)));
    }
  }

  #load(entry: Entry): void {
    const started = this.o.clock.now();
    this.counters.loads++;
    this.o.emitter.emit('agent.loading', () => ({ id: entry.id, at: started }));
    this.#queue(entry, async () => {
      if (entry.destroyed) return;
      let snapshot: unknown;
      try {
        snapshot = await this.#retrying(() => this.o.store.loadSnapshot(entry.id));
        await this.#retrying(() => this.o.store.pending(entry.id, 1)); // the next message must be readable too
      } catch (err) {
        if (!entry.destroyed) this.#loadFailed(entry, err, err instanceof StoreCorruptionError);
        return;
      }
      if (entry.destroyed) return; // destroyed while reading: nothing to load any more
      try {
        if (snapshot != null && (typeof snapshot !== 'object' || !('value' in (snapshot as object)))) {
          throw new StoreCorruptionError(entry.id, 'its snapshot is not an XState snapshot');
        }
        entry.actor = this.#newActor(entry, snapshot);
        entry.lastPersisted = snapshot ?? undefined;
      } catch (err) {
        if (entry.actor) this.#stopActor(entry.actor);
        entry.actor = null;
        this.#loadFailed(entry, err instanceof StoreCorruptionError ? err : this.#unrestorable(entry, snapshot, err), true);
        return;
      }
      entry.loadFailures = 0;
      void this.o.store.note(entry.id, { kind: 'note', note: 'loaded', at: this.o.clock.now() }).catch(() => {});
      entry.lifecycle.send({ type: 'load.done' });
      this.o.emitter.emit('agent.loaded', () => ({ id: entry.id, at: this.o.clock.now(), durationMs: this.o.clock.now() - started }));
    });
  }

  /** The error of a stored snapshot that the current logic cannot restore. */
  #unrestorable(entry: Entry, snapshot: unknown, err: unknown): StoreCorruptionError {
    const value = (snapshot as { value?: unknown } | null)?.value;
    let stored = '';
    try {
      stored = value === undefined ? '' : ` (stored in state ${JSON.stringify(value)})`;
    } catch {
      stored = '';
    }
    return new StoreCorruptionError(
      entry.id,
      `its stored snapshot${stored} does not restore with the current definition of type "${entry.def.type}": ${describeThrown(err)}. ` +
        'Deploy a definition that still has that state (or migrate it), or destroy the agent',
      { cause: err },
    );
  }

  #loadFailed(entry: Entry, err: unknown, corrupt: boolean): void {
    const error = asError(err);
    entry.lifecycle.send({ type: 'load.failed', corrupt });
    if (corrupt) {
      this.#quarantined(entry, error);
      return;
    }
    this.o.emitter.emit('error', () => ({ id: entry.id, at: this.o.clock.now(), error, where: 'load' }));
    // Back off, doubling up to a minute, then try again (a store outage must not become a hot loop).
    const delay = Math.min(100 * 2 ** entry.loadFailures, 60_000);
    entry.loadFailures++;
    this.o.clock.setTimeout(() => {
      if (!entry.destroyed) entry.lifecycle.send({ type: 'retry' });
    }, delay);
  }

  /** The agent is quarantined (`failed`): its asks are answered with the error at once. */
  #quarantined(entry: Entry, error: Error): void {
    entry.failure = error;
    this.o.emitter.emit('agent.failed', () => ({ id: entry.id, at: this.o.clock.now(), error }));
    this.rejectWaiters(entry.id, error);
  }

  #runTurn(entry: Entry): void {
    this.#queue(entry, async () => {
      if (entry.destroyed) return;
      let head: StoredMessage | undefined;
      try {
        if (!entry.actor) throw new Error(`agent "${entry.id}" was given a turn while not loaded`);
        [head] = await this.#retrying(() => this.o.store.pending(entry.id, 1));
        if (!head) throw new Error(`agent "${entry.id}" was given a turn with an empty mailbox in the store`);
        if (head.seq === entry.lostSeq) {
          // Its turn ran before but could not be recorded: it may have had effects, so it is
          // recorded `crashed` now (as recovery would), never silently run again.
          const at = this.o.clock.now();
          await this.#retrying(() => this.o.store.commitTurn({ agentId: entry.id, seq: head!.seq, outcome: 'crashed', at, durationMs: 0 }));
          entry.lostSeq = null;
          this.o.emitter.emit('turn.finished', () => ({ id: entry.id, at, seq: head!.seq, outcome: 'crashed', durationMs: 0 }));
          entry.lifecycle.send({ type: 'turn.done', outcome: 'failed' });
          return;
        }
      } catch (err) {
        if (!entry.destroyed) this.#turnLost(entry, null, err);
        return;
      }
      const actor = entry.actor;
      let before: unknown;
      let unpersistable: Turn['error'] = null;
      try {
        before = entry.lastPersisted ?? actor.getPersistedSnapshot();
      } catch (err) {
        unpersistable = { thrown: notPersistable(entry.id, err) }; // e.g. an inline child actor
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
        phase: 'running',
        interrupted: false,
        error: unpersistable,
        before,
      };
      entry.turn = turn;
      try {
        await this.#retrying(() => this.o.store.beginTurn(entry.id, turn.seq, turn.startedAt));
      } catch (err) {
        entry.turn = null;
        if (!entry.destroyed) this.#turnLost(entry, turn, err, false);
        return;
      }
      this.o.emitter.emit('turn.started', () => ({ id: entry.id, at: turn.startedAt, seq: turn.seq }));
      if (unpersistable === null) await this.#execute(entry, actor, turn);
      if (entry.destroyed) return; // gone: nothing is written for it any more
      turn.phase = 'committing'; // from here an interrupt changes nothing
      if (turn.interrupted) await this.#commitInterrupted(entry, turn);
      else await this.#commit(entry, turn);
    });
  }

  /** Sends the message to the logic and waits until the turn is over (see `turnOver`). */
  #execute(entry: Entry, actor: Actor<AnyStateMachine>, turn: Turn): Promise<void> {
    // A machine that reached its final state takes no more events: the turn changes nothing.
    if (actor.getSnapshot().status !== 'active') return Promise.resolve();
    return new Promise<void>((resolve) => {
      let done = false;
      let sub: Subscription | null = null;
      const check = () => {
        if (done || !sub) return;
        if (turnOver(actor) || turn.interrupted || entry.destroyed) {
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
        turn.error ??= { thrown: err };
      }
      check();
    });
  }

  async #commit(entry: Entry, turn: Turn): Promise<void> {
    const actor = entry.actor!;
    const snap = actor.getSnapshot() as { status: string; error?: unknown };
    let failure: Turn['error'] = turn.error ?? (snap.status === 'error' ? { thrown: snap.error } : null);
    const at = this.o.clock.now();
    const durationMs = at - turn.startedAt;
    let outboxResults: { request: AppendRequest; seq: number; duplicate: boolean }[] = [];
    let snapshot: unknown;
    if (failure === null) {
      try {
        snapshot = storedSnapshot(entry.id, actor);
        // A statechart's state after the turn goes in the rollout too (the inspector's timeline);
        // not for fromTurn logic, nor a machine without states (its value is always `{}`).
        const value = isTurnLogic(entry.def.logic) ? undefined : stateValueOf(snapshot);
        await this.#checkTargets(turn);
        const r = await this.#retrying(() =>
          this.o.store.commitTurn({
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
          }),
        );
        entry.lastPersisted = snapshot;
        outboxResults = turn.outbox.map((request, i) => ({ request, seq: r.outbox[i]!.seq, duplicate: r.outbox[i]!.duplicate }));
      } catch (err) {
        if (err instanceof FencedError) return this.#turnLost(entry, turn, err, true);
        failure = { thrown: err };
      }
    }
    if (failure !== null) {
      // A failed turn leaves the state as it was: roll the logic back.
      this.#rollback(entry, turn);
      try {
        await this.#retrying(() =>
          this.o.store.commitTurn({ agentId: entry.id, seq: turn.seq, outcome: 'failed', error: describeThrown(failure!.thrown), at, durationMs }),
        );
      } catch (err) {
        return this.#turnLost(entry, turn, err, true, failure.thrown);
      }
      this.#finish(entry, turn, 'failed', durationMs, failure.thrown);
      entry.lifecycle.send({ type: 'turn.done', outcome: 'failed' });
      return;
    }
    this.#finish(entry, turn, 'done', durationMs, undefined, resultState(entry, snapshot));
    for (const rec of turn.spawned) {
      this.o.emitter.emit('agent.spawned', () => ({ id: rec.id, at, type: rec.type, parent: rec.parent, pinned: rec.pinned }));
    }
    this.delivered(outboxResults);
    entry.lifecycle.send({ type: 'turn.done', outcome: 'done' });
  }

  /** Records an interrupted turn: its state rolls back, its message is consumed. */
  async #commitInterrupted(entry: Entry, turn: Turn): Promise<void> {
    this.#rollback(entry, turn);
    const at = this.o.clock.now();
    try {
      await this.#retrying(() => this.o.store.commitTurn({ agentId: entry.id, seq: turn.seq, outcome: 'interrupted', at, durationMs: at - turn.startedAt }));
    } catch (err) {
      return this.#turnLost(entry, turn, err, true);
    }
    this.#finish(entry, turn, 'interrupted', at - turn.startedAt, undefined, resultState(entry, entry.lastPersisted ?? turn.before));
    entry.lifecycle.send({ type: 'turn.done', outcome: 'interrupted' });
  }

  /**
   * Refuses, before the commit, messages of a turn to agents whose type this runtime does
   * not define (a type removed in a new version): the turn fails instead.
   */
  async #checkTargets(turn: Turn): Promise<void> {
    if (turn.outbox.length === 0) return;
    const spawned = new Set(turn.spawned.map((r) => r.id));
    const ids = [...new Set(turn.outbox.map((m) => m.agentId))].filter((id) => !spawned.has(id) && !this.entries.has(id));
    if (ids.length === 0) return;
    for (const rec of await this.#retrying(() => this.o.store.getAgents(ids))) {
      if (!this.o.definitions.has(rec.type)) throw new UnknownAgentTypeError(rec.type, [...this.o.definitions.keys()], rec.id);
    }
  }

  /**
   * The turn could not be recorded (the store kept failing, or this runtime was fenced):
   * its caller gets the error, the permit is released, and the agent is quarantined
   * (`failed`): its message stays durable and is recorded `crashed` before anything else
   * of the agent runs (a reload, or the next start), as after a crash.
   */
  #turnLost(entry: Entry, turn: Turn | null, err: unknown, began = true, thrown?: unknown): void {
    const error = asError(err);
    if (turn) {
      if (began) entry.lostSeq = turn.seq;
      this.#rollback(entry, turn);
      entry.turn = null;
      const w = this.takeWaiter(entry.id, turn.messageId);
      w?.reject(err instanceof FencedError ? err : new TurnFailedError(entry.id, turn.seq, thrown ?? err, { recorded: false }));
    }
    if (entry.actor) this.#stopActor(entry.actor);
    entry.actor = null;
    entry.lifecycle.send({ type: 'turn.lost' });
    if (!(err instanceof FencedError)) this.#quarantined(entry, error);
  }

  #rollback(entry: Entry, turn: Turn): void {
    if (turn.before === undefined || !entry.actor) return; // the turn did not run
    this.#stopActor(entry.actor);
    entry.actor = null;
    try {
      entry.actor = this.#newActor(entry, turn.before);
    } catch {
      // It restored at load; if it no longer does, the agent reloads from the store later.
    }
  }

  /** Records the end of a turn for observers and ask() callers. */
  #finish(entry: Entry, turn: Turn, outcome: TurnOutcome, durationMs: number, failure: unknown, state?: unknown): void {
    entry.turn = null;
    entry.lastActiveAt = this.o.clock.now();
    const error = failure === undefined ? undefined : describeThrown(failure);
    this.o.emitter.emit('turn.finished', () => ({ id: entry.id, at: this.o.clock.now(), seq: turn.seq, outcome, durationMs, ...(error ? { error } : {}) }));
    const w = this.takeWaiter(entry.id, turn.messageId);
    if (!w) return;
    if (outcome === 'failed') w.reject(new TurnFailedError(entry.id, turn.seq, failure));
    // An interrupted turn's outputs were never recorded: it answers with none.
    else w.resolve({ outcome: outcome === 'interrupted' ? 'interrupted' : 'done', state, outputs: outcome === 'interrupted' ? [] : turn.outputs });
  }

  /** The agent's state as users see it, from the live actor (a copy; child actors as plain data). */
  stateOfLogic(entry: Entry): unknown {
    if (!entry.actor) return undefined;
    try {
      return resultState(entry, storedSnapshot(entry.id, entry.actor));
    } catch {
      return undefined;
    }
  }

  /** The lifecycle's `abortTurn`: stops a turn whose logic still runs; otherwise nothing. */
  #abortTurn(entry: Entry): void {
    const turn = entry.turn;
    if (!turn || turn.phase !== 'running' || turn.interrupted) return;
    turn.interrupted = true;
    turn.abort.abort(new Error('interrupted'));
    if (!entry.destroyed && isTurnLogic(entry.def.logic)) entry.actor?.send({ type: INTERRUPT_EVENT } as never);
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

  // --- messages delivered -------------------------------------------------------------

  /**
   * Messages now in their mailboxes (a turn's outbox, after its commit): tell the targets,
   * loading the records of those not in memory. A target whose record cannot be read is
   * quarantined; one whose type is not defined here keeps its mail for a runtime that has it.
   */
  delivered(accepted: readonly { request: AppendRequest; seq: number; duplicate: boolean }[]): void {
    for (const a of accepted) {
      if (a.duplicate) continue;
      const id = a.request.agentId;
      const existing = this.entries.get(id);
      if (existing) {
        this.accepted(existing, a.seq, a.request.messageId, a.request.message.type);
        continue;
      }
      this.o.store.getAgent(id).then(
        (rec) => {
          if (!rec || !this.o.definitions.has(rec.type)) return;
          const e = this.entries.get(id) ?? this.ensureEntry(rec, 0);
          this.accepted(e, a.seq, a.request.messageId, a.request.message.type);
        },
        (err: unknown) => {
          const error = asError(err);
          if (err instanceof StoreCorruptionError) {
            this.damaged.set(id, error);
            this.o.emitter.emit('agent.failed', () => ({ id, at: this.o.clock.now(), error }));
          } else {
            this.o.emitter.emit('error', () => ({ id, at: this.o.clock.now(), error, where: 'store' }));
          }
        },
      );
    }
  }

  // --- user calls that act on an entry -----------------------------------------------

  interrupt(id: string): void {
    const entry = this.entries.get(id);
    if (entry && lifecycleOf(entry.lifecycle.getSnapshot().value) === 'running') entry.lifecycle.send({ type: 'interrupt' });
  }

  /** Why the agent is quarantined, if it is (its record or state cannot be read or written). */
  failureOf(id: string): Error | undefined {
    const entry = this.entries.get(id);
    if (entry && lifecycleOf(entry.lifecycle.getSnapshot().value) === 'failed') return entry.failure ?? undefined;
    return this.damaged.get(id);
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
    this.damaged.delete(id);
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
    if (this.entries.get(id) === entry) this.entries.delete(id);
    this.#busy.delete(entry);
    this.#keepAlive();
  }

  /**
   * Rejects the ask() waiters of this agent whose messages were accepted (or of every
   * agent, without an id). An ask whose message is not accepted yet is not affected: it
   * will be accepted later (by a new incarnation of the id, after a destroy) or refused.
   */
  rejectWaiters(id: string | null, err: unknown): void {
    const prefix = id === null ? '' : `${id}\u0000`;
    for (const [key, w] of this.#waiters) {
      if (!key.startsWith(prefix) || (id !== null && !w.accepted)) continue;
      this.#waiters.delete(key);
      w.reject(err);
    }
    this.#keepAlive();
  }

  /**
   * Fenced (another owner took the store over): every agent leaves memory without a
   * single write, and every waiting ask gets `err`.
   */
  dropAll(err: unknown): void {
    for (const entry of [...this.entries.values()]) {
      entry.destroyed = true;
      if (entry.turn && !entry.turn.interrupted) {
        entry.turn.interrupted = true;
        entry.turn.abort.abort(err);
      }
      entry.lifecycle.send({ type: 'destroy' });
      if (entry.actor) this.#stopActor(entry.actor);
      entry.actor = null;
      entry.lifecycle.stop();
      for (const r of entry.leftMemory.splice(0)) r();
    }
    this.entries.clear();
    this.#busy.clear();
    this.rejectWaiters(null, err);
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
    this.#busy.clear();
    this.#waiters.clear();
    this.#keepAlive();
    for (const e of this.entries.values()) {
      if (e.actor) this.#stopActor(e.actor);
      e.lifecycle.stop();
    }
    this.supervisor.stop();
  }
}
