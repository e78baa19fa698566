/**
 * A statechart as a drawing: read from the machine itself (`statesOf` / `transitionsOf`,
 * so the drawing cannot drift from the code), laid out by ELK's layered algorithm
 * (elkjs) with nested states as boxes inside their parents, and handed to the page as
 * plain coordinates: boxes, edge polylines, label boxes. The page only draws SVG.
 *
 * Used for the agent lifecycle (`machines/agent.ts`) and for an agent type's own logic
 * when it is an XState machine. elkjs (1.6 MB) is loaded on first use, so a runtime that
 * never serves the inspector never loads it.
 */
import type { AnyStateMachine } from 'xstate';
import { statesOf, transitionsOf, type StateInfo } from '../../machines/describe.js';

export interface DrawnState {
  /** The state node id (`agent.unloaded.dormant`). */
  id: string;
  key: string;
  /** Keys from the root (excluded) to this state: what a state value names. */
  path: string[];
  parent: string | null;
  depth: number;
  /** `atomic`, `compound`, `parallel`, `final` or `history`. */
  type: string;
  /** Box, in absolute coordinates. */
  x: number;
  y: number;
  w: number;
  h: number;
  /** The initial state of its parent. */
  initial: boolean;
  /** Transitions without a target, handled in place (event names). */
  internal: string[];
}

export interface DrawnEdge {
  id: string;
  source: string;
  target: string;
  /** Event names (with `[guard]`) that take this edge. */
  events: string[];
  /** What is written on the edge: one line per event name. */
  lines: string[];
  /** Polyline, absolute coordinates, from source to target. */
  points: [number, number][];
  label: { x: number; y: number; w: number; h: number } | null;
}

export interface InitialMark {
  /** The state whose initial child this points at. */
  parent: string;
  target: string;
  x: number;
  y: number;
  points: [number, number][];
}

export interface MachineDrawing {
  machineId: string;
  states: DrawnState[];
  edges: DrawnEdge[];
  initials: InitialMark[];
  /** Transitions defined on the root, taken from any state (e.g. `destroy`); `target` null when handled in place. */
  fromAnyState: { event: string; target: string | null }[];
  width: number;
  height: number;
}

// Text metrics for the page's fonts (13 px state names, 10 px labels), rounded up.
const STATE_CHAR = 7.6;
const LABEL_CHAR = 6.1;
const LABEL_LINE = 13;
const STATE_H = 34;
const TITLE_H = 26;
const MARK = 10;

/** `xstate.after.1000.agent.backoff` → `after 1000 ms`; `xstate.done.actor.x` → `done: x`. */
export function eventLabel(event: string): string {
  const after = /^xstate\.after\.(\d+)\./.exec(event);
  if (after) return `after ${after[1]} ms`;
  const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event);
  if (done) return `${done[1]}: ${done[2]}`;
  const doneState = /^xstate\.done\.state\.(.+)$/.exec(event);
  if (doneState) return `done: ${doneState[1]}`;
  return event;
}

/** The transitions between one source and one target state. */
interface EdgeGroup {
  source: string;
  target: string;
  events: string[];
  names: string[];
}

interface ElkLabel {
  text: string;
  width: number;
  height: number;
  x?: number;
  y?: number;
}
interface ElkNode {
  id: string;
  width?: number;
  height?: number;
  x?: number;
  y?: number;
  layoutOptions?: Record<string, string>;
  labels?: ElkLabel[];
  children?: ElkNode[];
  edges?: ElkEdge[];
}
interface ElkEdge {
  id: string;
  sources: string[];
  targets: string[];
  labels?: ElkLabel[];
  container?: string;
  sections?: { startPoint: { x: number; y: number }; endPoint: { x: number; y: number }; bendPoints?: { x: number; y: number }[] }[];
}
interface Elk {
  layout(graph: ElkNode): Promise<ElkNode>;
}

let elkP: Promise<Elk> | null = null;
async function elk(): Promise<Elk> {
  elkP ??= import('elkjs/lib/elk.bundled.js').then((m) => {
    const ELK = ((m as { default?: unknown }).default ?? m) as new () => Elk;
    return new ELK();
  });
  return elkP;
}

