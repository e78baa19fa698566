/**
 * The host of resident agents: it runs the two statecharts for real. It keeps, per agent
 * that is in memory or has work, an entry with its lifecycle (the agent statechart, run by
 * a small interpreter verified against XState: Lifecycle.ts) and, while resident, its
 * logic actor; it wires the lifecycles to the supervisor and to the effects that carry
 * them out (Loads.ts: load and flush; Turns.ts: turns). The calls from outside that act on
 * an agent in memory (pin, interrupt, close, destroy, drop …) are Control.ts's.
 *
 * Agents with no entry are unloaded with an empty mailbox: nothing is kept for them here
 * beyond what the store holds.
 */
import { createActor, type Actor } from 'xstate';
import { agentMachine, lifecycleOf, type AgentContext, type AgentEvent, type LifecycleState } from '../../machines/agent.js';
import { supervisorMachine, type SupervisorContext, type SupervisorEffects, type SupervisorEvent } from '../../machines/supervisor.js';
import { agentEventFor, supervisorBoundActions } from '../../machines/protocol.js';
import type { PolicyFactory } from '../../machines/policy.js';
import type { Clock } from '../clock.js';
import type { AgentDefinition, Retention } from '../defineAgent.js';
import { StoreCorruptionError, UnknownAgentTypeError } from '../errors.js';
import type { RuntimeEmitter } from '../events.js';
import type { StoreCluster } from '../store/Cluster.js';
import type { AgentRecord, AppendRequest, Message, Store } from '../store/Store.js';
import { Actors } from './Actors.js';
import { Control } from './Control.js';
import { Inspection } from './Inspection.js';
import { Lifecycle } from './Lifecycle.js';
import { SharedMail } from './SharedMail.js';
import { Loads } from './Loads.js';
import { asError, hasLiveChildren, resultState, storedSnapshot } from './snapshots.js';
import { Timers } from './Timers.js';
import { Turns } from './Turns.js';
import type { Core, Entry } from './types.js';
import { Waiters } from './Waiters.js';
import { WriteBuffer } from './WriteBuffer.js';

export type { Entry, TurnResult, Waiter } from './types.js';
export { quiescent } from './snapshots.js';

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
  /** The history retention of agents whose definition does not say. */
  history: Retention;
}

/** An entry's chain when nothing is queued on it: one promise for all of them. */
const SETTLED: Promise<void> = Promise.resolve();

export class Host implements Core {
  readonly entries = new Map<string, Entry>();
  readonly supervisor: Actor<typeof supervisorMachine>;
  readonly counters = { loads: 0, evictions: 0, hits: 0, misses: 0 };
  readonly store: Store;
  readonly clock: Clock;
  readonly emitter: RuntimeEmitter;
  readonly definitions: Map<string, AgentDefinition>;
  readonly history: Retention;
  readonly buffer: WriteBuffer;
  readonly waiters: Waiters;
  readonly inspection: Inspection;
  readonly actors: Actors;
  readonly timers: Timers;
  /** The calls from outside that act on agents in memory (pin, interrupt, close, destroy, drop …). */
  readonly control: Control;
  /** A shared store's cluster (postgresStore): only agents of the shards owned here live here. */
  readonly cluster: StoreCluster | undefined;
  /** Shards being handed over to another process: owned still, but nothing of them loads. */
  readonly leaving = new Set<number>();
  readonly #mail: SharedMail | undefined;
  readonly #loads: Loads;
  readonly #turns: Turns;
  readonly #lifecycleLogic: typeof agentMachine;
  #idleTimer: unknown = null;
  #idleAt = Infinity;

