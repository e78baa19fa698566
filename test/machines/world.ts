/**
 * A small closed world for model-based tests: one supervisor and a few agent
 * lifecycle machines, wired together through asynchronous FIFO channels (one each
 * way per agent), with the environment's I/O (loads, turns, flushes) and the user's
 * calls (messages, close, destroy, pin, stop) as events the explorer chooses.
 *
 * Every interleaving of deliveries and environment events is a path the explorer may
 * take, so races the runtime can meet (a message accepted while an `evict` is on its
 * way; a permit granted to an agent that is closing) are all in here. Invariants of
 * DESIGN.md are checked after every step, against the agents' real states, not
 * against the supervisor's books.
 */
import { createActor, type Actor } from 'xstate';
import { agentMachine, lifecycleOf, type AgentEvent, type AgentContext } from '../../machines/agent.js';
import {
  supervisorMachine,
  type SupervisorContext,
  type SupervisorEvent,
  type SupervisorEffects,
} from '../../machines/supervisor.js';
import { lru, type PolicyFactory } from '../../machines/policy.js';
import { LinkedSet } from '../../machines/LinkedSet.js';
import type { Model } from '../../src/testing/explore.js';
import { agentEventFor, supervisorBoundActions } from '../../machines/protocol.js';

export interface Budget {
  messages: number;
  closes: number;
  destroys: number;
  pins: number;
  loadFailures: number;
  flushFailures: number;
  interrupts: number;
  idleSweeps: number;
  stops: number;
}

export interface WorldConfig {
  agents: number;
  residentCap: number;
  runningCap: number;
  /** Indexes of agents pinned from their first message on. */
  pinned?: number[];
  budget: Partial<Budget>;
  policy?: PolicyFactory;
  idleTimeout?: number;
  /** The machines under test (mutants are passed here). */
  agentLogic?: typeof agentMachine;
  supervisorLogic?: typeof supervisorMachine;
  /** Offer `stop` only once every message of the budget was sent (long random walks). */
  stopLate?: boolean;
  /** The supervisor's caps, when a test wants them to differ from the checked ones. */
  supervisorCaps?: { residentCap: number; runningCap: number };
}

export type EnvEvent =
  | { kind: 'msg' | 'loadOk' | 'loadFail' | 'loadCorrupt' | 'turnDone' | 'turnNext' | 'turnLost' | 'interrupt' | 'flushOk' | 'flushFail'; agent: number }
  | { kind: 'close' | 'destroy' | 'retry' | 'pin' | 'deliverSup' | 'deliverAgent'; agent: number }
  | { kind: 'idleSweep' }
  | { kind: 'stop' };

const NAMES = 'abcdefgh';
const ZERO: Budget = {
  messages: 0,
  closes: 0,
  destroys: 0,
  pins: 0,
  loadFailures: 0,
  flushFailures: 0,
  interrupts: 0,
  idleSweeps: 0,
  stops: 0,
};

/** Statistics gathered across every world of one exploration (for coverage reports). */
export interface Observed {
  agentTransitions: Set<unknown>;
  supervisorTransitions: Set<unknown>;
  effects: Map<string, number>;
}

export const newObserved = (): Observed => ({
  agentTransitions: new Set(),
  supervisorTransitions: new Set(),
  effects: new Map(),
});

let current: World | null = null;
const world = (): World => {
  if (!current) throw new Error('no world is being driven');
  return current;
};

/** Agent effects routed into the world's channels (through the one protocol). */
const agentActions = {
  ...supervisorBoundActions(
    (e, id) => world().toSup(id, e),
    () => world().clock,
  ),
  startTurn: ({ context }: { context: AgentContext }) => world().onStartTurn(context),
  reportIllegal: ({ context, event }: { context: AgentContext; event: AgentEvent }) =>
    world().violations.push(`agent ${context.id} got ${event.type}, which its state cannot take`),
};

