/**
 * `checkEvictionTransparency`: proves that evicting and reloading an agent at any point
 * changes nothing a user can observe.
 *
 * Each path (a sequence of messages) runs twice on a test runtime: once never evicted,
 * once evicted and reloaded between every step (or, with `mode: 'restart'`, with the
 * whole runtime thrown away and a new one recovering from the same store between
 * steps). After each step it compares what is observable: the turn's outcome, the
 * agent's state after the turn, its outputs, and the messages it sent to other agents.
 * The first step that differs is reported with the path and a readable diff.
 *
 * Paths come from `xstate/graph` for machine logic (shortest paths and simple paths up
 * to a bound, over the events you supply), and from you for `fromTurn` logic (message
 * sequences, or a fast-check arbitrary that draws them).
 */
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import type { AnyStateMachine, InspectionEvent } from 'xstate';
import { defineAgent, type AgentDefinition } from '../defineAgent.js';
import { fromTurn, isTurnLogic } from '../fromTurn.js';
import { memoryStore } from '../store/memoryStore.js';
import type { CommitTurn, Message, Store } from '../store/Store.js';
import { transitionId, transitionsOf } from '../../machines/describe.js';
import { createTestRuntime, type TestRuntime } from './createTestRuntime.js';

export interface TransparencyOptions {
  /** Machine logic: the events to try in every state (all of them in every state). */
  events?: readonly Message[];
  /** Machine logic: longest simple path explored (default 6); shortest paths are always all taken. */
  maxDepth?: number;
  /** At most this many paths (default 200). */
  maxPaths?: number;
  /** fromTurn logic (or machines, to add your own): message sequences to run. */
  sequences?: readonly (readonly Message[])[];
  /** fromTurn logic: a fast-check arbitrary of message sequences, sampled `numRuns` times. */
  arbitrary?: unknown;
  numRuns?: number;
  seed?: number;
  /** The spawn input of the agent under test. */
  input?: unknown;
  /** Simulated time that passes after every step (lets `after` timers fire). Default 0. */
  timeBetweenSteps?: number;
  /** `evict` (default): close and reload between steps; `restart`: a new runtime on the same store. */
  mode?: 'evict' | 'restart';
  /** Makes the store for one run (default: memoryStore). Used as is for `restart`. */
  makeStore?: () => Store | Promise<Store>;
  /** Other agent types the agent spawns or talks to, defined as in your runtime. */
  peers?: readonly AgentDefinition[];
}

export interface Observation {
  outcome: string;
  state: unknown;
  outputs: unknown[];
  sent: { to: string; message: Message }[];
  spawned: { id: string; type: string }[];
  error?: string;
}

export interface TransparencyFailure {
  path: Message[];
  /** Index of the first step that differs. */
  step: number;
  message: Message;
  neverEvicted: Observation;
  evicted: Observation;
  /** One line per difference: `state.count: 2 → 1`. */
  diff: string[];
}

export interface TransparencyReport {
  ok: boolean;
  mode: 'evict' | 'restart';
  paths: number;
  steps: number;
  durationMs: number;
  /** Machine logic only: transitions of your machine taken by the never-evicted runs. */
  coverage: { covered: number; total: number; missed: string[] } | null;
  failures: TransparencyFailure[];
}

const SUBJECT = 'subject';
const SINK = 'residency.sink';

/** Records what each turn sent and spawned, and creates unknown targets as sinks. */
function recording(inner: Store, log: Map<number, Pick<CommitTurn, 'outbox' | 'spawned'>>): Store {
  const store: Store = Object.create(inner) as Store;
  store.commitTurn = async (commit) => {
    if (commit.agentId === SUBJECT) log.set(commit.seq, { outbox: commit.outbox ?? [], spawned: commit.spawned ?? [] });
    for (const m of commit.outbox ?? []) {
      const known = (commit.spawned ?? []).some((s) => s.id === m.agentId) || (await inner.getAgent(m.agentId));
      if (!known) await inner.createAgent({ id: m.agentId, type: SINK, parent: null, pinned: false, input: null, createdAt: commit.at });
    }
    return inner.commitTurn(commit);
  };
  for (const k of ['createAgent', 'getAgent', 'getAgents', 'listAgents', 'destroyAgent', 'append', 'pending', 'mailboxSize', 'beginTurn', 'loadSnapshot', 'note', 'rollout', 'agentsWithPending', 'turnsInFlight'] as const) {
    (store as unknown as Record<string, unknown>)[k] = (inner[k] as (...a: unknown[]) => unknown).bind(inner);
  }
  store.close = async () => {}; // the runs share the store across restarts
  return store;
}

