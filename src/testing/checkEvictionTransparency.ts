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
 *
 * Nothing waits forever: a step whose turn never finishes (a promise nothing resolves)
 * gives up after `maxRounds` turns of the event loop and is reported as a failure that
 * says what still runs. A state XState cannot persist (an inline child actor, a value
 * that is not JSON) is reported plainly with its fix, and error texts are compared with
 * XState's generated actor ids left out.
 */
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import type { AnyStateMachine, InspectionEvent } from 'xstate';
import { defineAgent, type AgentDefinition } from '../defineAgent.js';
import { fromTurn, isTurnLogic } from '../fromTurn.js';
import { memoryStore } from '../store/memoryStore.js';
import type { CommitTurn, Message, Store } from '../store/Store.js';
import { transitionId, transitionsOf } from '../../machines/describe.js';
import { createTestRuntime, type TestRuntime } from './createTestRuntime.js';
import { assertIntegerAtLeast } from '../validate.js';
import { resultState } from '../runtime/snapshots.js';

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
  /**
   * Simulated time (ms) that passes after every step, so the machine's delays (`after`,
   * delayed `raise` / `sendTo`) fall due between steps; what they did is observed as the
   * step's `later`. Default: `defaultTimeBetweenSteps(definition)`, the largest delay the
   * machine declares plus 1 ms (0 for a machine without delays and for fromTurn logic).
   * 0 turns it off.
   */
  timeBetweenSteps?: number;
  /** `evict` (default): close and reload between steps; `restart`: a new runtime on the same store. */
  mode?: 'evict' | 'restart';
  /** Makes the store for one run (default: memoryStore). Used as is for `restart`. */
  makeStore?: () => Store | Promise<Store>;
  /** Other agent types the agent spawns or talks to, defined as in your runtime. */
  peers?: readonly AgentDefinition[];
  /**
   * Turns of the event loop a step may take before it counts as never finishing (as in
   * the test runtime's `settle(maxRounds)`). Default 1,000.
   */
  maxRounds?: number;
}

export interface Observation {
  /** The turn's outcome (`done`, `failed`, `interrupted`), or `unsettled`: it never finished. */
  outcome: string;
  state: unknown;
  outputs: unknown[];
  sent: { to: string; message: Message }[];
  spawned: { id: string; type: string }[];
  error?: string;
  /**
   * After the step, once `timeBetweenSteps` has passed (absent when no time passes): the
   * agent's state then, and what the turns its timers ran meanwhile emitted, sent and spawned.
   */
  later?: { state: unknown; outputs: unknown[]; sent: { to: string; message: Message }[]; spawned: { id: string; type: string }[] };
}

export interface TransparencyFailure {
  path: Message[];
  /** Index of the first step that differs. */
  step: number;
  message: Message;
  neverEvicted: Observation;
  evicted: Observation;
  /**
   * One line per difference: `state.count: 2 → 1`. When the cause is known (a turn that
   * never finished, a state XState cannot persist), the first line says so, with the fix.
   */
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
  /** The simulated time that passed after every step (ms). */
  timeBetweenSteps: number;
  /** Every path that ran, with the never-evicted run's observation after each step. */
  observations: { path: Message[]; steps: Observation[] }[];
  failures: TransparencyFailure[];
}

const SUBJECT = 'subject';
const SINK = 'residency.sink';

/** Records what each turn sent and spawned, and creates unknown targets as sinks. */
type Logged = Pick<CommitTurn, 'outbox' | 'spawned' | 'outputs' | 'snapshot'>;
const logged = (c: CommitTurn): Logged => ({ outbox: c.outbox ?? [], spawned: c.spawned ?? [], outputs: c.outputs ?? [], snapshot: c.snapshot });

