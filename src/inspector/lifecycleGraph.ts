/**
 * The lifecycle statechart as a drawable graph: read from `agentMachine` itself with
 * `statesOf` / `transitionsOf` (so the drawing cannot drift from the code), collapsed to
 * the top-level states (the ones `get()` reports), and laid out in layers.
 *
 * The layout is a small Sugiyama-style pass, enough for a dozen states: break cycles by
 * depth-first search from the initial state, rank each state by its longest path from
 * it, stack states of one rank in definition order. Back edges are drawn as arcs.
 */
import { agentMachine } from '../../machines/agent.js';
import { statesOf, transitionsOf } from '../../machines/describe.js';
import type { AnyStateMachine } from 'xstate';

export interface GraphNode {
  /** The top-level state key (`idle`, `unloaded`, …). */
  key: string;
  /** The lifecycle state reported for it (`settling` is reported as `idle`). */
  lifecycle: string;
  /** Child state keys (drawn inside the box). */
  children: string[];
  initial: boolean;
  rank: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface GraphEdge {
  source: string;
  target: string;
  /** Events (with guards) that take this edge. */
  events: string[];
  /** Goes against the ranking (drawn as an arc). */
  back: boolean;
}

export interface LifecycleGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Transitions defined on the root, taken from any state (e.g. `destroy`). */
  fromAnyState: { event: string; target: string }[];
  width: number;
  height: number;
}

const COLUMN = 220;
const ROW = 96;
const WIDTH = 130;
const HEIGHT = 52;
const MARGIN = 24;

/** Lays out a machine's top-level states; by default the agent lifecycle. */
export function lifecycleGraph(machine: AnyStateMachine = agentMachine): LifecycleGraph {
  const states = statesOf(machine);
  const root = states[0];
  if (!root) throw new Error('the machine has no states');
  const top = states.filter((s) => s.parent === root.id);
  const topOf = new Map<string, string>();
  for (const s of states) {
    let cur: typeof s | undefined = s;
    while (cur && cur.parent !== root.id) cur = states.find((p) => p.id === cur!.parent);
    if (cur) topOf.set(s.id, cur.key);
  }

  const edgeMap = new Map<string, GraphEdge>();
  const fromAnyState: { event: string; target: string }[] = [];
  for (const t of transitionsOf(machine)) {
    for (const target of t.targets) {
      const to = topOf.get(target);
      if (!to) continue;
      const label = t.guard ? `${t.event} [${t.guard}]` : t.event;
      if (t.source === root.id) {
        fromAnyState.push({ event: label, target: to });
        continue;
      }
      const from = topOf.get(t.source);
      if (!from || from === to) continue;
      const k = `${from}→${to}`;
      const e = edgeMap.get(k) ?? { source: from, target: to, events: [], back: false };
      if (!e.events.includes(label)) e.events.push(label);
      edgeMap.set(k, e);
    }
  }
  const edges = [...edgeMap.values()];

  // Break cycles: an edge to a state on the DFS stack is a back edge.
  const initialKey = root.initial ? topOf.get(root.initial) : top[0]?.key;
  const order = top.map((s) => s.key);
  const out = (k: string) => edges.filter((e) => e.source === k);
  const visited = new Set<string>();
  const onStack = new Set<string>();
  const visit = (k: string): void => {
    visited.add(k);
    onStack.add(k);
    for (const e of out(k)) {
      if (onStack.has(e.target)) e.back = true;
      else if (!visited.has(e.target)) visit(e.target);
    }
    onStack.delete(k);
  };
  if (initialKey) visit(initialKey);
  for (const k of order) if (!visited.has(k)) visit(k);

  // Longest path over forward edges (a DAG now); Bellman-style relaxation is fine at this size.
  const rank = new Map(order.map((k) => [k, 0]));
  for (let i = 0; i < order.length; i++) {
    for (const e of edges) {
      if (e.back) continue;
      const r = (rank.get(e.source) ?? 0) + 1;
      if (r > (rank.get(e.target) ?? 0)) rank.set(e.target, r);
    }
  }
  // States only reachable from the root (destroyed) go one rank past the rest.
  const maxRank = Math.max(0, ...rank.values());
  for (const k of order) {
    const reachedOnlyFromRoot = !edges.some((e) => e.target === k) && k !== initialKey;
    if (reachedOnlyFromRoot) rank.set(k, maxRank + 1);
  }

  const rows = new Map<number, number>();
  const nodes: GraphNode[] = top.map((s) => {
    const r = rank.get(s.key) ?? 0;
    const row = rows.get(r) ?? 0;
    rows.set(r, row + 1);
    const children = states.filter((c) => c.parent === s.id).map((c) => c.key);
    return {
      key: s.key,
      lifecycle: s.key === 'settling' ? 'idle' : s.key,
      children,
      initial: s.key === initialKey,
      rank: r,
      x: MARGIN + r * COLUMN,
      y: MARGIN + row * ROW,
      w: WIDTH,
      h: HEIGHT + (children.length > 0 ? 14 * children.length : 0),
    };
  });
  const width = Math.max(...nodes.map((n) => n.x + n.w)) + MARGIN;
  const height = Math.max(...nodes.map((n) => n.y + n.h)) + MARGIN + 40;
  return { nodes, edges, fromAnyState, width, height };
}
