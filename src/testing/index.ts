/**
 * `residency/testing`: tools for model-based tests of residency's machines and, later,
 * of your own agents.
 */
export { explore, ModelViolation } from './explore.js';
export type { Model, ExploreOptions, ExploreReport } from './explore.js';
export { statesOf, transitionsOf, transitionId } from '../../machines/describe.js';
export type { StateInfo, TransitionInfo } from '../../machines/describe.js';
