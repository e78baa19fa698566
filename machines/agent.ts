/**
 * The agent lifecycle statechart: where one agent is in its life in memory.
 *
 *   unloaded → loading → idle ⇄ running
 *                         idle → flushing → unloaded
 *
 * Pure: no `invoke`, no `after`, no I/O. Results of I/O come in as events
 * (`load.done`, `turn.done`, `flush.done`, …); effects leave as named actions
 * (`requestSlot`, `startLoad`, `startTurn`, `startFlush`, …) whose default
 * implementations do nothing and which the runtime supplies with `.provide()`.
 * That keeps the machine walkable by `xstate/graph`.
 *
 * The context is small and immutable (every change goes through `assign`), so
 * snapshots can be branched freely by model-based tests.
 *
 * Messages themselves live in the store; the machine only counts them
 * (`mailbox`), which is all the lifecycle needs to decide.
 */
import { assign, setup } from 'xstate';

/** Why an agent is being flushed out of memory. */
export type EvictReason = 'cap' | 'idle' | 'close' | 'stop';

export interface AgentContext {
  readonly id: string;
  /** Pinned agents are never evicted and do not count against the resident cap. */
  readonly pinned: boolean;
  /** Messages accepted durably and not yet handled (the head may be running). */
  readonly mailbox: number;
  /** A running permit was requested from the supervisor and not yet granted. */
  readonly permitPending: boolean;
  /** `close()` or `stop()` arrived while the agent could not flush yet. */
  readonly pendingClose: 'close' | 'stop' | null;
  /** Why the current (or last) flush happened. */
  readonly flushReason: EvictReason | null;
}

export interface AgentInput {
  id: string;
  pinned?: boolean;
  /** Messages already waiting in the store (recovery): the agent asks for a slot at once. */
  mailbox?: number;
}

export type AgentEvent =
  /** A message for this agent was durably accepted. */
  | { type: 'message.accepted' }
  /** The supervisor granted a resident slot. */
  | { type: 'slot.granted' }
  /** The snapshot was read and the actor restored. */
  | { type: 'load.done' }
  /** Reading failed; `corrupt` when the stored record cannot be read at all. */
  | { type: 'load.failed'; corrupt?: boolean }
  /** The supervisor granted a running permit. */
  | { type: 'permit.granted' }
  /**
   * The turn ended (`done`, `failed` or `interrupted`) and its record (and snapshot) were
   * committed. `continue`: the runtime lets the agent keep its running permit for its next
   * message (the fast path: no round trip through the supervisor), when it has one.
   * `begun`: that next message's turn was begun durably by the same commit: it runs even
   * when a close came meanwhile (a begun turn left unrun would stay "in flight").
   */
  | { type: 'turn.done'; outcome?: 'done' | 'failed' | 'interrupted'; continue?: boolean; begun?: boolean }
  /**
   * The turn ended but its outcome could not be written (the store kept failing): the
   * agent is quarantined; its message stays durable and is recorded `crashed` on reload.
   */
  | { type: 'turn.lost' }
  /** Abort the running turn (no-op when none runs); the turn then ends with `turn.done`. */
  | { type: 'interrupt' }
  /** The supervisor asks this agent to leave memory. */
  | { type: 'evict'; reason: 'cap' | 'idle' }
  /** Passivate now (`close()`), or as part of `stop()`. */
  | { type: 'close'; reason?: 'close' | 'stop' }
  /** The flush finished: state is durable and the actor is stopped. */
  | { type: 'flush.done' }
  /** The flush failed: the agent stays resident. */
  | { type: 'flush.failed' }
  /** The agent's identity, mailbox and rollout are being deleted. */
  | { type: 'destroy' }
  /** Pin the agent: never evicted, outside the cap. */
  | { type: 'pin' }
  /** Try again after a load failure (or after a `failed` agent was repaired). */
  | { type: 'retry' };

/** The lifecycle state names that users see (`get(id).state`). */
export type LifecycleState = 'unloaded' | 'loading' | 'idle' | 'running' | 'flushing' | 'failed' | 'destroyed';

