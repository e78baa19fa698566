/**
 * The supervisor statechart: owns residency for one runtime.
 *
 * It holds the resident cap and the running cap, knows which agents hold a slot
 * (loading, resident, flushing), which are pinned, which run, and keeps the LRU of
 * evictable agents (through a swappable {@link EvictionPolicy}) and two FIFO queues:
 * slot requests and permit requests. Agents are not its children (spawning thousands
 * of children into one machine is quadratic); the runtime keeps them and the two talk
 * by events.
 *
 *   accepting ⇄ saturated      (saturated: a slot request waits with no eviction to wait for)
 *       ↓ stop
 *   stopping → stopped         (no new grants; waits until every slot and permit is back)
 *
 * Pure: no `invoke`, no `after`, no I/O. Its effects (`grantSlot`, `evict`,
 * `grantPermit`, `reportSaturated`) are named actions with params that the runtime
 * supplies with `.provide()`.
 *
 * Decide, then do: each event first updates the books (`apply`), then `rebalance`
 * decides every grant and eviction the new books allow and enqueues them as effects.
 * For speed the books are mutable O(1) structures held in the context; the machine is
 * the only writer. (So, unlike `agentMachine`, snapshots of it must not be branched:
 * model-based tests replay event sequences on fresh actors instead.)
 *
 * Events are keyed by agent id and idempotent against the books: a late or repeated
 * event for an agent that is no longer in the phase it speaks of changes nothing.
 */
import { enqueueActions, not, setup } from 'xstate';
import { LinkedSet } from './LinkedSet.js';
import { lru, type EvictionPolicy, type PolicyFactory } from './policy.js';

/** Where an unpinned agent that holds a slot is. */
export type SlotPhase = 'loading' | 'resident' | 'flushing';

export interface SupervisorInput {
  residentCap: number;
  runningCap: number;
  /** Evict agents idle (evictable) for this many ms, even below the cap. */
  idleTimeout?: number | null;
  /** Eviction policy factory; LRU when omitted. */
  policy?: PolicyFactory;
}

export interface SupervisorContext {
  readonly residentCap: number;
  readonly runningCap: number;
  readonly idleTimeout: number | null;
  /** Evictable agents only: its victim is always valid. */
  readonly policy: EvictionPolicy;
  /** Unpinned slot holders and their phase. Its size is the number of used slots. */
  readonly phase: Map<string, SlotPhase>;
  /** Pinned agents that are in memory (any phase): outside the cap. */
  readonly pinned: Set<string>;
  /** Agents sent `evict` that have neither started flushing nor refused. */
  readonly evicting: Map<string, 'cap' | 'idle'>;
  /** FIFO of agents waiting for a slot. */
  readonly slotQueue: LinkedSet<undefined>;
  /** FIFO of agents waiting for a running permit. */
  readonly permitQueue: LinkedSet<undefined>;
  /** Agents holding a running permit. */
  readonly running: Set<string>;
  /** Evictable agents by the time they became so (only with `idleTimeout`). */
  readonly idleSince: LinkedSet<number> | null;
  /** Counts by phase, kept in step with `phase`. */
  readonly count: { loading: number; resident: number; flushing: number };
  /** Totals since start. */
  readonly totals: { grants: number; evictions: number; permits: number; saturations: number };
}

export type SupervisorEvent =
  | { type: 'slot.request'; id: string; pinned?: boolean }
  | { type: 'agent.loaded'; id: string }
  | { type: 'agent.loadFailed'; id: string }
  /** Idle, empty mailbox, no permit pending, unpinned; `at` is now (most recent use). */
  | { type: 'agent.evictable'; id: string; at: number }
  | { type: 'evict.refused'; id: string }
  | { type: 'agent.flushing'; id: string }
  | { type: 'agent.flushed'; id: string }
  | { type: 'agent.flushFailed'; id: string }
  | { type: 'agent.pinned'; id: string }
  /** The agent is gone (destroyed) or hands back a grant it cannot use. */
  | { type: 'agent.released'; id: string }
  /** The agent has work: it is busy (leaves the LRU) and queues for a running permit. */
  | { type: 'permit.request'; id: string }
  | { type: 'permit.cancel'; id: string }
  /** The turn ended, or a permit is handed back. */
  | { type: 'permit.release'; id: string }
  | { type: 'idle.check'; now: number }
  | { type: 'stop' };