const LAYOUT_OPTIONS: Record<string, string> = {
  'elk.algorithm': 'layered',
  'elk.direction': 'RIGHT',
  'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
  'elk.edgeRouting': 'ORTHOGONAL',
  'elk.layered.spacing.nodeNodeBetweenLayers': '28',
  'elk.spacing.nodeNode': '28',
  'elk.spacing.edgeNode': '14',
  'elk.spacing.edgeEdge': '10',
  'elk.spacing.edgeLabel': '4',
  'elk.layered.spacing.edgeNodeBetweenLayers': '10',
  'elk.edgeLabels.placement': 'CENTER',
  'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
  'elk.layered.crossingMinimization.strategy': 'LAYER_SWEEP',
  'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
  'elk.layered.mergeEdges': 'false',
  'elk.layered.cycleBreaking.strategy': 'MODEL_ORDER',
  'elk.padding': '[top=20,left=20,bottom=20,right=20]',
};
const COMPOUND_OPTIONS: Record<string, string> = {
  'elk.padding': `[top=${TITLE_H + 8},left=14,bottom=14,right=14]`,
};

/**
 * Lays out a machine. Deterministic for a given machine (ELK is), so drawings can be
 * cached and compared.
 *
 * @example
 * const drawing = await drawMachine(agentMachine);
 * drawing.states.find((s) => s.key === 'idle'); // => { id: 'agent.idle', x: …, y: …, … }
 */