const supervisorActions = {
  grantSlot: (_: unknown, p: SupervisorEffects['grantSlot']) => world().fromSup('grantSlot', p.id, agentEventFor('grantSlot', p)),
  grantPermit: (_: unknown, p: SupervisorEffects['grantPermit']) =>
    world().fromSup('grantPermit', p.id, agentEventFor('grantPermit', p)),
  evict: (_: unknown, p: SupervisorEffects['evict']) => world().onEvict(p.id, p.reason),
  reportSaturated: () => world().countEffect('reportSaturated'),
};

const provided = new WeakMap<object, unknown>();
function provideOnce<T extends { provide: (impl: never) => T }>(logic: T, actions: object): T {
  let p = provided.get(logic) as T | undefined;
  if (!p) {
    p = logic.provide({ actions } as never);
    provided.set(logic, p);
  }
  return p;
}

export class World {
  readonly ids: string[];
  readonly agents: Actor<typeof agentMachine>[];
  readonly supervisor: Actor<typeof supervisorMachine>;
  readonly inboxSup: SupervisorEvent[][];
  readonly inboxAgent: AgentEvent[][];
  readonly used: Budget = { ...ZERO };
  readonly budget: Budget;
  readonly violations: string[] = [];
  /** Agents asked to close (or stopped) while in memory, that have not flushed since. */
  readonly closeOwed: boolean[] = [];
  /** Reference LRU: agents the supervisor was told are evictable, least recent first. */
  readonly refLru: string[] = [];
  clock = 0;
  stopped = false;

  /** A new world, or a copy of `from` that can go its own way. */
  constructor(
    readonly config: WorldConfig,
    readonly observed: Observed | null = null,
    from?: World,
  ) {
    current = this;
    this.budget = { ...ZERO, ...config.budget };
    this.ids = Array.from({ length: config.agents }, (_, i) => NAMES[i]!);
    this.inboxSup = from ? from.inboxSup.map((q) => [...q]) : this.ids.map(() => []);
    this.inboxAgent = from ? from.inboxAgent.map((q) => [...q]) : this.ids.map(() => []);
    if (from) {
      Object.assign(this.used, from.used);
      this.violations.push(...from.violations);
      this.refLru.push(...from.refLru);
      this.closeOwed.push(...from.closeOwed);
      this.clock = from.clock;
      this.stopped = from.stopped;
    }
    const inspect = observed
      ? (set: Set<unknown>) => (ev: { type: string; _transitions?: unknown[] }) => {
          if (ev.type === '@xstate.microstep') for (const t of ev._transitions ?? []) set.add(t);
        }
      : null;
    const sup = provideOnce(config.supervisorLogic ?? supervisorMachine, supervisorActions);
    const caps = config.supervisorCaps ?? { residentCap: config.residentCap, runningCap: config.runningCap };
    const input = { ...caps, policy: config.policy, idleTimeout: config.idleTimeout ?? null };
    this.supervisor = createActor(sup, {
      input,
      ...(from ? { snapshot: cloneSupervisor(from.supervisor, input.policy) } : {}),
      ...(inspect ? { inspect: inspect(observed!.supervisorTransitions) } : {}),
    }).start();
    const agent = provideOnce(config.agentLogic ?? agentMachine, agentActions);
    this.agents = this.ids.map((id, i) =>
      createActor(agent, {
        input: { id, pinned: config.pinned?.includes(i) ?? false },
        ...(from ? { snapshot: from.agents[i]!.getPersistedSnapshot() } : {}),
        ...(inspect ? { inspect: inspect(observed!.agentTransitions) } : {}),
      }).start(),
    );
  }

  clone(): World {
    return new World(this.config, this.observed, this);
  }

  // --- routing -------------------------------------------------------------

  toSup(id: string, e: SupervisorEvent): void {
    this.inboxSup[this.ids.indexOf(id)]!.push(e);
  }

