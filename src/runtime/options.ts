/**
 * The checks of createRuntime's options: each bad option is a TypeError worded as the rule
 * it breaks, thrown at construction (before the store is touched).
 */
import type { Clock } from '../clock.js';
import { assertRetention, type AgentDefinition } from '../defineAgent.js';
import type { RuntimeOptions } from '../createRuntime.js';
import { isInspectionObserver } from './stately.js';
import { assertIntegerAtLeast, assertPositiveDurationOrNull, describeValue } from '../validate.js';

/** What a store must implement (Store.ts). */
export const STORE_METHODS = [
  'createAgent', 'getAgent', 'getAgents', 'listAgents', 'destroyAgent', 'append', 'pending', 'mailboxSize', 'agentStats',
  'beginTurn', 'commitTurn', 'loadSnapshot', 'note', 'rollout', 'agentsWithPending', 'turnsInFlight', 'acquire', 'close',
  'dueTimers', 'nextDeadline', 'timers', 'batch',
] as const;

export function assertOptions(options: unknown): asserts options is RuntimeOptions {
  if (!options || typeof options !== 'object') {
    throw new TypeError(`Expected createRuntime options { agents, residentCap, runningCap }, got ${describeValue(options)}`);
  }
  const o = options as Record<string, unknown>;
  if (!Array.isArray(o.agents) || o.agents.length === 0) {
    throw new TypeError(`Expected \`agents\` to be a non-empty array of defineAgent(...) definitions, got ${describeValue(o.agents)}`);
  }
  const seen = new Set<string>();
  for (const d of o.agents as unknown[]) {
    const def = d as Partial<AgentDefinition>;
    if (!def || typeof def !== 'object' || typeof def.type !== 'string' || !def.logic) {
      throw new TypeError(`Expected every entry of \`agents\` to come from defineAgent(...), got ${describeValue(d)}`);
    }
    if (seen.has(def.type)) throw new TypeError(`Expected agent types to be unique, got "${def.type}" twice in \`agents\``);
    seen.add(def.type);
  }
  assertIntegerAtLeast(o.residentCap, 'residentCap', 1);
  assertIntegerAtLeast(o.runningCap, 'runningCap', 1);
  if ((o.runningCap as number) > (o.residentCap as number)) {
    throw new TypeError(`Expected \`runningCap\` (${o.runningCap}) to be ≤ \`residentCap\` (${o.residentCap}): a running agent is resident`);
  }
  assertPositiveDurationOrNull(o.idleTimeout, 'idleTimeout');
  if (o.history !== undefined) assertRetention(o.history, '');
  if (o.stopTimeout !== undefined) assertIntegerAtLeast(o.stopTimeout, 'stopTimeout', 0);
  if (o.store !== undefined) {
    const s = o.store as Record<string, unknown> | null;
    const missing = s && typeof s === 'object' ? STORE_METHODS.filter((m) => typeof s[m] !== 'function') : STORE_METHODS;
    if (missing.length > 0) {
      throw new TypeError(
        `Expected \`store\` to implement the Store interface (memoryStore(), sqliteStore(path), …), got ${describeValue(o.store)}` +
          (s && typeof s === 'object' ? ` missing ${missing.map((m) => `${m}()`).join(', ')}` : ''),
      );
    }
  }
  if (o.clock !== undefined) {
    const c = o.clock as Partial<Clock>;
    if (!c || typeof c.now !== 'function' || typeof c.setTimeout !== 'function' || typeof c.clearTimeout !== 'function') {
      throw new TypeError(`Expected \`clock\` to have now(), setTimeout() and clearTimeout(), got ${describeValue(o.clock)}`);
    }
  }
  if (o.policy !== undefined && typeof o.policy !== 'function') {
    throw new TypeError(`Expected \`policy\` to be a policy factory such as lru, got ${describeValue(o.policy)}`);
  }
  if (o.inspect !== undefined && !isInspectionObserver(o.inspect)) {
    throw new TypeError(
      `Expected \`inspect\` to be an inspection observer (a function, or { next } such as createBrowserInspector().inspect), got ${describeValue(o.inspect)}`,
    );
  }
}
