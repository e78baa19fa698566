/**
 * Reads a machine's own definition back as plain data: its states and every
 * transition (including eventless `always` ones and each guarded alternative).
 *
 * Used to draw the statecharts in docs/semantics.md (so the drawing cannot drift from
 * the code) and to measure which transitions model-based tests have taken.
 */
import { toDirectedGraph } from 'xstate/graph';
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

export interface TransitionInfo {
  /** Stable id: `source#event#index` (index among the source's transitions for that event). */
  id: string;
  source: string;
  event: string;
  targets: string[];
  guard: string | null;
  actions: string[];
  /** The definition itself, to match against inspection events. */
  definition: AnyTransitionDefinition;
}

export interface StateInfo {
  id: string;
  key: string;
  parent: string | null;
  type: string;
  initial: string | null;
}

function nameOf(x: unknown): string {
  if (typeof x === 'string') return x;
  if (x && typeof x === 'object' && 'type' in x && typeof (x as { type: unknown }).type === 'string') {
    return (x as { type: string }).type;
  }
  if (typeof x === 'function') {
    const f = x as { type?: string; name?: string; guards?: unknown[] };
    if (f.name === 'not' && f.guards) return `!${f.guards.map(nameOf).join(',')}`;
    return f.type ?? f.name ?? 'inline';
  }
  return 'inline';
}

function guardName(t: AnyTransitionDefinition): string | null {
  return t.guard ? nameOf(t.guard) : null;
}

function stateNodes(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states as Record<string, AnyStateNode>).flatMap(stateNodes)];
}

/** Every state node of the machine, root first, in definition order. */
export function statesOf(machine: AnyStateMachine): StateInfo[] {
  const graph = toDirectedGraph(machine);
  const out: StateInfo[] = [];
  const walk = (g: typeof graph, parent: string | null): void => {
    const n = g.stateNode;
    const initial = n.initial?.target?.[0]?.id ?? null;
    out.push({ id: n.id, key: n.key, parent, type: n.type, initial });
    for (const child of g.children) walk(child, n.id);
  };
  walk(graph, null);
  return out;
}

/** Every transition of the machine, with a stable id. */
export function transitionsOf(machine: AnyStateMachine): TransitionInfo[] {
  const out: TransitionInfo[] = [];
  for (const node of stateNodes(machine.root)) {
    const groups: [string, AnyTransitionDefinition[]][] = [...node.transitions.entries()];
    if (node.always) groups.push(['always', node.always]);
    for (const [event, defs] of groups) {
      defs.forEach((t, i) => {
        out.push({
          id: `${node.id}#${event}#${i}`,
          source: node.id,
          event: event === '' ? 'always' : event,
          targets: (t.target ?? []).map((s: AnyStateNode) => s.id),
          guard: guardName(t),
          actions: (t.actions as unknown[]).map(nameOf),
          definition: t,
        });
      });
    }
  }
  return out;
}

/**
 * The stable id (as in {@link transitionsOf}) of a transition definition, e.g. one
 * reported by an `@xstate.microstep` inspection event. Works across `.provide()` copies
 * of a machine, whose definitions are different objects.
 */
export function transitionId(t: AnyTransitionDefinition): string {
  const source = t.source as AnyStateNode;
  const event = t.eventType === '' ? 'always' : t.eventType;
  const defs: AnyTransitionDefinition[] =
    t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  return `${source.id}#${event}#${defs.indexOf(t)}`;
}
