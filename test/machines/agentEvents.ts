import type { AgentEvent } from '../../machines/agent.js';

/** Every event the agent can receive, with each variant that takes a different branch. */
export const agentEvents: AgentEvent[] = [
  { type: 'message.accepted' },
  { type: 'slot.granted' },
  { type: 'load.done' },
  { type: 'load.failed' },
  { type: 'load.failed', corrupt: true },
  { type: 'permit.granted' },
  { type: 'turn.done', outcome: 'done' },
  { type: 'turn.done', outcome: 'failed' },
  { type: 'turn.done', outcome: 'interrupted' },
  { type: 'turn.done', outcome: 'done', continue: true },
  { type: 'turn.done', outcome: 'done', continue: true, begun: true },
  { type: 'turn.lost' },
  { type: 'interrupt' },
  { type: 'evict', reason: 'cap' },
  { type: 'evict', reason: 'idle' },
  { type: 'close' },
  { type: 'close', reason: 'stop' },
  { type: 'flush.done' },
  { type: 'flush.failed' },
  { type: 'destroy' },
  { type: 'pin' },
  { type: 'retry' },
];