  fromSup(effect: string, id: string, e: AgentEvent): void {
    this.countEffect(effect);
    this.inboxAgent[this.ids.indexOf(id)]!.push(e);
  }

  countEffect(effect: string): void {
    if (this.observed) this.observed.effects.set(effect, (this.observed.effects.get(effect) ?? 0) + 1);
  }

  onEvict(id: string, reason: 'cap' | 'idle'): void {
    const i = this.ids.indexOf(id);
    // (3) from the supervisor's side: it evicts only agents it was told are evictable,
    // and (LRU) the least recent of them.
    if (this.refLru[0] !== id) {
      this.violations.push(
        `supervisor evicted ${id} (${reason}) but the least recently used evictable agent is ${this.refLru[0] ?? 'none'} (LRU order ${this.refLru.join(',') || 'empty'})`,
      );
    }
    // ... and the agent really is evictable, unless news saying otherwise is on its way.
    const s = this.agents[i]!.getSnapshot();
    if (!(s.value === 'idle' && canEvict(s.context)) && this.inboxSup[i]!.length === 0) {
      this.violations.push(`supervisor evicted ${id} (${reason}) while it is ${JSON.stringify(s.value)} with no news in flight`);
    }
    remove(this.refLru, id);
    this.fromSup('evict', id, agentEventFor('evict', { id, reason }));
  }

  onStartTurn(context: AgentContext): void {
    if (context.mailbox <= 0) this.violations.push(`agent ${context.id} started a turn with an empty mailbox`);
  }

  // --- the environment -----------------------------------------------------

  state(i: number): string {
    return lifecycleOf(this.agents[i]!.getSnapshot().value);
  }

  enabled(): EnvEvent[] {
    const out: EnvEvent[] = [];
    const { used, budget } = this;
    this.ids.forEach((_, agent) => {
      if (this.inboxSup[agent]!.length) out.push({ kind: 'deliverSup', agent });
      if (this.inboxAgent[agent]!.length) out.push({ kind: 'deliverAgent', agent });
      const snap = this.agents[agent]!.getSnapshot();
      const st = lifecycleOf(snap.value);
      if (st === 'destroyed') return;
      if (used.messages < budget.messages && !this.stopped) out.push({ kind: 'msg', agent });
      if (st === 'loading') {
        out.push({ kind: 'loadOk', agent });
        if (used.loadFailures < budget.loadFailures) {
          out.push({ kind: 'loadFail', agent }, { kind: 'loadCorrupt', agent });
        }
      }
      if (st === 'running') {
        out.push({ kind: 'turnDone', agent });
        // The fast path: the turn ends and the agent keeps its permit for its next message.
        if (snap.context.mailbox > 1) out.push({ kind: 'turnNext', agent });
        // A turn whose outcome cannot be written quarantines its agent (a store failure, like a load failure).
        if (used.loadFailures < budget.loadFailures) out.push({ kind: 'turnLost', agent });
      }
      if ((st === 'running' || st === 'loading') && used.interrupts < budget.interrupts) out.push({ kind: 'interrupt', agent });
      if (st === 'flushing') {
        out.push({ kind: 'flushOk', agent });
        if (used.flushFailures < budget.flushFailures) out.push({ kind: 'flushFail', agent });
      }
      if (used.closes < budget.closes && !this.stopped) out.push({ kind: 'close', agent });
      if (used.destroys < budget.destroys) out.push({ kind: 'destroy', agent });
      if (JSON.stringify(snap.value) === '{"unloaded":"backoff"}' || st === 'failed') out.push({ kind: 'retry', agent });
      if (used.pins < budget.pins) out.push({ kind: 'pin', agent });
    });
    if (used.idleSweeps < budget.idleSweeps && this.config.idleTimeout !== undefined) out.push({ kind: 'idleSweep' });
    if (used.stops < budget.stops && (!this.config.stopLate || used.messages >= budget.messages)) out.push({ kind: 'stop' });
    return out;
  }