  constructor(private readonly o: HostOptions) {
    const { clock } = o;
    this.store = o.store;
    this.clock = clock;
    this.emitter = o.emitter;
    this.definitions = o.definitions;
    this.history = o.history;
    this.cluster = o.store.cluster;
    this.#mail = this.cluster && new SharedMail(this.cluster, this, (entry) => this.#maybeDrop(entry));
    this.buffer = new WriteBuffer(o.store, clock);
    this.waiters = new Waiters(o.keepAlive);
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
    this.inspection = new Inspection(this.supervisor, () => this.entries.values(), (id, error) =>
      o.emitter.emit('error', () => ({ id, at: clock.now(), error, where: 'inspect observer' })),
    );
    this.actors = new Actors({ definitions: o.definitions, clock, emitter: o.emitter, newId: o.newId }, this.inspection);
    this.timers = new Timers(this, o.newId);
    this.control = new Control(this);
    this.#loads = new Loads(this);
    this.#turns = new Turns(this, (entry, error) => this.#loads.quarantine(entry, error));
    const bound = supervisorBoundActions((e) => this.supervisor.send(e), () => clock.now());
    const entryOf = (c: AgentContext) => this.entries.get(c.id)!;
    this.#lifecycleLogic = agentMachine.provide({
      actions: {
        ...bound,
        becomeEvictable: (a) => {
          const entry = this.entries.get(a.context.id);
          // Idle: the snapshot kept for rolling back a turn is made again at the next turn (memory).
          if (entry) entry.lastPersisted = undefined;
          // A live long-lived child (a callback, an observable) keeps the agent resident.
          const actor = entry?.actor;
          if (actor && hasLiveChildren(actor)) return;
          bound.becomeEvictable(a);
          this.#scheduleIdleCheck(clock.now() + (o.idleTimeout ?? Infinity));
        },
        notifyFlushing: (a) => {
          bound.notifyFlushing(a);
          const reason = a.context.flushReason ?? 'close';
          o.emitter.emit('agent.evicting', () => ({ id: a.context.id, at: clock.now(), reason }));
        },
        startLoad: ({ context }) => {
          const entry = entryOf(context);
          // Its shard moved to another process meanwhile: that process runs it now. Dropped
          // once this transition is over (a lifecycle stopped inside its own action would
          // never hand its slot back).
          if (!this.owns(entry.id)) queueMicrotask(() => this.control.drop(entry, null));
          else this.#loads.load(entry);
        },
        startTurn: ({ context, event }) => {
          const entry = entryOf(context);
          if (event.type === 'permit.granted') entry.streak = 0;
          this.#turns.run(entry);
        },
        abortTurn: ({ context }) => this.#turns.abort(entryOf(context)),
        startFlush: ({ context }) => this.#loads.flush(entryOf(context), context.flushReason ?? 'close'),
        reportError: ({ context, event }) => {
          // A corrupt record is reported by the quarantine (`agent.failed`), not as an `error`.
          if (event.type === 'load.failed' && event.corrupt === true) return;
          const problem = this.entries.get(context.id)?.problem;
          if (!problem) return;
          o.emitter.emit('error', () => ({ id: context.id, at: clock.now(), error: problem.error, where: problem.where }));
        },
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

  // --- Core -------------------------------------------------------------------------

  queue(entry: Entry, op: () => Promise<void>): void {
    // Once the chain has run out it is the one shared settled promise again (48 B per idle agent).
    const ranOut = () => {
      if (entry.chain === next) entry.chain = SETTLED;
    };
    const next: Promise<void> = entry.chain.then(op).then(ranOut, (err: unknown) => {
      ranOut();
      this.emitter.emit('error', () => ({ id: entry.id, at: this.clock.now(), error: asError(err), where: 'store' }));
    });
    entry.chain = next;
  }

  armTimer(at: number): void {
    this.timers.arm(at);
  }

  permitWanted(): boolean {
    return (this.supervisor.getSnapshot().context as SupervisorContext).permitQueue.size > 0;
  }

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
        this.accepted(existing, a.seq, a.request.messageId, a.request.message);
        continue;
      }
      if (!this.owns(id)) continue; // its owner was woken by the store
      this.store.getAgent(id).then(
        (rec) => {
          if (!rec || !this.definitions.has(rec.type)) return;
          const e = this.entries.get(id) ?? this.ensureEntry(rec, 0);
          this.accepted(e, a.seq, a.request.messageId, a.request.message);
        },
        (err: unknown) => {
          const error = asError(err);
          if (err instanceof StoreCorruptionError) {
            this.control.damaged.set(id, error);
            this.emitter.emit('agent.failed', () => ({ id, at: this.clock.now(), error }));
          } else {
            this.emitter.emit('error', () => ({ id, at: this.clock.now(), error, where: 'store' }));
          }
        },
      );
    }
  }

  // --- entries ----------------------------------------------------------------------

  /** The entry of an agent, created (unloaded, `mailbox` messages waiting) when absent. */
  ensureEntry(record: AgentRecord, mailbox = 0): Entry {
    const existing = this.entries.get(record.id);
    if (existing) return existing;
    const def = this.definitions.get(record.type);
    if (!def) throw new UnknownAgentTypeError(record.type, [...this.definitions.keys()], record.id);
    const entry: Entry = {
      id: record.id,
      def,
      // A copy of its own shape (every field in the object), with the definition's type string.
      record: { id: record.id, type: def.type, parent: record.parent, pinned: record.pinned, input: record.input, createdAt: record.createdAt },
      lifecycle: null as never,
      actor: null,
      chain: SETTLED,
      holds: 0,
      turn: null,
      streak: 0,
      inbox: null,
      nextSeq: null,
      begun: null,
      lastPersisted: undefined,
      lastActiveAt: this.clock.now(),
      destroyed: false,
      leftMemory: null,
      loadFailures: 0,
      sync: null,
      seen: null,
      failure: null,
      problem: null,
      lostSeq: null,
    };
    this.entries.set(record.id, entry);
    const pinned = record.pinned || this.control.pinned(record.id);
    entry.lifecycle = new Lifecycle<AgentContext, AgentEvent>(this.#lifecycleLogic, { id: record.id, pinned, mailbox });
    entry.lifecycle.subscribe(this.#afterEvent, entry);
    entry.lifecycle.start();
    return entry;
  }

  /** After every event of an entry's lifecycle: one function for every entry (no closure per agent). */
  readonly #afterEvent = (entry: Entry): void => {
    this.#trackBusy(entry);
    this.#maybeDrop(entry);
  };

  /** Drops one hold taken for an accept in flight. */
  release(entry: Entry): void {
    entry.holds--;
    this.#maybeDrop(entry);
  }

  stateOf(id: string): LifecycleState {
    const e = this.entries.get(id);
    return e ? lifecycleOf(e.lifecycle.getSnapshot().value) : 'unloaded';
  }

  /** The agent's state as users see it, from the live actor (a copy; child actors as plain data). */
  stateOfLogic(entry: Entry): unknown {
    if (!entry.actor) return undefined;
    try {
      return resultState(entry.def, storedSnapshot(entry.id, entry.actor));
    } catch {
      return undefined;
    }
  }

  /** With mail, a turn, a load or a flush: the process is kept alive for it. */
  #trackBusy(entry: Entry): void {
    const snap = entry.lifecycle.getSnapshot();
    const st = lifecycleOf(snap.value);
    const idle = entry.destroyed || st === 'failed' || st === 'destroyed' || (snap.context.mailbox === 0 && (st === 'idle' || (snap.value as { unloaded?: string }).unloaded === 'dormant'));
    this.waiters.busy(entry, !idle);
  }

  /** Unloaded, no mail, nothing in flight: the entry can go (the store holds everything). */
  #droppable(entry: Entry): boolean {
    if (entry.destroyed || entry.holds > 0 || entry.turn || entry.sync !== null || this.entries.get(entry.id) !== entry) return false;
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

  /** A message was accepted into the agent's mailbox (durably). */
  accepted(entry: Entry, seq: number, messageId: string, message: Message): void {
    const st = lifecycleOf(entry.lifecycle.getSnapshot().value);
    if (st === 'idle' || st === 'running') this.counters.hits++;
    else this.counters.misses++;
    entry.lastActiveAt = this.clock.now();
    this.waiters.accepted(entry.id, messageId);
    entry.inbox ??= new Map();
    if (entry.inbox.size < 4_096) entry.inbox.set(seq, { agentId: entry.id, seq, messageId, message, at: entry.lastActiveAt });
    // On a shared store other processes write to this mailbox too: every seq is counted once,
    // by whoever learns of it first (this accept, or a sync that read the store's last seq).
    if (this.#mail) this.#mail.count(entry, seq);
    else entry.lifecycle.send({ type: 'message.accepted' });
    this.emitter.emit('message.accepted', () => ({ id: entry.id, at: this.clock.now(), seq, messageId, type: message.type }));
  }

  // --- a shared store (cluster) -----------------------------------------------------

  /** Whether the agent may live in this process: always, unless its shard is owned elsewhere. */
  owns(id: string): boolean {
    const c = this.cluster;
    return c === undefined || (c.owns(id) && (this.leaving.size === 0 || !this.leaving.has(c.shardOf(id))));
  }

  /**
   * The entry of an agent with mail, found in the store (recovery, a hint, a poll). On a
   * shared store its count is read from the store in its chain (SharedMail).
   */
  withMail(record: AgentRecord, mailbox: number): Entry {
    return this.#mail ? this.#mail.withMail(record) : this.ensureEntry(record, mailbox);
  }

  /** A shared store: brings the agent's mailbox count up to the store's (SharedMail.sync). */
  syncMail(entry: Entry): void {
    this.#mail?.sync(entry);
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
    if (this.#idleTimer !== null) this.clock.clearTimeout(this.#idleTimer);
    this.#idleAt = at;
    this.#idleTimer = this.clock.setTimeout(() => {
      this.#idleTimer = null;
      this.#idleAt = Infinity;
      this.supervisor.send({ type: 'idle.check', now: this.clock.now() });
      const c = this.supervisor.getSnapshot().context as SupervisorContext;
      const next = c.idleSince?.peekValue();
      if (next !== undefined) this.#scheduleIdleCheck(next + this.o.idleTimeout!);
    }, Math.max(0, at - this.clock.now()));
  }

  /** The runtime stops: every agent's lifecycle and actor, the timers and the supervisor. */
  stopAll(): void {
    if (this.#idleTimer !== null) this.clock.clearTimeout(this.#idleTimer);
    this.timers.stop();
    for (const e of this.entries.values()) {
      if (e.actor) this.inspection.stop(e.actor);
      e.lifecycle.stop();
    }
    this.waiters.clear();
    this.supervisor.stop();
  }
}
