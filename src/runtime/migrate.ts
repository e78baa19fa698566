/**
 * Versions of an agent's stored state. Every snapshot the runtime writes records the
 * version of the logic that wrote it (`@version`, 1 when absent: snapshots written before
 * versions existed); on load, the definition's `migrate` steps bring an older one up to
 * the current version, step by step, before it is restored.
 */
import type { AgentDefinition } from '../defineAgent.js';
import { MigrationError } from '../errors.js';
import { isTurnLogic } from '../fromTurn.js';
import { copyJson, describeThrown } from '../validate.js';

/** The key of a stored snapshot that holds the version of the logic that wrote it. */
export const VERSION_KEY = '@version';

/** A snapshot as stored: the XState snapshot and the version that wrote it. */
export function withVersion(def: AgentDefinition, snapshot: unknown): unknown {
  return { ...(snapshot as object), [VERSION_KEY]: def.version };
}

/** The version a stored snapshot was written by, and the XState snapshot without it. */
export function versionOf(stored: unknown): { version: number; snapshot: unknown } {
  if (stored === null || typeof stored !== 'object' || !(VERSION_KEY in stored)) return { version: 1, snapshot: stored };
  const { [VERSION_KEY]: version, ...snapshot } = stored as Record<string, unknown>;
  return { version: typeof version === 'number' && Number.isSafeInteger(version) && version >= 1 ? version : NaN, snapshot };
}

/**
 * The stored snapshot brought to the definition's version: the XState snapshot to
 * restore. Throws MigrationError when it was written by a newer version, a step is
 * missing, or a step throws or returns what is not JSON.
 */
export function migrateSnapshot(agentId: string, def: AgentDefinition, stored: unknown): { snapshot: unknown; from: number } {
  const { version, snapshot } = versionOf(stored);
  if (Number.isNaN(version)) throw new MigrationError(agentId, NaN, def.version, 'its stored version is not a positive integer');
  if (version === def.version) return { snapshot, from: version };
  if (version > def.version) {
    throw new MigrationError(agentId, version, def.version, 'it was written by a newer version of the code than this one');
  }
  let current = snapshot;
  for (let v = version + 1; v <= def.version; v++) {
    const step = def.migrate[v];
    if (!step) throw new MigrationError(agentId, version, def.version, `no migrate step produces version ${v}`);
    try {
      if (isTurnLogic(def.logic)) {
        const s = current as { context: { state: unknown } };
        const state = copyJson(step(structuredClone(s.context.state)), `the state returned by migrate[${v}]`);
        current = { ...s, context: { ...s.context, state } };
      } else {
        current = copyJson(step(structuredClone(current)), `the snapshot returned by migrate[${v}]`);
      }
    } catch (err) {
      throw new MigrationError(agentId, version, def.version, `the step to version ${v} failed: ${describeThrown(err)}`, { cause: err });
    }
  }
  return { snapshot: current, from: version };
}
