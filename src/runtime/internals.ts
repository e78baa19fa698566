/**
 * @internal A narrow, test-only window into a runtime (like lru-cache's
 * `unsafeExposeInternals`): the lifecycle of every agent in memory and the
 * supervisor's books, read synchronously. Not exported from the package root.
 */
import type { LifecycleState } from '../../machines/agent.js';
import type { SupervisorContext } from '../../machines/supervisor.js';
import type { AnyStateMachine } from 'xstate';
import type { Store } from '../store/Store.js';

export const INTERNALS = Symbol.for('residency.internals');

export interface AgentView {
  id: string;
  state: LifecycleState;
  pinned: boolean;
  /** The lifecycle's count of messages accepted and not yet handled. */
  mailbox: number;
  /** A turn is in progress (from its first store read to its commit), not counting an interrupted one being recorded. */
  inTurn: boolean;
}

export interface RuntimeInternals {
  agents(): AgentView[];
  books(): SupervisorContext;
  /** Resolves when every queued store operation of every agent in memory has finished. */
  chains(): Promise<void>;
  /**
   * @deprecated Nothing reads it: tools read mailboxes and rollouts through the runtime's
   * public `mailbox()` and `history()`. Goes once createRuntime stops providing it.
   */
  store?(): Store;
  /** The logic of an agent type when it is a statechart of the user's (not fromTurn); else null. Same as the public `runtime.machineOf()`. */
  machineOf?(type: string): AnyStateMachine | null;
  /** The state value of a resident agent's logic; undefined when it is not resident. Same as the public `runtime.logicValue()`. */
  logicValue?(id: string): unknown;
}
