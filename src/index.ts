/**
 * residency: virtual actors for TypeScript on XState.
 *
 * @example
 * import { createRuntime, defineAgent, fromTurn } from 'residency';
 * const chat = defineAgent({ type: 'chat', logic: fromTurn(async ({ state, message }) => state, { initialState: {} }) });
 * const runtime = await createRuntime({ agents: [chat], residentCap: 32, runningCap: 8 });
 */
export { createRuntime, DEFAULT_DB } from './createRuntime.js';
export type { AgentInfo, ListRequest, ResidencyInspectionEvent, Runtime, RuntimeOptions, RuntimeStats, SpawnRequest } from './createRuntime.js';
export type { TurnResult } from './runtime/Host.js';
export { defineAgent } from './defineAgent.js';
export type { AgentDefinition, DefineAgentOptions } from './defineAgent.js';
export { fromTurn } from './fromTurn.js';
export type { FromTurnOptions, SpawnOptions, TurnContext, TurnFunction } from './fromTurn.js';
export { memoryStore } from './store/memoryStore.js';
export { sqliteStore } from './store/sqliteStore.js';
export type { SqliteStoreOptions } from './store/sqliteStore.js';
export type {
  AgentRecord,
  AppendRequest,
  AppendResult,
  CommitResult,
  CommitTurn,
  Json,
  ListOptions,
  ListResult,
  Message,
  RolloutEntry,
  Store,
  StoredMessage,
  StoreOp,
  StoreOpResult,
  StoreOwner,
  TurnOutcome,
} from './store/Store.js';
export {
  AgentExistsError,
  AgentNotFoundError,
  AskTimeoutError,
  FencedError,
  ResidencyError,
  RuntimeStoppedError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
  TurnFailedError,
  UnknownAgentTypeError,
} from './errors.js';
export type { ErrorCode } from './errors.js';
export type { RuntimeEventName, RuntimeEvents } from './events.js';
export { serveInspector, serveStoredInspector } from './inspector/serveInspector.js';
export type { Inspector, InspectorOptions, LiveInspectorOptions } from './inspector/serveInspector.js';
export type { InspectionObserver } from './runtime/stately.js';
export { manualClock, systemClock } from './clock.js';
export type { Clock, ManualClock } from './clock.js';

// The statecharts and the policy, for those who test or extend residency itself.
export { agentMachine, lifecycleOf } from '../machines/agent.js';
export type { AgentContext, AgentEvent, AgentInput, AgentMachine, EvictReason, LifecycleState } from '../machines/agent.js';
export { supervisorMachine, usedSlots, unmatchedWaiters } from '../machines/supervisor.js';
export type { SlotPhase, SupervisorContext, SupervisorEffects, SupervisorEvent, SupervisorInput } from '../machines/supervisor.js';
export { lru } from '../machines/policy.js';
export type { EvictionPolicy, PolicyFactory } from '../machines/policy.js';
export { LinkedSet } from '../machines/LinkedSet.js';
export { agentToSupervisor, supervisorEventFor, supervisorBoundActions, agentEventFor } from '../machines/protocol.js';