export const agentMachine = setup({
  types: {
    context: {} as AgentContext,
    events: {} as AgentEvent,
    input: {} as AgentInput,
  },
  guards: {
    /** The eviction guard: idle, nothing to do, nothing asked for, not pinned. */
    canEvict: ({ context }) => context.mailbox === 0 && !context.permitPending && !context.pinned,
    hasMail: ({ context }) => context.mailbox > 0,
    permitPending: ({ context }) => context.permitPending,
    closePending: ({ context }) => context.pendingClose !== null,
    pinned: ({ context }) => context.pinned,
    stopping: ({ event }) => event.type === 'close' && event.reason === 'stop',
    corrupt: ({ event }) => event.type === 'load.failed' && event.corrupt === true,
    /** Keep the permit for the next message: asked for, more mail, no close waiting (or its turn already begun). */
    continues: ({ context, event }) =>
      event.type === 'turn.done' && event.continue === true && context.mailbox > 1 && (context.pendingClose === null || event.begun === true),
  },
  actions: {
    // --- context changes (pure) ---
    countMessage: assign({ mailbox: ({ context }) => context.mailbox + 1 }),
    consumeMessage: assign({ mailbox: ({ context }) => Math.max(0, context.mailbox - 1) }),
    markPermitPending: assign({ permitPending: true }),
    clearPermitPending: assign({ permitPending: false }),
    rememberClose: assign({
      pendingClose: ({ event, context }) =>
        event.type === 'close' ? (event.reason ?? 'close') : context.pendingClose,
    }),
    setFlushReason: assign({
      flushReason: ({ event, context }): EvictReason =>
        event.type === 'evict' ? event.reason
        : event.type === 'close' ? (event.reason ?? 'close')
        : (context.pendingClose ?? 'close'),
      pendingClose: null,
    }),
    setPinned: assign({ pinned: true }),

    // --- commands to the supervisor (supplied by the runtime) ---
    /** Ask for a resident slot (pinned agents get one at once, outside the cap). */
    requestSlot: () => {},
    /** A slot grant reached an agent that no longer wants it: give it back. */
    returnSlot: () => {},
    notifyLoaded: () => {},
    notifyLoadFailed: () => {},
    /** Idle, empty mailbox, no permit pending, unpinned: may be evicted (most recent now). */
    becomeEvictable: () => {},
    /** Has work: leave the LRU and queue for a running permit. */
    requestPermit: () => {},
    cancelPermit: () => {},
    /** A permit reached an agent that cannot use it: give it back. */
    returnPermit: () => {},
    /** The turn ended: release the running permit. */
    endTurn: () => {},
    refuseEvict: () => {},
    notifyFlushing: () => {},
    notifyFlushed: () => {},
    notifyFlushFailed: () => {},
    notifyPinned: () => {},
    /** Gone for good: the supervisor drops whatever this agent held or waited for. */
    notifyReleased: () => {},

    // --- effects carried out by the runtime ---
    startLoad: () => {},
    /** Take the head of the mailbox and run one turn. */
    startTurn: () => {},
    /**
     * Fire the turn's AbortSignal. If the turn really aborts, it is recorded `interrupted`
     * and ends with `turn.done`; a turn already past its logic (committing) is not stopped.
     */
    abortTurn: () => {},
    /** Commit state, stop the actor, then send `flush.done` (or `flush.failed`). */
    startFlush: () => {},
    /** Report an error event (load or flush failure, quarantine). */
    reportError: () => {},
    /** An event this state has no business receiving: loud in tests. */
    reportIllegal: () => {},
  },
}).createMachine({
  id: 'agent',
  context: ({ input }) => ({
    id: input.id,
    pinned: input.pinned ?? false,
    mailbox: input.mailbox ?? 0,
    permitPending: false,
    pendingClose: null,
    flushReason: null,
  }),
  initial: 'unloaded',
  on: {
    // Defaults for every state; states override what they handle differently.
    'message.accepted': { actions: 'countMessage' },
    'permit.granted': { actions: 'returnPermit' },
    evict: { actions: 'refuseEvict' },
    interrupt: {},
    close: {},
    pin: [{ guard: 'pinned' }, { actions: ['setPinned', 'notifyPinned'] }],
    destroy: { target: '.destroyed', actions: ['clearPermitPending', 'notifyReleased'] },
    '*': { actions: 'reportIllegal' },
  },
  states: {
    unloaded: {
      initial: 'dormant',
      states: {
        /** Not in memory, nothing to do. */
        dormant: {
          always: { guard: 'hasMail', target: 'waitingForSlot', actions: 'requestSlot' },
        },
        /** Has mail; waits for the supervisor to grant a slot (single flight). */
        waitingForSlot: {
          on: {
            'slot.granted': { target: '#agent.loading', actions: 'startLoad' },
            // A grant may already be on its way: if it lands after stop(), flush at once.
            close: { guard: 'stopping', actions: 'rememberClose' },
          },
        },
        /** The last load failed (not corruption); the runtime sends `retry` after a backoff. */
        backoff: {
          on: { retry: 'dormant' },
        },
      },
    },
    loading: {
      on: {
        'load.done': { target: 'settling', actions: 'notifyLoaded' },
        'load.failed': [
          { guard: 'corrupt', target: 'failed', actions: ['notifyLoadFailed', 'reportError'] },
          { target: 'unloaded.backoff', actions: ['notifyLoadFailed', 'reportError'] },
        ],
        close: { actions: 'rememberClose' },
      },
    },
    /** Transient: decides what a freshly idle agent does next. Never observed at rest. */
    settling: {
      always: [
        { guard: 'closePending', target: 'flushing', actions: ['setFlushReason', 'notifyFlushing', 'startFlush'] },
        { guard: 'hasMail', target: 'idle', actions: ['markPermitPending', 'requestPermit'] },
        { guard: 'pinned', target: 'idle' },
        { target: 'idle', actions: 'becomeEvictable' },
      ],
    },
    idle: {
      on: {
        'message.accepted': [
          { guard: 'permitPending', actions: 'countMessage' },
          { actions: ['countMessage', 'markPermitPending', 'requestPermit'] },
        ],
        'permit.granted': [
          { guard: 'permitPending', target: 'running', actions: ['clearPermitPending', 'startTurn'] },
          { actions: 'returnPermit' },
        ],
        evict: [
          { guard: 'canEvict', target: 'flushing', actions: ['setFlushReason', 'notifyFlushing', 'startFlush'] },
          { actions: 'refuseEvict' },
        ],
        close: [
          {
            guard: 'permitPending',
            target: 'flushing',
            actions: ['clearPermitPending', 'cancelPermit', 'setFlushReason', 'notifyFlushing', 'startFlush'],
          },
          { target: 'flushing', actions: ['setFlushReason', 'notifyFlushing', 'startFlush'] },
        ],
      },
    },
    running: {
      on: {
        'turn.done': [
          { guard: 'continues', actions: ['consumeMessage', 'startTurn'] },
          { target: 'settling', actions: ['consumeMessage', 'endTurn'] },
        ],
        // The lifecycle moves only when the turn really ends (turn.done): an interrupt that
        // comes too late, or twice, must not hand the permit back while the turn still runs.
        interrupt: { actions: 'abortTurn' },
        'turn.lost': { target: 'failed', actions: 'notifyReleased' },
        close: { actions: 'rememberClose' },
        destroy: { target: 'destroyed', actions: ['abortTurn', 'notifyReleased'] },
      },
    },
    flushing: {
      on: {
        'flush.done': { target: 'unloaded', actions: 'notifyFlushed' },
        'flush.failed': { target: 'settling', actions: ['notifyFlushFailed', 'reportError'] },
      },
    },
    /** Quarantined: its stored record cannot be read. Messages stay durable. */
    failed: {
      on: {
        retry: 'unloaded',
      },
    },
    /** Deleted. Late grants are handed back so the supervisor's books stay right. */
    destroyed: {
      on: {
        'slot.granted': { actions: 'returnSlot' },
        'message.accepted': { actions: 'reportIllegal' },
        destroy: {},
      },
    },
  },
});

export type AgentMachine = typeof agentMachine;

/** The lifecycle name of a snapshot value (`unloaded.waitingForSlot` → `unloaded`). */
export function lifecycleOf(value: unknown): LifecycleState {
  const top = typeof value === 'string' ? value : Object.keys(value as object)[0];
  return (top === 'settling' ? 'idle' : top) as LifecycleState;
}
