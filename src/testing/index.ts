/**
 * `residency/testing`: tools for model-based tests of residency's machines and, later,
 * of your own agents.
 */
export { explore, ModelViolation } from './explore.js';
export type { Model, ExploreOptions, ExploreReport } from './explore.js';
export { statesOf, transitionsOf, transitionId } from '../../machines/describe.js';
export type { StateInfo, TransitionInfo } from '../../machines/describe.js';
export { createTestRuntime } from './createTestRuntime.js';
export type { TestRuntime, TestRuntimeOptions } from './createTestRuntime.js';
export {
  checkEvictionTransparency,
  defaultTimeBetweenSteps,
  expectEvictionTransparent,
  formatTransparencyReport,
  jsonDiff,
} from './checkEvictionTransparency.js';
export type { Observation, TransparencyFailure, TransparencyOptions, TransparencyReport } from './checkEvictionTransparency.js';
export { checkMigrations } from './checkMigrations.js';
export type { MigrationCase, MigrationReport, MigrationResult } from './checkMigrations.js';
