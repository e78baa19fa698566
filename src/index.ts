/**
 * residency: virtual actors for TypeScript on XState. This entry is the public API; the
 * others are `residency/testing` (a test runtime, the eviction-transparency check) and
 * `residency/internal` (the statecharts and their plumbing, unstable: src/internal.ts).
 *
 * @example
 * import { createRuntime, defineAgent, fromTurn } from 'residency';
 * const chat = defineAgent({ type: 'chat', logic: fromTurn(async ({ state, message }) => state, { initialState: {} }) });
 * const runtime = await createRuntime({ agents: [chat], residentCap: 32, runningCap: 8 });
 */
import type { AnyStateMachine } from 'xstate';
import { fromTurn as turnLogic, type FromTurnOptions, type TurnFunction } from './fromTurn.js';

export { createRuntime, DEFAULT_DB } from './createRuntime.js';
export type { AgentInfo, ListRequest, ResidencyInspectionEvent, Runtime, RuntimeOptions, RuntimeStats, SpawnRequest } from './createRuntime.js';
export type { TurnResult } from './runtime/Host.js';
export { defineAgent } from './defineAgent.js';
export type { AgentDefinition, DefineAgentOptions, Migration, Retention } from './defineAgent.js';
export type { ScheduleOptions } from './runtime/Timers.js';
/**
 * Wraps a turn function as agent logic.
 *
 * (Declared here with its public type: the mark the runtime recognises such logic by is
 * internal and stays out of the published types.)
 *
 * @example
 * const counter = fromTurn(async ({ state, message }) => ({ count: state.count + 1, last: message.type }), {
 *   initialState: { count: 0, last: '' },
 * });
 */
export const fromTurn: <S>(fn: TurnFunction<S>, options: FromTurnOptions<S>) => AnyStateMachine = turnLogic;
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
  TimerRecord,
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
  MigrationError,
  UnknownAgentTypeError,
} from './errors.js';
export type { ErrorCode } from './errors.js';
export type { RuntimeEventName, RuntimeEvents } from './events.js';
export { serveInspector, serveStoredInspector } from './inspector/serveInspector.js';
export type { Inspector, InspectorOptions, LiveInspectorOptions } from './inspector/serveInspector.js';
export type { InspectionObserver } from './runtime/stately.js';
export { manualClock, systemClock } from './clock.js';
export type { Clock, ManualClock } from './clock.js';

// The eviction policy (the `policy` option of createRuntime) and the lifecycle's vocabulary.
export { lru } from '../machines/policy.js';
export type { EvictionPolicy, PolicyFactory } from '../machines/policy.js';
export type { EvictReason, LifecycleState } from '../machines/agent.js';
// The statecharts themselves (agentMachine, supervisorMachine) and the protocol between
// them are not part of the public API: they are in `residency/internal` (src/internal.ts),
// which makes no semver promise.