  apply(e: EnvEvent): void {
    this.step(e);
    this.settleCloses();
  }

  /** A close is owed by an agent in memory (or one waiting for a slot when stopped). */
  oweClose(i: number): void {
    const st = this.state(i);
    const waiting = JSON.stringify(this.agents[i]!.getSnapshot().value) === '{"unloaded":"waitingForSlot"}';
    if (st === 'loading' || st === 'idle' || st === 'running' || (waiting && this.stopped)) this.closeOwed[i] = true;
  }

  /** An agent that reached flushing (or was destroyed) has honoured its close. */
  settleCloses(): void {
    this.agents.forEach((_, i) => {
      const st = this.state(i);
      if (st === 'flushing' || st === 'destroyed') this.closeOwed[i] = false;
    });
  }

  step(e: EnvEvent): void {
    current = this;
    this.clock++;
    if (e.kind === 'idleSweep') {
      this.used.idleSweeps++;
      this.supervisor.send({ type: 'idle.check', now: this.clock + (this.config.idleTimeout ?? 0) });
      return;
    }
    if (e.kind === 'stop') {
      this.used.stops++;
      this.stopped = true;
      this.supervisor.send({ type: 'stop' });
      this.agents.forEach((a, i) => {
        this.oweClose(i);
        a.send({ type: 'close', reason: 'stop' });
      });
      this.settleCloses();
      return;
    }
    const i = e.agent;
    const id = this.ids[i]!;
    const agent = this.agents[i]!;
    switch (e.kind) {
      case 'deliverSup': {
        const ev = this.inboxSup[i]!.shift()!;
        this.trackRefLru(ev);
        this.supervisor.send(ev);
        return;
      }
      case 'deliverAgent': {
        const ev = this.inboxAgent[i]!.shift()!;
        const before = agent.getSnapshot();
        agent.send(ev);
        const after = agent.getSnapshot();
        if (ev.type === 'evict' && lifecycleOf(after.value) === 'flushing' && lifecycleOf(before.value) !== 'flushing') {
          // (3) from the agent's side: the guard held when it left for flushing.
          if (!(before.value === 'idle' && canEvict(before.context))) {
            this.violations.push(
              `agent ${id} was evicted while ${JSON.stringify(before.value)} with mailbox ${before.context.mailbox}, permitPending ${before.context.permitPending}, pinned ${before.context.pinned}`,
            );
          }
        }
        return;
      }
      case 'msg':
        this.used.messages++;
        agent.send({ type: 'message.accepted' });
        return;
      case 'loadOk':
        agent.send({ type: 'load.done' });
        return;
      case 'loadFail':
      case 'loadCorrupt':
        this.used.loadFailures++;
        agent.send({ type: 'load.failed', corrupt: e.kind === 'loadCorrupt' });
        return;
      case 'turnDone':
        agent.send({ type: 'turn.done', outcome: 'done' });
        return;
      case 'turnNext':
        agent.send({ type: 'turn.done', outcome: 'done', continue: true });
        return;
      case 'turnLost':
        this.used.loadFailures++;
        agent.send({ type: 'turn.lost' });
        return;
      case 'interrupt':
        this.used.interrupts++;
        agent.send({ type: 'interrupt' });
        return;
      case 'flushOk':
        agent.send({ type: 'flush.done' });
        return;
      case 'flushFail':
        this.used.flushFailures++;
        agent.send({ type: 'flush.failed' });
        return;
      case 'close':
        this.used.closes++;
        this.oweClose(i);
        agent.send({ type: 'close' });
        return;
      case 'destroy':
        this.used.destroys++;
        agent.send({ type: 'destroy' });
        return;
      case 'retry':
        agent.send({ type: 'retry' });
        return;
      case 'pin':
        this.used.pins++;
        agent.send({ type: 'pin' });
        return;
    }
  }