function recording(inner: Store, log: Map<number, Logged>): Store {
  const store: Store = Object.create(inner) as Store;
  store.commitTurn = async (commit) => {
    if (commit.agentId === SUBJECT) log.set(commit.seq, logged(commit));
    for (const m of commit.outbox ?? []) {
      const known = (commit.spawned ?? []).some((s) => s.id === m.agentId) || (await inner.getAgent(m.agentId));
      if (!known) await inner.createAgent({ id: m.agentId, type: SINK, parent: null, pinned: false, input: null, createdAt: commit.at });
    }
    return inner.commitTurn(commit);
  };
  // Every other method is the inner store's own, bound to it (whatever methods the store has).
  for (let o: object | null = inner; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const k of Object.getOwnPropertyNames(o)) {
      const v = (inner as unknown as Record<string, unknown>)[k];
      if (k === 'constructor' || k === 'commitTurn' || typeof v !== 'function' || Object.hasOwn(store, k)) continue;
      (store as unknown as Record<string, unknown>)[k] = (v as (...a: unknown[]) => unknown).bind(inner);
    }
  }
  // Commits reach the store in group commits too: record those the same way.
  if (typeof inner.batch === 'function') {
    store.batch = async (ops) => {
      for (const op of ops) {
        if (op.op !== 'commitTurn') continue;
        const commit = op.commit;
        if (commit.agentId === SUBJECT) log.set(commit.seq, logged(commit));
        for (const m of commit.outbox ?? []) {
          const known = (commit.spawned ?? []).some((s) => s.id === m.agentId) || (await inner.getAgent(m.agentId));
          if (!known) await inner.createAgent({ id: m.agentId, type: SINK, parent: null, pinned: false, input: null, createdAt: commit.at });
        }
      }
      return inner.batch(ops);
    };
  }
  store.close = async () => {}; // the runs share the store across restarts
  // A restart drops the old runtime as a crash would, which frees the store at once: each
  // runtime of the run owns it in turn, with a newer epoch (so its message ids are new too).
  let epoch = 0;
  store.acquire = async () => ({ epoch: ++epoch });
  return store;
}

const sink = defineAgent({ type: SINK, logic: fromTurn(async ({ state }) => state, { initialState: null }) });

interface Run {
  observations: Observation[];
  taken: Set<string>;
}

const NOT_YET = Symbol('not yet');
const tick = () => new Promise<typeof NOT_YET>((resolve) => setImmediate(() => resolve(NOT_YET)));

/** `p`'s value, or NOT_YET if it has not settled after `rounds` turns of the event loop. */
async function bounded<T>(p: Promise<T>, rounds: number): Promise<T | typeof NOT_YET> {
  let done = false;
  const watched = p.finally(() => {
    done = true;
  });
  for (let i = 0; i < rounds && !done; i++) {
    const r = await Promise.race([watched, tick()]);
    if (r !== NOT_YET || done) return watched;
  }
  return done ? watched : NOT_YET;
}

const REPORTED = '; meanwhile the runtime reported: ';

const unsettled = (error: string, base: Partial<Observation> = {}): Observation => ({
  state: null,
  outputs: [],
  sent: [],
  spawned: [],
  ...base,
  outcome: 'unsettled',
  error,
});