const sink = defineAgent({ type: SINK, logic: fromTurn(async ({ state }) => state, { initialState: null }) });

interface Run {
  observations: Observation[];
  taken: Set<string>;
}

async function runPath(
  def: AgentDefinition,
  path: readonly Message[],
  evict: false | 'evict' | 'restart',
  o: TransparencyOptions,
): Promise<Run> {
  const log = new Map<number, Pick<CommitTurn, 'outbox' | 'spawned'>>();
  const store = recording(await (o.makeStore ?? memoryStore)(), log);
  const agents = [def, sink, ...(o.peers ?? [])];
  const make = () => createTestRuntime({ agents, residentCap: 4, runningCap: 1, store });
  let t: TestRuntime = await make();
  const taken = new Set<string>();
  const observe = (rt: TestRuntime) =>
    rt.inspect((e) => {
      if (e.type === '@xstate.microstep') {
        for (const tr of (e as InspectionEvent & { _transitions: Parameters<typeof transitionId>[0][] })._transitions) {
          if (tr.source?.machine === def.logic) taken.add(transitionId(tr));
        }
      }
    });
  if (!evict) observe(t);
  // An agent that cannot be loaded is quarantined and would keep an ask waiting: watch for it.
  let loadFailure: Error | null = null;
  let onFailure: ((e: Error) => void) | null = null;
  const watch = (rt: TestRuntime) =>
    rt.on('agent.failed', (e) => {
      if (e.id !== SUBJECT) return;
      loadFailure = e.error;
      onFailure?.(e.error);
    });
  watch(t);
  await t.spawn(def.type, { id: SUBJECT, ...(o.input !== undefined ? { input: o.input } : {}) });
  const observations: Observation[] = [];
  for (const message of path) {
    const before = new Set(log.keys());
    let obs: Observation;
    try {
      if (loadFailure) throw loadFailure;
      const failed = new Promise<never>((_, reject) => (onFailure = reject));
      const r = await Promise.race([t.ask(SUBJECT, message), failed]);
      obs = { outcome: r.outcome, state: r.state, outputs: r.outputs, sent: [], spawned: [] };
    } catch (err) {
      obs = { outcome: 'failed', state: null, outputs: [], sent: [], spawned: [], error: (err as Error).message };
    }
    onFailure = null;
    if (!loadFailure) await t.settle();
    for (const [seq, c] of log) {
      if (before.has(seq)) continue;
      obs.sent.push(...(c.outbox ?? []).map((m) => ({ to: m.agentId, message: m.message })));
      obs.spawned.push(...(c.spawned ?? []).map((s) => ({ id: s.id, type: s.type })));
    }
    observations.push(obs);
    if (loadFailure) {
      // quarantined: nothing more will happen to it
    } else if (evict === 'evict') {
      await t.close(SUBJECT);
    } else if (evict === 'restart') {
      t = await make(); // the old runtime is dropped without stopping: as after a crash
      watch(t);
    }
    if (o.timeBetweenSteps) await t.advance(o.timeBetweenSteps);
  }
  return { observations, taken };
}

/** `a.b[2]: x → y` lines for every difference between two JSON values. */
export function jsonDiff(a: unknown, b: unknown, at = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const bothObjects = a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b);
  if (!bothObjects) return [`${at || '(value)'}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`];
  const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
  return keys.flatMap((k) =>
    jsonDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], Array.isArray(a) ? `${at}[${k}]` : at ? `${at}.${k}` : k),
  );
}