  /** The reference LRU follows what the supervisor is told, independently of its policy. */
  trackRefLru(ev: SupervisorEvent): void {
    switch (ev.type) {
      case 'agent.evictable':
        remove(this.refLru, ev.id);
        this.refLru.push(ev.id);
        return;
      case 'permit.request':
      case 'agent.flushing':
      case 'agent.released':
      case 'agent.pinned':
        remove(this.refLru, ev.id);
        return;
    }
  }

  quiescent(): boolean {
    return this.inboxSup.every((q) => q.length === 0) && this.inboxAgent.every((q) => q.length === 0);
  }

  /** Throws with every broken invariant. */
  check(): void {
    const problems = [...this.violations];
    const { residentCap, runningCap } = this.config;
    const snaps = this.agents.map((a) => a.getSnapshot());
    const states = snaps.map((s) => lifecycleOf(s.value));
    const holding = (st: string) => st === 'loading' || st === 'idle' || st === 'running' || st === 'flushing';
    const sc = this.supervisor.getSnapshot().context as SupervisorContext;

    // (1) resident + loading + flushing (unpinned) ≤ residentCap, in truth and in the books.
    const inMemory = snaps.filter((s, i) => holding(states[i]!) && !s.context.pinned).length;
    if (inMemory > residentCap) problems.push(`(1) ${inMemory} unpinned agents in memory, cap ${residentCap}`);
    if (sc.phase.size > residentCap) problems.push(`(1) supervisor counts ${sc.phase.size} slots used, cap ${residentCap}`);
    // (2) running ≤ runningCap.
    const running = states.filter((s) => s === 'running').length;
    if (running > runningCap) problems.push(`(2) ${running} agents running, cap ${runningCap}`);
    // No free slot is left unused while someone waits (outside stop).
    if (!this.stopped && sc.phase.size < residentCap && sc.slotQueue.size > 0) {
      problems.push(`(7) ${sc.slotQueue.size} slot requests wait with ${residentCap - sc.phase.size} slots free`);
    }
    if (this.quiescent()) {
      // (7) progress: nobody waits for a slot while an agent could be evicted for it.
      const waiting = snaps.filter((s) => JSON.stringify(s.value) === '{"unloaded":"waitingForSlot"}').length;
      const evictable = snaps.filter((s) => s.value === 'idle' && canEvict(s.context)).length;
      const freeing = snaps.filter((s, i) => states[i] === 'flushing' && !s.context.pinned).length;
      if (!this.stopped && waiting > freeing && evictable > 0) {
        problems.push(`(7) ${waiting} agents wait for a slot, ${freeing} slots are being freed, and ${evictable} agents could be evicted`);
      }
      if (!this.stopped && waiting > 0 && inMemory < residentCap) {
        problems.push(`(7) ${waiting} agents wait for a slot while only ${inMemory} of ${residentCap} slots are used`);
      }
      const wantPermit = snaps.filter((s) => s.value === 'idle' && s.context.permitPending).length;
      if (!this.stopped && wantPermit > 0 && running < runningCap) {
        problems.push(`(7) ${wantPermit} agents wait for a permit while ${running} of ${runningCap} run`);
      }
      // The supervisor's books agree with the agents.
      this.ids.forEach((id, i) => {
        const st = states[i]!;
        const pinned = snaps[i]!.context.pinned;
        const want = !holding(st) || pinned ? undefined : st === 'loading' ? 'loading' : st === 'flushing' ? 'flushing' : 'resident';
        if (sc.phase.get(id) !== want) problems.push(`books: ${id} is ${st} but the supervisor has ${sc.phase.get(id) ?? 'no slot'}`);
        if (sc.running.has(id) !== (st === 'running')) problems.push(`books: ${id} is ${st}, supervisor running=${sc.running.has(id)}`);
        if (sc.pinned.has(id) !== (pinned && holding(st))) problems.push(`books: ${id} pinned=${pinned} ${st}, supervisor pinned=${sc.pinned.has(id)}`);
      });
      // A close (or stop) is honoured: once its turn or load is over, the agent flushes.
      this.ids.forEach((id, i) => {
        if (this.closeOwed[i] && states[i] === 'idle') problems.push(`close: ${id} was asked to close and sits idle without flushing`);
      });
      // Stop ends once every agent is out of memory. (One whose flush failed during stop
      // stays resident: the runtime reports it and stops anyway; its state is durable.)
      const allOut = states.every((s) => !holding(s));
      if (this.stopped && allOut && this.supervisor.getSnapshot().value !== 'stopped') {
        problems.push(`stop: every agent is out of memory but the supervisor is ${JSON.stringify(this.supervisor.getSnapshot().value)}`);
      }
      if (this.stopped && !allOut && this.supervisor.getSnapshot().value === 'stopped') {
        problems.push('stop: the supervisor stopped while agents are still in memory');
      }
    }
    if (problems.length) throw new Error(problems.join('\n'));
  }