export interface SupervisorEffects {
  grantSlot: { id: string };
  evict: { id: string; reason: 'cap' | 'idle' };
  grantPermit: { id: string };
  reportSaturated: { waiting: number; resident: number; running: number };
}

/** The number of slots in use (loading + resident + flushing, unpinned). */
export const usedSlots = (c: SupervisorContext): number => c.phase.size;

/** Waiting slot requests that no eviction in flight will serve. */
export const unmatchedWaiters = (c: SupervisorContext): number =>
  c.slotQueue.size - c.evicting.size - c.count.flushing;

function setPhase(c: SupervisorContext, id: string, next: SlotPhase | undefined): void {
  const prev = c.phase.get(id);
  if (prev === next) return;
  if (prev) c.count[prev]--;
  if (next) {
    c.count[next]++;
    c.phase.set(id, next);
  } else {
    c.phase.delete(id);
  }
}

function leaveLru(c: SupervisorContext, id: string): void {
  c.policy.busy(id);
  c.idleSince?.delete(id);
}

/**
 * Updates the books for one event. Returns the id of a pinned agent to grant a slot at
 * once (pinned agents never wait: they are outside the cap); every other decision is
 * taken afterwards by {@link rebalance}.
 */
function apply(c: SupervisorContext, e: SupervisorEvent, stopping: boolean): string | undefined {
  switch (e.type) {
    case 'slot.request':
      if (c.phase.has(e.id) || c.pinned.has(e.id) || c.slotQueue.has(e.id) || stopping) return;
      if (!e.pinned) {
        c.slotQueue.push(e.id, undefined);
        return;
      }
      c.pinned.add(e.id);
      return e.id;
    case 'agent.loaded':
      if (c.phase.get(e.id) === 'loading') setPhase(c, e.id, 'resident');
      return;
    case 'agent.loadFailed':
      c.pinned.delete(e.id);
      if (c.phase.get(e.id) === 'loading') setPhase(c, e.id, undefined);
      return;
    case 'agent.evictable':
      if (c.phase.get(e.id) !== 'resident' || c.running.has(e.id) || c.evicting.has(e.id)) return;
      c.policy.evictable(e.id, e.at);
      c.idleSince?.push(e.id, e.at);
      return;
    case 'evict.refused':
      c.evicting.delete(e.id);
      return;
    case 'agent.flushing':
      c.evicting.delete(e.id);
      leaveLru(c, e.id);
      if (c.phase.has(e.id)) setPhase(c, e.id, 'flushing');
      return;
    case 'agent.flushed':
      c.pinned.delete(e.id);
      if (c.phase.get(e.id) === 'flushing') setPhase(c, e.id, undefined);
      return;
    case 'agent.flushFailed':
      if (c.phase.get(e.id) === 'flushing') setPhase(c, e.id, 'resident');
      return;
    case 'agent.pinned':
      if (c.slotQueue.delete(e.id)) {
        if (stopping) return;
        c.pinned.add(e.id);
        return e.id;
      }
      if (!c.phase.has(e.id)) return;
      c.pinned.add(e.id);
      c.evicting.delete(e.id);
      leaveLru(c, e.id);
      setPhase(c, e.id, undefined);
      return;
    case 'agent.released':
      c.slotQueue.delete(e.id);
      c.permitQueue.delete(e.id);
      c.running.delete(e.id);
      c.evicting.delete(e.id);
      c.pinned.delete(e.id);
      leaveLru(c, e.id);
      setPhase(c, e.id, undefined);
      return;
    case 'permit.request':
      leaveLru(c, e.id);
      if (!c.running.has(e.id)) c.permitQueue.push(e.id, undefined);
      return;
    case 'permit.cancel':
      c.permitQueue.delete(e.id);
      return;
    case 'permit.release':
      c.running.delete(e.id);
      return;
    case 'idle.check':
    case 'stop':
      return;
  }
}

type Enqueue = (action: { type: 'grantSlot' | 'grantPermit'; params: { id: string } } | { type: 'evict'; params: SupervisorEffects['evict'] }) => void;

/**
 * Decides everything the books now allow, in this order: free slots go to the head of
 * the slot queue (FIFO); every waiting request that no eviction in flight will serve
 * gets one, taking the policy's victim (always a valid one: only evictable agents are
 * in it); free permits go to the head of the permit queue (FIFO).
 */