async function pathsOf(def: AgentDefinition, o: TransparencyOptions): Promise<Message[][]> {
  const paths: Message[][] = (o.sequences ?? []).map((s) => [...s]);
  if (o.arbitrary !== undefined) {
    const fc = (await import('fast-check')).default;
    const drawn = fc.sample(o.arbitrary as import('fast-check').Arbitrary<Message[]>, { numRuns: o.numRuns ?? 50, ...(o.seed !== undefined ? { seed: o.seed } : {}) });
    paths.push(...drawn);
  }
  if (!isTurnLogic(def.logic) && o.events && o.events.length > 0) {
    const machine = def.logic as AnyStateMachine;
    const opts = { events: o.events as never, input: o.input as never };
    const toMessages = (p: { steps: { event: { type: string } }[] }) =>
      p.steps.map((s) => s.event as Message).filter((e) => e.type !== 'xstate.init');
    const shortest = getShortestPaths(machine, opts).map(toMessages);
    const maxDepth = o.maxDepth ?? 6;
    const simple = getSimplePaths(machine, { ...opts, limit: 10_000 } as never)
      .map(toMessages)
      .filter((p) => p.length <= maxDepth);
    // Every reachable state, then each of its paths extended by every event (all transitions).
    const extended = shortest.flatMap((p) => o.events!.map((e) => [...p, e]));
    paths.push(...shortest, ...extended, ...simple);
  }
  const seen = new Set<string>();
  const unique = paths.filter((p) => p.length > 0 && !seen.has(JSON.stringify(p)) && seen.add(JSON.stringify(p)));
  return unique.slice(0, o.maxPaths ?? 200);
}

/**
 * Runs every path never evicted and evicted between every step, and compares.
 *
 * @example
 * const report = await checkEvictionTransparency(orderAgent, { events: [{ type: 'add' }, { type: 'pay' }] });
 * report.ok; // => true
 */
export async function checkEvictionTransparency(def: AgentDefinition, options: TransparencyOptions = {}): Promise<TransparencyReport> {
  const started = performance.now();
  const mode = options.mode ?? 'evict';
  const paths = await pathsOf(def, options);
  if (paths.length === 0) {
    throw new TypeError(
      'Expected something to check: give `events` for machine logic, or `sequences` / `arbitrary` for fromTurn logic',
    );
  }
  const failures: TransparencyFailure[] = [];
  const taken = new Set<string>();
  let steps = 0;
  for (const path of paths) {
    const never = await runPath(def, path, false, options);
    const evicted = await runPath(def, path, mode, options);
    for (const t of never.taken) taken.add(t);
    steps += path.length;
    for (let i = 0; i < path.length; i++) {
      const diff = jsonDiff(never.observations[i], evicted.observations[i]);
      const failedToPersist = /JSON-serializable|cannot be persisted/.test(never.observations[i]!.error ?? '');
      if (diff.length === 0 && !failedToPersist) continue;
      failures.push({
        path: [...path],
        step: i,
        message: path[i]!,
        neverEvicted: never.observations[i]!,
        evicted: evicted.observations[i]!,
        diff: diff.length ? diff : [`the state cannot be stored, so eviction would lose it: ${never.observations[i]!.error}`],
      });
      break;
    }
  }
  let coverage: TransparencyReport['coverage'] = null;
  if (!isTurnLogic(def.logic)) {
    const all = transitionsOf(def.logic);
    const missed = all.filter((t) => !taken.has(t.id)).map((t) => t.id);
    coverage = { covered: all.length - missed.length, total: all.length, missed };
  }
  return { ok: failures.length === 0, mode, paths: paths.length, steps, durationMs: performance.now() - started, coverage, failures };
}

/** A readable account of a report's failures. */
export function formatTransparencyReport(r: TransparencyReport): string {
  if (r.ok) return `eviction is transparent: ${r.paths} paths, ${r.steps} steps (${r.mode})`;
  const lines = [`eviction is NOT transparent (${r.mode}): ${r.failures.length} of ${r.paths} paths differ`];
  for (const f of r.failures.slice(0, 5)) {
    lines.push(
      `- path ${f.path.map((m) => m.type).join(' → ')}`,
      `  first difference at step ${f.step + 1} (${f.message.type}), never evicted → evicted:`,
      ...f.diff.map((d) => `    ${d}`),
    );
  }
  return lines.join('\n');
}

/** For tests: throws with a readable account unless eviction is transparent; returns the report. */
export async function expectEvictionTransparent(def: AgentDefinition, options: TransparencyOptions = {}): Promise<TransparencyReport> {
  const report = await checkEvictionTransparency(def, options);
  if (!report.ok) throw new Error(formatTransparencyReport(report));
  return report;
}