  key(): string {
    const sc = this.supervisor.getSnapshot().context as SupervisorContext;
    return JSON.stringify([
      this.agents.map((a) => {
        const s = a.getSnapshot();
        const c = s.context;
        return [s.value, c.mailbox, c.permitPending, c.pendingClose, c.pinned];
      }),
      this.inboxSup,
      this.inboxAgent,
      this.supervisor.getSnapshot().value,
      [...sc.phase].sort(),
      [...sc.pinned].sort(),
      [...sc.evicting].sort(),
      [...sc.slotQueue.keys()],
      [...sc.permitQueue.keys()],
      [...sc.running].sort(),
      sc.policy.order(),
      this.refLru,
      this.used,
      this.stopped,
    ]).replace(/"at":\d+/g, '');
  }
}

/**
 * A persisted snapshot of the supervisor with its books copied, so a clone can diverge.
 * The policy is rebuilt from its order, which holds for the LRU and the test mutants.
 */
function cloneSupervisor(actor: Actor<typeof supervisorMachine>, policy: PolicyFactory = lru) {
  const snap = actor.getPersistedSnapshot() as unknown as { context: SupervisorContext };
  const c = snap.context;
  const p = policy();
  for (const id of c.policy.order()) p.evictable(id, c.idleSince?.get(id) ?? 0);
  const copy = <V>(s: LinkedSet<V>) => {
    const out = new LinkedSet<V>();
    for (const [k, v] of s.entries()) out.push(k, v);
    return out;
  };
  const context: SupervisorContext = {
    ...c,
    policy: p,
    phase: new Map(c.phase),
    pinned: new Set(c.pinned),
    evicting: new Map(c.evicting),
    slotQueue: copy(c.slotQueue),
    permitQueue: copy(c.permitQueue),
    running: new Set(c.running),
    idleSince: c.idleSince ? copy(c.idleSince) : null,
    count: { ...c.count },
    totals: { ...c.totals },
  };
  return { ...snap, context } as never;
}

function canEvict(c: AgentContext): boolean {
  return c.mailbox === 0 && !c.permitPending && !c.pinned;
}

function remove(xs: string[], x: string): void {
  const i = xs.indexOf(x);
  if (i >= 0) xs.splice(i, 1);
}

export const describeEnv = (e: EnvEvent): string =>
  'agent' in e ? `${e.kind}(${NAMES[e.agent]})` : e.kind;

/** The world as a model for `explore`. */
export function worldModel(config: WorldConfig, observed: Observed | null = null): Model<World, EnvEvent> {
  return {
    init: () => new World(config, observed),
    clone: (w) => w.clone(),
    events: (w) => w.enabled(),
    apply: (w, e) => w.apply(e),
    key: (w) => w.key(),
    check: (w) => w.check(),
    describe: describeEnv,
  };
}