function rebalance(c: SupervisorContext, enqueue: Enqueue): void {
  while (c.phase.size < c.residentCap && c.slotQueue.size > 0) {
    const id = c.slotQueue.shift()!;
    setPhase(c, id, 'loading');
    c.totals.grants++;
    enqueue({ type: 'grantSlot', params: { id } });
  }
  while (unmatchedWaiters(c) > 0) {
    const id = c.policy.victim();
    if (id === undefined) break;
    leaveLru(c, id);
    c.evicting.set(id, 'cap');
    c.totals.evictions++;
    enqueue({ type: 'evict', params: { id, reason: 'cap' } });
  }
  while (c.running.size < c.runningCap && c.permitQueue.size > 0) {
    const id = c.permitQueue.shift()!;
    c.running.add(id);
    c.totals.permits++;
    enqueue({ type: 'grantPermit', params: { id } });
  }
}

export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
  },
  guards: {
    saturated: ({ context }) => unmatchedWaiters(context) > 0,
    allReleased: ({ context }) =>
      context.phase.size === 0 && context.pinned.size === 0 && context.running.size === 0,
  },
  actions: {
    // --- effects (supplied by the runtime) ---
    grantSlot: (_, _params: SupervisorEffects['grantSlot']) => {},
    evict: (_, _params: SupervisorEffects['evict']) => {},
    grantPermit: (_, _params: SupervisorEffects['grantPermit']) => {},
    reportSaturated: (_, _params: SupervisorEffects['reportSaturated']) => {},

    // --- decide ---
    /** Books the event, then grants every slot and permit it frees (FIFO). */
    apply: enqueueActions(({ context: c, event, enqueue: untyped }) => {
      const enqueue = untyped as unknown as Enqueue; // setup() cannot type siblings by name
      const pinnedGrant = apply(c, event, false);
      if (pinnedGrant !== undefined) {
        c.totals.grants++;
        enqueue({ type: 'grantSlot', params: { id: pinnedGrant } });
      }
      rebalance(c, enqueue);
    }),
    /** Books the event while stopping: nothing new is granted. */
    applyStopping: ({ context, event }) => void apply(context, event, true),
    /** Evicts agents idle longer than `idleTimeout`, oldest first. */
    evictIdle: enqueueActions(({ context: c, event, enqueue: untyped }) => {
      const enqueue = untyped as unknown as Enqueue;
      if (event.type !== 'idle.check' || c.idleSince === null || c.idleTimeout === null) return;
      for (;;) {
        const id = c.idleSince.peek();
        const since = c.idleSince.peekValue();
        if (id === undefined || since === undefined || since + c.idleTimeout > event.now) break;
        leaveLru(c, id);
        c.evicting.set(id, 'idle');
        c.totals.evictions++;
        enqueue({ type: 'evict', params: { id, reason: 'idle' } });
      }
    }),
    countSaturation: ({ context }) => {
      context.totals.saturations++;
    },
    /** On stop: nobody waiting is loaded or run any more (their messages stay durable). */
    dropQueues: ({ context }) => {
      context.slotQueue.clear();
      context.permitQueue.clear();
    },
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => {
    const policy = (input.policy ?? lru)();
    return {
      residentCap: input.residentCap,
      runningCap: input.runningCap,
      idleTimeout: input.idleTimeout ?? null,
      policy,
      phase: new Map(),
      pinned: new Set(),
      evicting: new Map(),
      slotQueue: new LinkedSet(),
      permitQueue: new LinkedSet(),
      running: new Set(),
      idleSince: input.idleTimeout != null ? new LinkedSet<number>() : null,
      count: { loading: 0, resident: 0, flushing: 0 },
      totals: { grants: 0, evictions: 0, permits: 0, saturations: 0 },
    };
  },
  initial: 'accepting',
  states: {
    accepting: {
      always: { guard: 'saturated', target: 'saturated' },
    },
    saturated: {
      entry: [
        'countSaturation',
        {
          type: 'reportSaturated',
          params: ({ context }) => ({
            waiting: context.slotQueue.size,
            resident: usedSlots(context),
            running: context.running.size,
          }),
        },
      ],
      always: { guard: not('saturated'), target: 'accepting' },
    },
    stopping: {
      on: {
        stop: {},
        '*': { actions: 'applyStopping' },
      },
      always: { guard: 'allReleased', target: 'stopped' },
    },
    /** Everything is back. Late news (an agent flushed after stop asking for a slot) is ignored. */
    stopped: {
      on: { '*': {} },
    },
  },
  on: {
    stop: { target: '.stopping', actions: 'dropQueues' },
    'idle.check': { actions: ['evictIdle'] },
    '*': { actions: 'apply' },
  },
});
