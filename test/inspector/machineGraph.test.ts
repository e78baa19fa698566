/**
 * The statechart drawings (src/inspector/machineGraph.ts), checked as geometry: every
 * state and transition of the machine is drawn, children sit inside their parents,
 * siblings do not overlap, edges start and end on their states' borders and do not run
 * through other states, labels do not cover states.
 */
import { createMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import { agentMachine } from '../../machines/agent.js';
import { statesOf, transitionsOf } from '../../machines/describe.js';
import { drawMachine, eventLabel, type DrawnState, type MachineDrawing } from '../../src/inspector/machineGraph.js';

type Box = { x: number; y: number; w: number; h: number };
const EPS = 1;

function inside(inner: Box, outer: Box): boolean {
  return inner.x >= outer.x - EPS && inner.y >= outer.y - EPS && inner.x + inner.w <= outer.x + outer.w + EPS && inner.y + inner.h <= outer.y + outer.h + EPS;
}
function overlap(a: Box, b: Box): boolean {
  return a.x + a.w > b.x + EPS && b.x + b.w > a.x + EPS && a.y + a.h > b.y + EPS && b.y + b.h > a.y + EPS;
}
function onBorder([x, y]: [number, number], b: Box): boolean {
  const withinX = x >= b.x - EPS && x <= b.x + b.w + EPS;
  const withinY = y >= b.y - EPS && y <= b.y + b.h + EPS;
  const onVertical = Math.abs(x - b.x) <= EPS || Math.abs(x - (b.x + b.w)) <= EPS;
  const onHorizontal = Math.abs(y - b.y) <= EPS || Math.abs(y - (b.y + b.h)) <= EPS;
  return (onVertical && withinY) || (onHorizontal && withinX);
}
/** Does the axis-parallel segment p→q pass through the inside of b (shrunk by EPS)? */
function crosses(p: [number, number], q: [number, number], b: Box): boolean {
  const [x1, x2] = [Math.min(p[0], q[0]), Math.max(p[0], q[0])];
  const [y1, y2] = [Math.min(p[1], q[1]), Math.max(p[1], q[1])];
  return x2 > b.x + EPS && x1 < b.x + b.w - EPS && y2 > b.y + EPS && y1 < b.y + b.h - EPS;
}
function ancestors(d: MachineDrawing, id: string): Set<string> {
  const byId = new Map(d.states.map((s) => [s.id, s]));
  const out = new Set<string>();
  for (let cur = byId.get(id); cur; cur = cur.parent ? byId.get(cur.parent) : undefined) out.add(cur.id);
  return out;
}

function checkGeometry(d: MachineDrawing): void {
  const byId = new Map(d.states.map((s) => [s.id, s]));
  for (const s of d.states) {
    expect(s.w, s.id).toBeGreaterThan(0);
    expect(inside(s, { x: 0, y: 0, w: d.width, h: d.height }), `${s.id} inside the drawing`).toBe(true);
    if (s.parent) expect(inside(s, byId.get(s.parent)!), `${s.id} inside ${s.parent}`).toBe(true);
  }
  const siblings = new Map<string | null, DrawnState[]>();
  for (const s of d.states) siblings.set(s.parent, [...(siblings.get(s.parent) ?? []), s]);
  for (const group of siblings.values()) {
    for (const a of group) for (const b of group) if (a !== b) expect(overlap(a, b), `${a.id} overlaps ${b.id}`).toBe(false);
  }
  const atomic = d.states.filter((s) => s.type !== 'compound' && s.type !== 'parallel');
  for (const e of d.edges) {
    const name = `${e.source} → ${e.target}`;
    expect(e.points.length, name).toBeGreaterThanOrEqual(2);
    expect(onBorder(e.points[0]!, byId.get(e.source)!), `${name} starts on its source`).toBe(true);
    expect(onBorder(e.points.at(-1)!, byId.get(e.target)!), `${name} ends on its target`).toBe(true);
    const own = new Set([...ancestors(d, e.source), ...ancestors(d, e.target)]);
    for (let i = 1; i < e.points.length; i++) {
      const [p, q] = [e.points[i - 1]!, e.points[i]!];
      expect(Math.abs(p[0] - q[0]) <= EPS || Math.abs(p[1] - q[1]) <= EPS, `${name}: segment ${i} is orthogonal`).toBe(true);
      for (const b of atomic) if (!own.has(b.id)) expect(crosses(p, q, b), `${name} runs through ${b.id}`).toBe(false);
    }
    expect(e.label, name).not.toBeNull();
    for (const b of atomic) expect(overlap(e.label!, b), `label of ${name} covers ${b.id}`).toBe(false);
  }
}

describe('drawMachine', () => {
  it('draws the agent lifecycle: every state, every transition, nested unloaded, initial first', async () => {
    const d = await drawMachine(agentMachine);
    const states = statesOf(agentMachine).slice(1);
    expect(d.states.map((s) => s.id)).toEqual(states.map((s) => s.id));
    expect(d.states.find((s) => s.key === 'dormant')).toMatchObject({ parent: 'agent.unloaded', path: ['unloaded', 'dormant'], depth: 2, initial: true });
    // Every transition with a target, from a state, is on an edge; those from the root are listed.
    for (const t of transitionsOf(agentMachine)) {
      for (const target of t.targets) {
        const label = t.guard ? `${t.event} [${t.guard}]` : t.event;
        if (t.source === 'agent') expect(d.fromAnyState).toContainEqual({ event: label, target: target.replace(/^agent\./, '') });
        else expect(d.edges.find((e) => e.source === t.source && e.target === target)?.events, t.id).toContain(label);
      }
    }
    // The initial state comes first, left to right (layered in definition order).
    const top = d.states.filter((s) => s.depth === 1);
    const unloaded = top.find((s) => s.key === 'unloaded')!;
    for (const s of top) if (s !== unloaded) expect(s.x, s.key).toBeGreaterThan(unloaded.x);
    expect(d.initials.map((m) => m.target).sort()).toEqual(['agent.unloaded', 'agent.unloaded.dormant']);
    checkGeometry(d);
  });

  it('is deterministic', async () => {
    expect(await drawMachine(agentMachine)).toEqual(await drawMachine(agentMachine));
  });

  it('draws parallel, history, final, delayed, self, to-child and to-root transitions', async () => {
    const m = createMachine({
      id: 'm',
      initial: 'a',
      on: { RESET: '.a', PING: { actions: () => {} } },
      states: {
        a: {
          initial: 'x',
          on: { GO: 'b', SELF: 'a', IN: '.y', COUNT: { actions: () => {} } },
          states: { x: { on: { N: 'y' } }, y: { after: { 500: 'x' } } },
        },
        b: {
          type: 'parallel',
          on: { DONE: 'c', BACK: '#m' },
          states: {
            p: { initial: 'p1', states: { p1: { on: { T: 'p2' } }, p2: {} } },
            q: { initial: 'q1', states: { q1: {}, h: { type: 'history' } } },
          },
        },
        c: { type: 'final' },
      },
    });
    const d = await drawMachine(m);
    expect(d.states.map((s) => `${s.id}:${s.type}`)).toEqual([
      'm.a:compound', 'm.a.x:atomic', 'm.a.y:atomic', 'm.b:parallel', 'm.b.p:compound', 'm.b.p.p1:atomic', 'm.b.p.p2:atomic',
      'm.b.q:compound', 'm.b.q.q1:atomic', 'm.b.q.h:history', 'm.c:final',
    ]);
    const edge = (s: string, t: string) => d.edges.find((e) => e.source === s && e.target === t)?.lines;
    expect(edge('m.a.y', 'm.a.x')).toEqual(['after 500 ms']);
    expect(edge('m.a', 'm.a')).toEqual(['SELF']);
    expect(edge('m.a', 'm.a.y')).toEqual(['IN']);
    expect(edge('m.b.p.p1', 'm.b.p.p2')).toEqual(['T']);
    expect(d.states.find((s) => s.id === 'm.a')!.internal).toEqual(['COUNT']);
    expect(d.states.find((s) => s.id === 'm.b')!.internal).toEqual(['BACK ↺']);
    expect(d.fromAnyState).toEqual([{ event: 'RESET', target: 'a' }, { event: 'PING', target: null }]);
    // A parallel state has no initial marker; its regions' compound children do.
    expect(d.initials.map((i) => i.parent).sort()).toEqual(['m', 'm.a', 'm.b.p', 'm.b.q']);
    // Self loops and edges into one's own child start on the box border; the rest of the geometry holds.
    checkGeometry({ ...d, edges: d.edges.filter((e) => e.source !== e.target && !ancestors(d, e.target).has(e.source)) });
    for (const s of d.states) if (s.parent) expect(inside(s, d.states.find((p) => p.id === s.parent)!)).toBe(true);
  });

  it('names delayed and done events as people read them', () => {
    expect(eventLabel('xstate.after.1000.agent.backoff')).toBe('after 1000 ms');
    expect(eventLabel('xstate.done.actor.fetcher')).toBe('done: fetcher');
    expect(eventLabel('xstate.error.actor.fetcher')).toBe('error: fetcher');
    expect(eventLabel('xstate.done.state.m.b')).toBe('done: m.b');
    expect(eventLabel('message.accepted')).toBe('message.accepted');
  });
});

describe('the geometry checks', () => {
  it('catch a broken drawing (so a passing drawing means something)', async () => {
    const good = await drawMachine(agentMachine);
    const copy = (): MachineDrawing => structuredClone(good);
    const idle = (d: MachineDrawing) => d.states.find((s) => s.id === 'agent.idle')!;
    const broken: [string, (d: MachineDrawing) => void][] = [
      ['a sibling on top of another', (d) => Object.assign(idle(d), { x: d.states[0]!.x, y: d.states[0]!.y })],
      ['a child outside its parent', (d) => (d.states.find((s) => s.key === 'dormant')!.x -= 400)],
      ['an edge starting off its source', (d) => (d.edges[0]!.points[0]![1] += 30)],
      ['an edge through a state', (d) => {
        const e = d.edges.find((x) => x.source !== 'agent.idle' && x.target !== 'agent.idle')!;
        const p = e.points[0]!;
        Object.assign(idle(d), { x: p[0] + 5, y: p[1] - 10, w: 20, h: 20 });
      }],
      ['a label on a state', (d) => Object.assign(d.edges[0]!.label!, { x: idle(d).x, y: idle(d).y })],
    ];
    expect(() => checkGeometry(copy())).not.toThrow();
    for (const [what, breakIt] of broken) {
      const d = copy();
      breakIt(d);
      expect(() => checkGeometry(d), what).toThrow();
    }
  });
});