async function runPath(
  def: AgentDefinition,
  path: readonly Message[],
  evict: false | 'evict' | 'restart',
  o: TransparencyOptions,
  timeBetweenSteps: number,
): Promise<Run> {
  const maxRounds = o.maxRounds ?? 1_000;
  const log = new Map<number, Logged>();
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
  // What the runtime reported about the agent during a step (a turn that cannot commit says so here).
  const reported: string[] = [];
  const watch = (rt: TestRuntime) => {
    rt.on('agent.failed', (e) => {
      if (e.id !== SUBJECT) return;
      loadFailure = e.error;
      onFailure?.(e.error);
    });
    rt.on('error', (e) => {
      if (e.id === SUBJECT) reported.push(e.error.message);
    });
  };
  watch(t);
  await t.spawn(def.type, { id: SUBJECT, ...(o.input !== undefined ? { input: o.input } : {}) });
  const observations: Observation[] = [];
  /** The reason a step never finished, with what the runtime reported meanwhile. */
  const neverFinished = (why: string) => (reported.length ? `${why}${REPORTED}${reported.join('; ')}` : why);
  for (const message of path) {
    const before = new Set(log.keys());
    reported.length = 0;
    let obs: Observation;
    if (loadFailure) {
      obs = { outcome: 'failed', state: null, outputs: [], sent: [], spawned: [], error: (loadFailure as Error).message };
    } else {
      type Answer = { ok: true; r: Awaited<ReturnType<TestRuntime['ask']>> } | { ok: false; err: unknown };
      const asked: Promise<Answer> = t.ask(SUBJECT, message).then(
        (r) => ({ ok: true as const, r }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      const failed = new Promise<Answer>((resolve) => (onFailure = (err) => resolve({ ok: false, err })));
      const settled = t.settle(maxRounds).then(
        () => null,
        (err: unknown) => err as Error,
      );
      // Whichever comes first: the answer, a load failure, or settle() giving up (all bounded).
      const first = await Promise.race([asked, failed, settled.then((e) => ({ settle: e }))]);
      let answer: Answer | typeof NOT_YET = 'settle' in first ? NOT_YET : first;
      if (answer === NOT_YET) answer = await bounded(asked, 2);
      const settleError = loadFailure ? null : await settled;
      if (answer === NOT_YET) {
        obs = unsettled(neverFinished(settleError ? settleError.message : 'the message was never answered though nothing runs'));
      } else if (answer.ok) {
        obs = { outcome: answer.r.outcome, state: answer.r.state, outputs: answer.r.outputs, sent: [], spawned: [] };
      } else {
        obs = { outcome: 'failed', state: null, outputs: [], sent: [], spawned: [], error: (answer.err as Error).message };
      }
      if (settleError && obs.outcome !== 'unsettled') obs = unsettled(neverFinished(settleError.message), obs);
    }
    onFailure = null;
    for (const [seq, c] of log) {
      if (before.has(seq)) continue;
      obs.sent.push(...(c.outbox ?? []).map((m) => ({ to: m.agentId, message: m.message })));
      obs.spawned.push(...(c.spawned ?? []).map((s) => ({ id: s.id, type: s.type })));
    }
    observations.push(obs);
    if (obs.outcome === 'unsettled') break; // the runtime is stuck: nothing more can be observed
    if (loadFailure) {
      // quarantined: nothing more will happen to it
    } else if (evict === 'evict') {
      if ((await bounded(t.close(SUBJECT), maxRounds)) === NOT_YET) {
        observations[observations.length - 1] = unsettled(neverFinished(`evicting the agent never finished after ${maxRounds} rounds`), obs);
        break;
      }
    } else if (evict === 'restart') {
      t = await make(); // the old runtime is dropped without stopping: as after a crash
      watch(t);
    }
    if (timeBetweenSteps > 0) {
      const beforeTime = new Set(log.keys());
      reported.length = 0;
      try {
        await t.advance(timeBetweenSteps);
      } catch (err) {
        observations[observations.length - 1] = unsettled(neverFinished(`after ${timeBetweenSteps} ms: ${(err as Error).message}`), obs);
        break;
      }
      // What the time did: the state now, and what the turns its timers ran put out.
      const later: NonNullable<Observation['later']> = { state: obs.state, outputs: [], sent: [], spawned: [] };
      for (const [seq, c] of log) {
        if (beforeTime.has(seq)) continue;
        if (c.snapshot !== undefined) later.state = resultState(def, c.snapshot);
        later.outputs.push(...(c.outputs ?? []));
        later.sent.push(...(c.outbox ?? []).map((m) => ({ to: m.agentId, message: m.message })));
        later.spawned.push(...(c.spawned ?? []).map((s) => ({ id: s.id, type: s.type })));
      }
      obs.later = later;
    }
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
    // At least two steps each, so that time passes between two steps and the second one
    // sees what it did: a one-step path is extended by every event.
    const twoSteps = (p: Message[]) => (p.length === 1 ? o.events!.map((e) => [...p, e]) : [p]);
    paths.push(...[...shortest, ...extended, ...simple].flatMap(twoSteps));
  }
  const seen = new Set<string>();
  const unique = paths.filter((p) => p.length > 0 && !seen.has(JSON.stringify(p)) && seen.add(JSON.stringify(p)));
  return unique.slice(0, o.maxPaths ?? 200);
}

/**
 * XState's generated actor ids (`x:12`) count the actors of the whole process, so the
 * same error reads differently in two runs: compare error texts without them.
 */
const GENERATED_ID = /\bx:\d+\b/g;
const withoutGeneratedIds = (text: string) => text.replace(GENERATED_ID, 'x:…');

function comparable(o: Observation): Observation {
  return o.error === undefined ? o : { ...o, error: withoutGeneratedIds(o.error) };
}

const INLINE_CHILD = /cannot be persisted|inline child|snapshot\.children(?:\.[\w$-]+|\["[^"]*"\])\.src`/i;
const NOT_JSON = /JSON-serializable/;

/**
 * The plain account of why a step differs or fails, when the cause is known: a turn that
 * never finished, or a state XState cannot persist. Null otherwise.
 */
function causeOf(a: Observation, b: Observation): string[] | null {
  const lines: string[] = [];
  // Of a turn that never finished, what the runtime reported meanwhile says why.
  const texts = [a.error, b.error].filter((e): e is string => typeof e === 'string').map((e) => e.split(REPORTED)[1] ?? e);
  const inline = texts.find((e) => INLINE_CHILD.test(e));
  const notJson = texts.find((e) => NOT_JSON.test(e));
  if (inline !== undefined) {
    lines.push(
      'the state cannot be stored, so eviction would lose it: a child actor spawned from inline logic cannot be persisted by XState; ' +
        `spawn child actors from logic registered by name in setup({ actors }) (the error: ${withoutGeneratedIds(inline)})`,
    );
  } else if (notJson !== undefined) {
    lines.push(
      'the state cannot be stored, so eviction would lose it: it holds a value JSON cannot carry (a Date, a Map, a class instance, a function); ' +
        `store plain JSON (an ISO string, an array of pairs, …) (the error: ${withoutGeneratedIds(notJson)})`,
    );
  }
  const stuck = a.outcome === 'unsettled' ? a : b.outcome === 'unsettled' ? b : null;
  if (stuck) {
    const runs = a.outcome === 'unsettled' && b.outcome === 'unsettled' ? 'in both runs' : a === stuck ? 'never evicted' : 'evicted';
    lines.push(`the turn never finished (${runs}), so the path stops here: ${stuck.error}`);
  }
  return lines.length ? lines : null;
}

/** The delay assumed for one computed by a function (`delays: { x: () => … }`) or not found: 60 s. */
export const UNKNOWN_DELAY = 60_000;

/**
 * The default `timeBetweenSteps`: the largest delay `def`'s machine declares, plus 1 ms, so
 * that every delay falls due between two steps; 0 for a machine without delays and for
 * fromTurn logic. It looks at every state node (its `after` delays, and delayed `raise` /
 * `sendTo` in its entry, exit and transition actions, named actions included) of the
 * machine and of the machines registered in its `setup({ actors })`. A named delay is
 * looked up in `setup({ delays })`; one computed by a function counts as `UNKNOWN_DELAY`.
 */
export function defaultTimeBetweenSteps(def: AgentDefinition): number {
  if (isTurnLogic(def.logic)) return 0;
  let largest = -1;
  const seen = new Set<unknown>();
  type Impl = { delays?: Record<string, unknown>; actions?: Record<string, unknown>; actors?: Record<string, unknown> };
  type Node = {
    after?: unknown;
    entry?: unknown[];
    exit?: unknown[];
    transitions?: Map<string, { actions?: unknown[] }[]>;
    always?: { actions?: unknown[] }[];
    states?: Record<string, Node>;
  };
  const visitMachine = (machine: { root?: Node; implementations?: Impl }) => {
    if (seen.has(machine) || !machine.root) return;
    seen.add(machine);
    const impl = machine.implementations ?? {};
    const delayOf = (d: unknown): number => {
      if (typeof d === 'number') return d;
      if (typeof d === 'string') {
        const named = impl.delays?.[d];
        return typeof named === 'number' ? named : UNKNOWN_DELAY;
      }
      return d === undefined ? -1 : UNKNOWN_DELAY;
    };
    const visitAction = (a: unknown) => {
      const action = typeof a === 'string' ? impl.actions?.[a] : a;
      if (typeof action === 'function' && 'delay' in action) largest = Math.max(largest, delayOf((action as { delay?: unknown }).delay));
    };
    const visitNode = (node: Node) => {
      void node.after; // XState adds the `after` delays to the entry actions when asked for them
      for (const a of node.entry ?? []) visitAction(a);
      for (const a of node.exit ?? []) visitAction(a);
      for (const ts of node.transitions?.values() ?? []) for (const t of ts) for (const a of t.actions ?? []) visitAction(a);
      for (const t of node.always ?? []) for (const a of t.actions ?? []) visitAction(a);
      for (const child of Object.values(node.states ?? {})) visitNode(child);
    };
    visitNode(machine.root);
    for (const actor of Object.values(impl.actors ?? {})) visitMachine(actor as { root?: Node });
  };
  visitMachine(def.logic as unknown as { root?: Node; implementations?: Impl });
  return largest < 0 ? 0 : largest + 1;
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
  if (options.maxRounds !== undefined) assertIntegerAtLeast(options.maxRounds, 'maxRounds', 1);
  const mode = options.mode ?? 'evict';
  const paths = await pathsOf(def, options);
  if (paths.length === 0) {
    throw new TypeError(
      'Expected something to check: give `events` for machine logic, or `sequences` / `arbitrary` for fromTurn logic',
    );
  }
  const timeBetweenSteps = options.timeBetweenSteps ?? defaultTimeBetweenSteps(def);
  const failures: TransparencyFailure[] = [];
  const observations: TransparencyReport['observations'] = [];
  const taken = new Set<string>();
  let steps = 0;
  for (const path of paths) {
    const never = await runPath(def, path, false, options, timeBetweenSteps);
    const evicted = await runPath(def, path, mode, options, timeBetweenSteps);
    observations.push({ path: [...path], steps: never.observations });
    for (const t of never.taken) taken.add(t);
    steps += path.length;
    for (let i = 0; i < path.length; i++) {
      const a = never.observations[i];
      const b = evicted.observations[i];
      if (!a || !b) break;
      const cause = causeOf(a, b);
      let diff = jsonDiff(comparable(a), comparable(b));
      if (diff.length === 0 && !cause) continue;
      if (cause) diff = [...cause, ...diff.filter((d) => !d.startsWith('error:'))];
      failures.push({ path: [...path], step: i, message: path[i]!, neverEvicted: a, evicted: b, diff });
      break;
    }
  }
  let coverage: TransparencyReport['coverage'] = null;
  if (!isTurnLogic(def.logic)) {
    const all = transitionsOf(def.logic);
    const missed = all.filter((t) => !taken.has(t.id)).map((t) => t.id);
    coverage = { covered: all.length - missed.length, total: all.length, missed };
  }
  return {
    ok: failures.length === 0,
    mode,
    paths: paths.length,
    steps,
    durationMs: performance.now() - started,
    coverage,
    timeBetweenSteps,
    observations,
    failures,
  };
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
