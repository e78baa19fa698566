/**
 * The shapes the runtime's core shares: an agent's entry (its lifecycle, actor and turn),
 * a turn in progress, and what `ask` answers with.
 */
import type { Actor, AnyStateMachine } from 'xstate';
import type { AgentContext, AgentEvent } from '../../machines/agent.js';
import type { AgentDefinition } from '../defineAgent.js';
import type { AgentRecord, AppendRequest, Message, StoredMessage } from '../store/Store.js';
import type { Lifecycle } from './Lifecycle.js';

export interface TurnResult {
  outcome: 'done' | 'interrupted';
  state: unknown;
  outputs: unknown[];
}

export interface Turn {
  seq: number;
  messageId: string;
  message: Message;
  startedAt: number;
  outbox: AppendRequest[];
  spawned: AgentRecord[];
  outputs: unknown[];
  /** Durable timers the turn schedules and cancels, applied with its commit. */
  timers: { schedule: import('../store/Store.js').TimerRecord[]; cancel: string[] } | null;
  /** Made on first use of the turn's `signal` (most turns never look at it). */
  abort: AbortController | null;
  /** `running`: the logic runs (an interrupt aborts it); `committing`: its outcome is being written. */
  phase: 'running' | 'committing';
  interrupted: boolean;
  /** What made the turn fail, boxed (a thrown `undefined` is a failure too). */
  error: { thrown: unknown } | null;
  /** The logic's persisted snapshot before the turn, to roll back to. */
  before: unknown;
  /** Wakes the turn's wait for its logic (an interrupt, a destroy). */
  wake: (() => void) | null;
  /** A shared store: the process waiting for this turn's answer (a remote ask), if another. */
  replyTo: string | undefined;
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
  /** Turns run in a row under the running permit it holds (fairness: see Turns.ts). */
  streak: number;
  /**
   * Messages accepted while the entry exists, by seq, not yet handled: a turn takes its
   * message from here without reading the store (seqs of an agent are 1, 2, 3 …).
   */
  inbox: Map<number, StoredMessage> | null; // made on first use (most idle agents have none)
  /** The seq the next turn handles, when known (after a turn; unknown after a load). */
  nextSeq: number | null;
  /** A message whose turn was begun by the previous turn's commit (`next`): no begin of its own. */
  begun: number | null;
  /** The logic's snapshot as last stored (loaded or committed): the state to roll back to. */
  lastPersisted: unknown;
  lastActiveAt: number;
  destroyed: boolean;
  /** Waiting for the agent to leave memory (close): called with the error of a flush that failed. */
  leftMemory: ((error?: Error) => void)[] | null;
  /** Loads that failed in a row (not corruption): the backoff doubles with each. */
  loadFailures: number;
  /** A shared store: a mailbox count sync (Host.syncMail) is queued, running, or wanted again. */
  sync: 'queued' | 'running' | 'again' | null;
  /**
   * A shared store: the highest seq counted into the lifecycle's mailbox (every seq up to it
   * is counted, once); `null` until the first sync read it from the store.
   */
  seen: number | null;
  /** Why the agent is quarantined (`failed`). */
  failure: Error | null;
  /** The error of the last failed load or flush, for the lifecycle's `reportError`. */
  problem: { error: Error; where: 'load' | 'flush' } | null;
  /** A message whose turn ran but whose outcome could not be written: recorded `crashed` first. */
  lostSeq: number | null;
}

export type Waiter = {
  resolve: (r: TurnResult) => void;
  reject: (e: unknown) => void;
  /** Its message was accepted (only then may a destroy of the agent reject it). */
  accepted?: boolean;
};

/** What the parts of the core (turns, loads) share; the Host provides it. */
export interface Core {
  readonly store: import('../store/Store.js').Store;
  readonly clock: import('../clock.js').Clock;
  readonly emitter: import('../events.js').RuntimeEmitter;
  readonly definitions: Map<string, AgentDefinition>;
  /** The history retention of agents whose definition does not say. */
  readonly history: import('../defineAgent.js').Retention;
  readonly buffer: import('./WriteBuffer.js').WriteBuffer;
  readonly actors: import('./Actors.js').Actors;
  readonly inspection: import('./Inspection.js').Inspection;
  readonly waiters: import('./Waiters.js').Waiters;
  readonly entries: Map<string, Entry>;
  /** A shared store's cluster (src/store/Cluster.ts), when the store is shared. */
  readonly cluster: import('../store/Cluster.js').StoreCluster | undefined;
  readonly counters: { loads: number; evictions: number; hits: number; misses: number };
  /** Runs `op` after the agent's earlier store work (reported, never thrown, if it escapes). */
  queue(entry: Entry, op: () => Promise<void>): void;
  /** Someone waits for a running permit (fairness: a streak of turns then yields it). */
  permitWanted(): boolean;
  /** A shared store: brings the agent's mailbox count up to the store's (Host.syncMail). */
  syncMail(entry: Entry): void;
  /** A deadline was committed: the host timer fires no later than it. */
  armTimer(at: number): void;
  /** Messages now in their mailboxes (a turn's outbox after its commit). */
  delivered(accepted: readonly { request: AppendRequest; seq: number; duplicate: boolean }[]): void;
}

/** The callers waiting for the entry to leave memory, taken (none: the array is made on first use). */
export function takeLeft(entry: Entry): ((error?: Error) => void)[] {
  const left = entry.leftMemory;
  entry.leftMemory = null;
  return left ?? [];
}
