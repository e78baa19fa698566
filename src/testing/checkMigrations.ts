/**
 * `checkMigrations`: before shipping a new version of an agent's logic, load the stored
 * state of the old one through the new definition and see which fail.
 *
 * Give it stored snapshots (as a store holds them: `store.loadSnapshot(id)`), or the old
 * definition with paths of messages: each path is run on a test runtime with the old
 * definition, and the snapshot it left (after every step) is checked. Each snapshot goes
 * through exactly what a load does: the new definition's `migrate` steps, then a restore
 * of its logic.
 *
 * @example
 * const report = await checkMigrations(chatV2, { from: { definition: chatV1, paths: [[{ type: 'hi' }]] } });
 * report.ok; // => true when every stored state loads with v2
 */
import { createActor } from 'xstate';
import type { AgentDefinition } from '../defineAgent.js';
import { migrateSnapshot, versionOf } from '../runtime/migrate.js';
import type { Message } from '../store/Store.js';
import { describeThrown } from '../validate.js';
import { createTestRuntime } from './createTestRuntime.js';

export interface MigrationCase {
  /** A name for the report (e.g. the path that produced it). */
  name: string;
  /** The snapshot as stored (with its `@version`, or without: version 1). */
  snapshot: unknown;
}

export interface MigrationResult {
  name: string;
  /** The version that wrote the snapshot. */
  from: number;
  ok: boolean;
  /** Why it does not load (the error a runtime would quarantine the agent with). */
  error?: string;
  /** The state value after migration and restore (machines), or the state (fromTurn). */
  state?: unknown;
}

export interface MigrationReport {
  ok: boolean;
  results: MigrationResult[];
}

/** Loads each stored snapshot through `definition` as the runtime would, and reports which fail. */
export async function checkMigrations(
  definition: AgentDefinition,
  input: { snapshots?: readonly MigrationCase[]; from?: { definition: AgentDefinition; paths: readonly (readonly Message[])[] } },
): Promise<MigrationReport> {
  const cases: MigrationCase[] = [...(input.snapshots ?? [])];
  if (input.from) cases.push(...(await storedBy(input.from.definition, input.from.paths)));
  const results = cases.map((c) => load(definition, c));
  return { ok: results.every((r) => r.ok), results };
}

function load(def: AgentDefinition, c: MigrationCase): MigrationResult {
  const from = versionOf(c.snapshot).version;
  try {
    const { snapshot } = migrateSnapshot(c.name, def, c.snapshot);
    const actor = createActor(def.logic, { snapshot: snapshot as never });
    actor.subscribe({ error: () => {} });
    const restored = actor.getSnapshot() as { status: string; error?: unknown; value?: unknown; context?: { state?: unknown } };
    if (restored.status === 'error') throw restored.error ?? new Error('the snapshot does not restore');
    actor.start();
    const started = actor.getSnapshot() as typeof restored;
    actor.stop();
    if (started.status === 'error') throw started.error ?? new Error('the logic failed as it started');
    const state = 'state' in (started.context ?? {}) && started.value === 'idle' ? started.context!.state : started.value;
    return { name: c.name, from, ok: true, state };
  } catch (err) {
    return { name: c.name, from, ok: false, error: describeThrown(err) };
  }
}

/** The snapshots the old definition stores along each path, after every step. */
async function storedBy(def: AgentDefinition, paths: readonly (readonly Message[])[]): Promise<MigrationCase[]> {
  const t = await createTestRuntime({ agents: [def] });
  const out: MigrationCase[] = [];
  try {
    for (const [p, path] of paths.entries()) {
      const id = `path-${p}`;
      await t.spawn(def.type, { id });
      for (const [i, message] of path.entries()) {
        await t.ask(id, message).catch(() => undefined); // a failed turn stores what it left, as in production
        const snapshot = await t.store.loadSnapshot(id);
        if (snapshot !== null) out.push({ name: `path ${p}, after step ${i + 1} (${message.type})`, snapshot });
      }
    }
  } finally {
    await t.stop();
  }
  return out;
}