export async function drawMachine(machine: AnyStateMachine): Promise<MachineDrawing> {
  const states = statesOf(machine);
  const root = states[0];
  if (!root) throw new Error('the machine has no states');
  const byId = new Map(states.map((s) => [s.id, s]));
  const childrenOf = new Map<string, StateInfo[]>();
  for (const s of states) {
    if (s.parent === null) continue;
    const list = childrenOf.get(s.parent) ?? [];
    list.push(s);
    childrenOf.set(s.parent, list);
  }
  const pathOf = (s: StateInfo): string[] => {
    const out: string[] = [];
    for (let cur: StateInfo | undefined = s; cur && cur.parent !== null; cur = byId.get(cur.parent)) out.unshift(cur.key);
    return out;
  };

  // Transitions: grouped by (source, target); targetless ones are listed on their state.
  const internal = new Map<string, string[]>();
  const fromAnyState: { event: string; target: string | null }[] = [];
  const grouped = new Map<string, EdgeGroup>();
  for (const t of transitionsOf(machine)) {
    const name = eventLabel(t.event);
    const label = t.guard ? `${name} [${t.guard}]` : name;
    if (t.targets.length === 0) {
      if (t.event === '*') continue; // a catch-all handled in place draws nothing useful
      if (t.source === root.id) {
        if (!fromAnyState.some((f) => f.event === label && f.target === null)) fromAnyState.push({ event: label, target: null });
        continue;
      }
      const list = internal.get(t.source) ?? [];
      if (!list.includes(name)) list.push(name);
      internal.set(t.source, list);
      continue;
    }
    for (const target of t.targets) {
      if (target === root.id) {
        // Re-entering the whole machine: no box to point at; listed on the source.
        const list = internal.get(t.source) ?? [];
        list.push(`${name} ↺`);
        internal.set(t.source, list);
        continue;
      }
      if (t.source === root.id) {
        fromAnyState.push({ event: label, target: pathOf(byId.get(target)!).join('.') });
        continue;
      }
      const k = `${t.source}\u0000${target}`;
      const g = grouped.get(k) ?? { source: t.source, target, events: [], names: [] };
      if (!g.events.includes(label)) g.events.push(label);
      if (!g.names.includes(name)) g.names.push(name);
      grouped.set(k, g);
    }
  }

  // The ELK graph: one node per state (compound states hold their children), one small
  // node per initial marker, every edge at the root (ELK moves it to its container).
  const stateBox = (s: StateInfo): { width: number; height: number } => {
    const shown = (internal.get(s.id) ?? []).slice(0, 3);
    return {
      width: Math.max(84, Math.ceil(s.key.length * STATE_CHAR) + 28, ...shown.map((l) => Math.ceil(l.length * LABEL_CHAR) + 16)),
      height: STATE_H + LABEL_LINE * shown.length,
    };
  };
  const edges: ElkEdge[] = [];
  const initialIds = new Map<string, string>();
  const toElk = (s: StateInfo): ElkNode => {
    const kids = childrenOf.get(s.id) ?? [];
    if (kids.length === 0) return { id: s.id, ...stateBox(s) };
    const children = kids.map(toElk);
    if (s.initial && s.type !== 'parallel') {
      const mark = `${s.id}\u0000initial`;
      initialIds.set(mark, s.id);
      children.unshift({ id: mark, width: MARK, height: MARK });
      edges.push({ id: `${mark}\u0000edge`, sources: [mark], targets: [s.initial] });
    }
    return {
      id: s.id,
      layoutOptions: { ...COMPOUND_OPTIONS, 'elk.nodeSize.minimum': `(${stateBox(s).width + 20}, 40)`, 'elk.nodeSize.constraints': 'MINIMUM_SIZE' },
      children,
    };
  };
  const top = toElk(root);
  const groupOf = new Map<string, EdgeGroup>();
  for (const g of grouped.values()) {
    const lines = g.names;
    const id = `e${groupOf.size}`;
    groupOf.set(id, g);
    edges.push({
      id,
      sources: [g.source],
      targets: [g.target],
      labels: [
        {
          text: lines.join('\n'),
          width: Math.ceil(Math.max(...lines.map((l) => l.length)) * LABEL_CHAR) + 6,
          height: lines.length * LABEL_LINE,
        },
      ],
    });
  }
  const graph: ElkNode = { id: root.id, layoutOptions: LAYOUT_OPTIONS, children: top.children ?? [], edges };
  const laid = await (await elk()).layout(graph);

  // Back to absolute coordinates.
  const abs = new Map<string, { x: number; y: number; w: number; h: number }>();
  abs.set(root.id, { x: 0, y: 0, w: laid.width ?? 0, h: laid.height ?? 0 });
  const walk = (node: ElkNode, ox: number, oy: number): void => {
    for (const c of node.children ?? []) {
      const x = ox + (c.x ?? 0);
      const y = oy + (c.y ?? 0);
      abs.set(c.id, { x, y, w: c.width ?? 0, h: c.height ?? 0 });
      walk(c, x, y);
    }
  };
  walk(laid, 0, 0);
  const round = (v: number) => Math.round(v * 10) / 10;

  const drawnStates: DrawnState[] = states.slice(1).map((s) => {
    const b = abs.get(s.id)!;
    const parent = s.parent === root.id ? null : s.parent;
    const parentInfo = s.parent ? byId.get(s.parent) : undefined;
    return {
      id: s.id,
      key: s.key,
      path: pathOf(s),
      parent,
      depth: pathOf(s).length,
      type: s.type,
      x: round(b.x),
      y: round(b.y),
      w: round(b.w),
      h: round(b.h),
      initial: parentInfo?.initial === s.id && parentInfo.type !== 'parallel',
      internal: internal.get(s.id) ?? [],
    };
  });

  const drawnEdges: DrawnEdge[] = [];
  const initials: InitialMark[] = [];
  for (const e of laid.edges ?? []) {
    const origin = abs.get(e.container ?? root.id) ?? { x: 0, y: 0 };
    const points: [number, number][] = [];
    for (const sec of e.sections ?? []) {
      for (const p of [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint]) points.push([round(origin.x + p.x), round(origin.y + p.y)]);
    }
    const markParent = initialIds.get(e.sources[0]!);
    if (markParent !== undefined) {
      const m = abs.get(e.sources[0]!)!;
      initials.push({ parent: markParent, target: e.targets[0]!, x: round(m.x + MARK / 2), y: round(m.y + MARK / 2), points });
      continue;
    }
    const g = groupOf.get(e.id)!;
    const l = e.labels?.[0];
    drawnEdges.push({
      id: e.id,
      source: g.source,
      target: g.target,
      events: g.events,
      lines: g.names,
      points,
      label: l ? { x: round(origin.x + (l.x ?? 0)), y: round(origin.y + (l.y ?? 0)), w: l.width, h: l.height } : null,
    });
  }
  // Room below for the "from any state" lines.
  const height = round((laid.height ?? 0) + (fromAnyState.length > 0 ? 10 + fromAnyState.length * 15 : 0));
  return { machineId: root.id, states: drawnStates, edges: drawnEdges, initials, fromAnyState, width: round(laid.width ?? 0), height };
}
