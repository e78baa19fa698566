/**
 * `residency/internal`: the statecharts and the plumbing between them, for those who test
 * or extend residency itself (model-based tests with `explore` from `residency/testing`,
 * a drawing of the lifecycle, a policy checked against the real supervisor).
 *
 * Unstable: no semver promise. The machines' events, context and input are the protocol
 * between the runtime and its statecharts, and change whenever the runtime does; any
 * release may rename, change or drop what is exported here. Build on `residency` (the
 * public API) and `residency/testing` instead wherever you can.
 *
 * One runtime: this entry shares its code with `residency` and `residency/testing` (the
 * build splits shared chunks), so a class from here is the class the root uses.
 */
export { agentMachine, lifecycleOf } from '../machines/agent.js';
export type { AgentContext, AgentEvent, AgentInput, AgentMachine } from '../machines/agent.js';
export { supervisorMachine, usedSlots, unmatchedWaiters } from '../machines/supervisor.js';
export type { SlotPhase, SupervisorContext, SupervisorEffects, SupervisorEvent, SupervisorInput } from '../machines/supervisor.js';
export { LinkedSet } from '../machines/LinkedSet.js';
export { agentToSupervisor, supervisorEventFor, supervisorBoundActions, agentEventFor } from '../machines/protocol.js';
export type { AgentToSupervisorEffect } from '../machines/protocol.js';
