/**
 * residency: virtual actors for TypeScript on XState.
 *
 * This entry point exports the two pure statecharts and the eviction policy. The
 * runtime (`createRuntime`, `defineAgent`, `fromTurn`, the stores) builds on them.
 */
export { agentMachine, lifecycleOf } from '../machines/agent.js';
export type {
  AgentContext,
  AgentEvent,
  AgentInput,
  AgentMachine,
  EvictReason,
  LifecycleState,
} from '../machines/agent.js';
export { supervisorMachine, usedSlots, unmatchedWaiters } from '../machines/supervisor.js';
export type {
  SlotPhase,
  SupervisorContext,
  SupervisorEffects,
  SupervisorEvent,
  SupervisorInput,
} from '../machines/supervisor.js';
export { lru } from '../machines/policy.js';
export type { EvictionPolicy, PolicyFactory } from '../machines/policy.js';
export { LinkedSet } from '../machines/LinkedSet.js';
export { agentToSupervisor, supervisorEventFor, supervisorBoundActions, agentEventFor } from '../machines/protocol.js';
