/**
 * Exhaustive exploration of a model's interleavings, by breadth-first search over
 * event sequences with replay.
 *
 * A model is a world you can build from scratch (`init`), ask which events are
 * enabled (`events`), advance by one event (`apply`, may mutate), name by its state
 * (`key`, for de-duplication) and check (`check`, throws on a broken invariant).
 *
 * Worlds are never cloned: a state is reached again by replaying the shortest event
 * sequence that led to it on a fresh world. That costs O(depth) per visit but lets a
 * world hold actors and mutable structures, which cannot be branched safely. Breadth
 * first means the first counterexample found is a shortest one.
 */

export interface Model<W, E> {
  init(): W;
  /** Events enabled in this world. */
  events(world: W): readonly E[];
  /** Advances the world by one event (may mutate it). */
  apply(world: W, event: E): void;
  /** A string that is equal for worlds that behave the same from here on. */
  key(world: W): string;
  /** Throws when an invariant does not hold. Called after every step. */
  check?(world: W, path: readonly E[]): void;
  /**
   * A copy of the world that can go its own way. Optional: without it, states are
   * reached again by replay. With it, the search keeps one world per frontier state.
   */
  clone?(world: W): W;
  /** A readable name for an event, for counterexamples. */
  describe?(event: E): string;
}

export interface ExploreOptions {
  /** Longest event sequence explored. */
  maxDepth: number;
  /** Stop after this many distinct states (the report says it was truncated). */
  maxStates?: number;
}

export interface ExploreReport {
  /** Distinct states reached (by `key`). */
  states: number;
  /** Steps taken (edges explored, including those into known states). */
  edges: number;
  /** Deepest level reached. */
  depth: number;
  /** States at the depth bound whose successors were not explored. */
  frontier: number;
  /** True when `maxStates` stopped the search. */
  truncated: boolean;
}

/** The invariant that broke, with the shortest path that breaks it. */
export class ModelViolation extends Error {
  override readonly name = 'ModelViolation';
  constructor(
    readonly path: readonly string[],
    override readonly cause: unknown,
  ) {
    super(
      `${cause instanceof Error ? cause.message : String(cause)}\n  after ${path.length} steps:\n    ${path.join('\n    ')}`,
    );
  }
}

interface Node<W, E> {
  parent: Node<W, E> | null;
  event: E | null;
  depth: number;
  /** The world in this state, kept when the model can clone. */
  world: W | null;
}

function pathOf<W, E>(node: Node<W, E>): E[] {
  const out: E[] = [];
  for (let n: Node<W, E> | null = node; n && n.event !== null; n = n.parent) out.push(n.event);
  return out.reverse();
}

export function explore<W, E>(model: Model<W, E>, options: ExploreOptions): ExploreReport {
  const { maxDepth, maxStates = Infinity } = options;
  const describe = model.describe ?? ((e: E) => JSON.stringify(e));
  const replay = (events: readonly E[]): W => {
    const w = model.init();
    for (const e of events) model.apply(w, e);
    return w;
  };
  const step = (path: E[], w: W): void => {
    try {
      model.check?.(w, path);
    } catch (err) {
      throw new ModelViolation(path.map(describe), err);
    }
  };

  const root = model.init();
  step([], root);
  const seen = new Set<string>([model.key(root)]);
  const clone = model.clone?.bind(model);
  let frontier: Node<W, E>[] = [{ parent: null, event: null, depth: 0, world: clone ? root : null }];
  const report: ExploreReport = { states: 1, edges: 0, depth: 0, frontier: 0, truncated: false };

  while (frontier.length > 0) {
    const next: Node<W, E>[] = [];
    for (const node of frontier) {
      const path = pathOf(node);
      const base = node.world ?? replay(path);
      node.world = null;
      const events = model.events(base);
      let fresh: W | null = clone ? null : base;
      for (const [i, event] of events.entries()) {
        // The last event may consume the base world; the others get a copy (or a replay).
        const w = clone ? (i === events.length - 1 ? base : clone(base)) : (fresh ?? replay(path));
        fresh = null;
        const childPath = [...path, event];
        try {
          model.apply(w, event);
        } catch (err) {
          throw new ModelViolation(childPath.map(describe), err);
        }
        step(childPath, w);
        report.edges++;
        const key = model.key(w);
        if (seen.has(key)) continue;
        seen.add(key);
        report.states++;
        report.depth = Math.max(report.depth, node.depth + 1);
        if (report.states >= maxStates) {
          report.truncated = true;
          return report;
        }
        if (node.depth + 1 < maxDepth) next.push({ parent: node, event, depth: node.depth + 1, world: clone ? w : null });
        else report.frontier++;
      }
    }
    frontier = next;
  }
  return report;
}
