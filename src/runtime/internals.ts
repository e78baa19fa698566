/**
 * @internal A narrow, test-only window into a runtime (like lru-cache's
 * `unsafeExposeInternals`): the lifecycle of every agent in memory and the
 * supervisor's books, read synchronously. Not exported from the package root.
 */
import type { LifecycleState } from '../../machines/agent.js';
import type { SupervisorContext } from '../../machines/supervisor.js';

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
}
