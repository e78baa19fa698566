/**
 * The bridge to Stately's inspector (src/runtime/stately.ts): the `inspect` option of
 * createRuntime, and runtime.inspect() with its mapped session ids.
 *
 * Events go through the real `@statelyai/inspect` converter (`createInspector` with an
 * adapter that collects what it would send). The converter runs in a timer
 * (`setTimeout(…, 0)` in Node): `converted()` lets those timers run; nothing here sleeps.
 * Time of the runtime is a manual clock.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import { assign, createActor, createMachine, setup, type AnyActorRef, type InspectionEvent } from 'xstate';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { SUPERVISOR_SESSION_ID, SessionIds, STATELY_EVENT_TYPES } from '../../src/runtime/stately.js';
import { record, until } from '../runtime/helpers.js';

/** A lamp: `toggle` flips it; while on, it runs a child machine (a timer) invoked by name. */
const lampMachine = setup({
  types: { context: {} as { flips: number } },
  actors: { timer: createMachine({ id: 'timer', initial: 'ticking', states: { ticking: {} } }) },
}).createMachine({
  id: 'lamp',
  context: { flips: 0 },
  initial: 'off',
  states: {
    off: { on: { toggle: { target: 'on', actions: assign({ flips: ({ context }) => context.flips + 1 }) } } },
    on: {
      invoke: { id: 'timer', src: 'timer' },
      on: { toggle: { target: 'off', actions: assign({ flips: ({ context }) => context.flips + 1 }) } },
    },
  },
});
const lamp = defineAgent({ type: 'lamp', logic: lampMachine });
const tally = defineAgent({
  type: 'tally',
  logic: fromTurn<{ count: number }>(async ({ state }) => ({ count: state.count + 1 }), { initialState: { count: 0 } }),
});

/** What Stately's converter sends, the three kinds in one (the fields a test reads). */
type Collected = Pick<StatelyInspectionEvent, 'type' | 'sessionId' | 'rootId'> & {
  name?: string;
  parentId?: string;
  sourceId?: string;
  definition?: string;
  event?: { type: string };
  snapshot?: unknown;
};

/** A Stately inspector whose adapter collects what it would send, and the raw event types that reached it. */
function statelyInspector() {
  const sent: Collected[] = [];
  const inspector = createInspector({ send: (e: StatelyInspectionEvent) => void sent.push(e) });
  const reached: string[] = [];
  const observer = {
    next(e: InspectionEvent) {
      reached.push(e.type);
      inspector.inspect.next?.(e);
    },
  };
  return { sent, reached, observer };
}

/** Lets the converter's timers (setTimeout 0, in order) run: every event handed over so far is converted. */
const converted = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

const runtimes: Runtime[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const rt of runtimes.splice(0)) await rt.stop();
});

async function runtimeWith(options: Partial<RuntimeOptions> = {}): Promise<Runtime> {
  const rt = await createRuntime({ agents: [lamp, tally], residentCap: 4, runningCap: 1, store: memoryStore(), clock: manualClock(1_000), ...options });
  runtimes.push(rt);
  return rt;
}

const of = (sent: Collected[], type: string, sessionId?: string) =>
  sent.filter((e) => e.type === type && (sessionId === undefined || e.sessionId === sessionId));

describe('what XState gives on its own (why the bridge exists)', () => {
  it('numbers session ids per process, so a reloaded actor gets a new one, and announces a root actor before anyone can observe it', () => {
    const seen: InspectionEvent[] = [];
    const first = createActor(lampMachine);
    first.system.inspect((e) => seen.push(e));
    first.start();
    const again = createActor(lampMachine, { snapshot: first.getPersistedSnapshot() });
    // One counter for the process: not x:0 for every system, and a new id for the same agent.
    expect(first.sessionId).toMatch(/^x:\d+$/);
    expect(again.sessionId).not.toBe(first.sessionId);
    // Subscribing to the system of a created actor is too late for its `@xstate.actor`.
    expect(seen.map((e) => e.type)).not.toContain('@xstate.actor');
    expect(seen.map((e) => e.type)).toEqual(['@xstate.event', '@xstate.snapshot']); // its start: xstate.init
    first.stop();
  });
});

describe('the `inspect` option: the bridge to Stately', () => {
  it('announces each agent under its own id, with its definition, and forwards its messages and state values', async () => {
    const warn = vi.spyOn(console, 'warn');
    const { sent, reached, observer } = statelyInspector();
    const rt = await runtimeWith({ inspect: observer });
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.spawn('lamp', { id: 'beta' });
    await rt.ask('alpha', { type: 'toggle' });
    await rt.ask('beta', { type: 'toggle' });
    await rt.ask('alpha', { type: 'toggle' });
    await converted();

    // Only what Stately's converter understands reached it; nothing was warned about.
    expect(new Set(reached)).toEqual(new Set(STATELY_EVENT_TYPES));
    expect(warn).not.toHaveBeenCalled();

    // One `@xstate.actor` per agent, session id = agent id, a root with the machine's definition.
    for (const id of ['alpha', 'beta']) {
      const [actor, ...more] = of(sent, '@xstate.actor', id);
      expect(more).toEqual([]);
      expect(actor).toMatchObject({ sessionId: id, rootId: id, parentId: undefined, name: 'lamp' });
      expect(JSON.parse(actor!.definition!)).toMatchObject({ id: 'lamp', initial: 'off', states: { off: {}, on: {} } });
    }
    // Nothing of the runtime's supervisor, no XState numbering at the root.
    expect(sent.every((e) => e.rootId === 'alpha' || e.rootId === 'beta')).toBe(true);
    expect(sent.filter((e) => /^x:\d+$/.test(e.sessionId))).toEqual([]);

    // Messages go to the right agent.
    expect(of(sent, '@xstate.event', 'alpha').map((e) => e.event!.type)).toEqual(['xstate.init', 'toggle', 'toggle']);
    expect(of(sent, '@xstate.event', 'beta').map((e) => e.event!.type)).toEqual(['xstate.init', 'toggle']);
    // State values, as the machine went.
    const values = (id: string) => of(sent, '@xstate.snapshot', id).map((e) => (e.snapshot as { value: unknown }).value);
    expect(values('alpha')).toEqual(['off', 'on', 'off']);
    expect(values('beta')).toEqual(['off', 'on']);

    // The invoked child is inside its agent: `<agentId>/<sessionId>`, parent and root the agent.
    const children = sent.filter((e) => e.type === '@xstate.actor' && e.sessionId.includes('/'));
    expect(children.map((e) => e.sessionId.split('/')[0]).sort()).toEqual(['alpha', 'beta']);
    for (const child of children) {
      const agent = child.sessionId.split('/')[0]!;
      expect(child).toMatchObject({ name: 'timer', parentId: agent, rootId: agent });
      expect(child.sessionId).toMatch(new RegExp(`^${agent}/x:\\d+$`));
      // Its start is an event from its parent.
      expect(of(sent, '@xstate.event', child.sessionId)[0]).toMatchObject({ sourceId: agent, event: { type: 'xstate.init' } });
    }
  });

  it('keeps an agent\'s session id across eviction and reload', async () => {
    const { sent, observer } = statelyInspector();
    const rt = await runtimeWith({ inspect: observer, residentCap: 1 });
    const evicted = record(rt, 'agent.evicted');
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.spawn('lamp', { id: 'beta' });
    await rt.ask('alpha', { type: 'toggle' });
    await rt.ask('beta', { type: 'toggle' }); // takes alpha's slot
    expect(evicted.map((e) => e.id)).toContain('alpha');
    await rt.ask('alpha', { type: 'toggle' });
    await converted();

    const announced = of(sent, '@xstate.actor', 'alpha');
    expect(announced).toHaveLength(2); // loaded, evicted, loaded again: the same id
    // The state went on where it was: the reloaded agent starts `on` and goes `off`.
    const snapshots = of(sent, '@xstate.snapshot', 'alpha').map((e) => e.snapshot as { value: unknown; status: string });
    expect(snapshots.map((s) => `${String(s.value)}:${s.status}`)).toEqual(['off:active', 'on:active', 'on:stopped', 'on:active', 'off:active']);
  });

  it('works for fromTurn agents (a machine inside)', async () => {
    const warn = vi.spyOn(console, 'warn');
    const { sent, reached, observer } = statelyInspector();
    const rt = await runtimeWith({ inspect: observer });
    await rt.spawn('tally', { id: 'tom' });
    expect(await rt.ask('tom', { type: 'add' })).toMatchObject({ outcome: 'done', state: { count: 1 } });
    await rt.ask('tom', { type: 'add' });
    await converted();

    expect(new Set(reached)).toEqual(new Set(STATELY_EVENT_TYPES));
    expect(warn).not.toHaveBeenCalled();
    expect(of(sent, '@xstate.actor', 'tom')).toMatchObject([{ sessionId: 'tom', rootId: 'tom', name: 'turn' }]);
    // The runtime calls the turn function itself and hands the machine each turn's result.
    expect(of(sent, '@xstate.event', 'tom').map((e) => e.event!.type)).toEqual(['xstate.init', 'residency.state', 'residency.state']);
    const last = of(sent, '@xstate.snapshot', 'tom').at(-1)!.snapshot as { value: unknown; context: unknown };
    expect(last).toMatchObject({ value: 'idle', context: { state: { count: 2 } } });
    // No actor per turn inside the agent.
    expect(sent.filter((e) => e.type === '@xstate.actor' && e.sessionId.startsWith('tom/'))).toEqual([]);
  });

  it('survives a throwing observer: delivery goes on and the runtime emits `error`', async () => {
    let calls = 0;
    const rt = await runtimeWith({
      inspect: () => {
        calls++;
        throw new Error('observer broke');
      },
    });
    const errors = record(rt, 'error');
    await rt.spawn('lamp', { id: 'alpha' });
    expect(await rt.ask('alpha', { type: 'toggle' })).toMatchObject({ outcome: 'done', state: { value: 'on', context: { flips: 1 } } });
    expect(await rt.ask('alpha', { type: 'toggle' })).toMatchObject({ outcome: 'done', state: { value: 'off', context: { flips: 2 } } });
    await until(() => errors.length > 0, 'the error event');
    expect(calls).toBeGreaterThan(0);
    expect(errors[0]).toMatchObject({ id: 'alpha', where: 'inspect observer', error: { message: 'observer broke' } });
  });

  it('refuses an observer that is not one', async () => {
    for (const bad of [42, 'stately', null, {}, { next: 1 }]) {
      await expect(runtimeWith({ inspect: bad as never })).rejects.toThrow(
        /^Expected `inspect` to be an inspection observer \(a function, or \{ next \} such as createBrowserInspector\(\)\.inspect\), got /,
      );
      await expect(runtimeWith({ inspect: bad as never })).rejects.toBeInstanceOf(TypeError);
    }
    // Both shapes are taken.
    await runtimeWith({ inspect: () => {} });
    await runtimeWith({ inspect: { next: () => {} } });
  });
});

describe('runtime.inspect()', () => {
  it('announces agents already resident to an observer attached late, under their ids', async () => {
    const rt = await runtimeWith();
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.ask('alpha', { type: 'toggle' }); // resident, `on`, with its timer child
    const seen: InspectionEvent[] = [];
    const sub = rt.inspect({ next: (e) => void (e.type !== '@residency.event' && seen.push(e)) });
    const announced = seen.filter((e) => e.type === '@xstate.actor');
    expect(announced.map((e) => e.actorRef.sessionId)).toEqual(['alpha', expect.stringMatching(/^alpha\/x:\d+$/)]);
    expect(announced.every((e) => e.rootId === 'alpha')).toBe(true);
    // The facade is the actor: its snapshot, its parent (mapped), the same ref in every event.
    const [root, child] = announced.map((e) => e.actorRef as AnyActorRef & { _parent?: AnyActorRef });
    expect(root!.getSnapshot()).toMatchObject({ value: 'on', context: { flips: 1 } });
    expect(child!._parent).toBe(root);
    await rt.ask('alpha', { type: 'toggle' });
    const later = seen.filter((e) => e.type === '@xstate.snapshot' && e.rootId === 'alpha');
    expect(later.length).toBeGreaterThan(0);
    expect(later.find((e) => e.actorRef.sessionId === 'alpha')!.actorRef).toBe(root);
    sub.unsubscribe();
  });

  it('reaches Stately through an observer attached late (after filtering), and keeps microsteps and runtime events for itself', async () => {
    const rt = await runtimeWith();
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.ask('alpha', { type: 'toggle' });
    const { sent, observer } = statelyInspector();
    const types = new Set<string>();
    const sessions = new Set<string>();
    const sub = rt.inspect((e) => {
      types.add(e.type);
      if (e.type !== '@residency.event') sessions.add(e.actorRef.sessionId);
      if (e.type === '@xstate.actor' || e.type === '@xstate.event' || e.type === '@xstate.snapshot') observer.next(e);
    });
    await rt.ask('alpha', { type: 'toggle' });
    await converted();
    expect([...types]).toEqual(expect.arrayContaining(['@xstate.actor', '@xstate.event', '@xstate.snapshot', '@xstate.microstep', '@residency.event']));
    // The supervisor is there too, under its own name; every id is meaningful.
    expect(sessions).toContain(SUPERVISOR_SESSION_ID);
    expect([...sessions].filter((s) => /^x:\d+$/.test(s))).toEqual([]);
    expect(of(sent, '@xstate.actor', 'alpha')).toMatchObject([{ name: 'lamp', rootId: 'alpha' }]);
    expect(of(sent, '@xstate.snapshot', 'alpha').map((e) => (e.snapshot as { value: unknown }).value)).toEqual(['off']);
    sub.unsubscribe();
  });

  it('isolates observers: a throwing one is reported, the others still get everything', async () => {
    const rt = await runtimeWith();
    const errors = record(rt, 'error');
    await rt.spawn('lamp', { id: 'alpha' });
    const good: string[] = [];
    // It throws on everything but the `error` events that report it (those would go to the console).
    const bad = rt.inspect((e) => {
      if (e.type === '@residency.event' && e.name === 'error') return;
      throw new Error('observer broke');
    });
    const ok = rt.inspect((e) => good.push(e.type));
    expect(await rt.ask('alpha', { type: 'toggle' })).toMatchObject({ outcome: 'done', state: { value: 'on' } });
    expect(good).toEqual(expect.arrayContaining(['@xstate.snapshot', '@residency.event']));
    await until(() => errors.length > 0, 'the error event');
    expect(errors.map((e) => e.where)).toContain('inspect observer');
    // Unsubscribing the first leaves the second its runtime events.
    bad.unsubscribe();
    const before = good.filter((t) => t === '@residency.event').length;
    await rt.ask('alpha', { type: 'toggle' });
    expect(good.filter((t) => t === '@residency.event').length).toBeGreaterThan(before);
    ok.unsubscribe();
  });
});

describe('the cost', () => {
  /** Wraps a system's inspect() to see which subscriptions are still attached. */
  function spyOnInspect(system: { inspect: (o: unknown) => { unsubscribe(): void } }) {
    const original = system.inspect.bind(system);
    const subs: { active: boolean }[] = [];
    system.inspect = (o) => {
      const sub = original(o);
      const rec = { active: true, unsubscribe: () => ((rec.active = false), sub.unsubscribe()) };
      subs.push(rec);
      return rec;
    };
    return subs;
  }

  it('leaves no inspection callback on an agent once the last observer is gone', async () => {
    const rt = await runtimeWith();
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.ask('alpha', { type: 'toggle' });
    let system: Parameters<typeof spyOnInspect>[0] | undefined;
    rt.inspect((e) => {
      if (e.type === '@xstate.actor' && e.rootId === 'alpha') system ??= (e.actorRef as unknown as { system: typeof system }).system;
    }).unsubscribe();
    const subs = spyOnInspect(system!);
    const seen: string[] = [];
    const sub = rt.inspect((e) => void seen.push(e.type));
    expect(subs.filter((s) => s.active)).toHaveLength(1);
    sub.unsubscribe();
    expect(subs.filter((s) => s.active)).toHaveLength(0);
    const count = seen.length;
    await rt.ask('alpha', { type: 'toggle' });
    expect(seen).toHaveLength(count);
  });

  it('lets go of an evicted actor\'s system (nothing kept per actor ever loaded)', async () => {
    const seen: InspectionEvent[] = [];
    const rt = await runtimeWith({ inspect: (e) => void seen.push(e), residentCap: 1 });
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.spawn('lamp', { id: 'beta' });
    await rt.ask('alpha', { type: 'toggle' });
    const root = seen.find((e) => e.type === '@xstate.actor' && e.actorRef.sessionId === 'alpha')!.actorRef;
    const system = (root as unknown as { system: { _sendInspectionEvent(e: unknown): void } }).system;
    const probe = () => system._sendInspectionEvent({ type: '@xstate.event', actorRef: root, sourceRef: undefined, event: { type: 'probe' } });
    const probes = () => seen.filter((e) => e.type === '@xstate.event' && e.event.type === 'probe').length;
    probe();
    expect(probes()).toBe(1); // subscribed while resident
    await rt.ask('beta', { type: 'toggle' }); // evicts alpha
    probe();
    expect(probes()).toBe(1);
  });

  it('never gives the bridge the supervisor\'s events, even while runtime.inspect() observes it', async () => {
    const bridged: InspectionEvent[] = [];
    const rt = await runtimeWith({ inspect: { next: (e) => void bridged.push(e) } });
    const all = new Set<string>();
    rt.inspect((e) => void (e.type !== '@residency.event' && all.add(e.actorRef.sessionId)));
    await rt.spawn('lamp', { id: 'alpha' });
    await rt.ask('alpha', { type: 'toggle' });
    expect(all).toContain(SUPERVISOR_SESSION_ID);
    expect(new Set(bridged.map((e) => e.rootId))).toEqual(new Set(['alpha']));
    expect(new Set(bridged.map((e) => e.type))).toEqual(new Set(STATELY_EVENT_TYPES));
  });
});

describe('SessionIds', () => {
  it('maps a root to its agent id, a child to `<agentId>/<sessionId>`, once per actor', () => {
    const sessions = new SessionIds();
    const actor = createActor(lampMachine).start();
    actor.send({ type: 'toggle' });
    const events = sessions.actorEvents(actor, 'alpha');
    expect(events.map((e) => e.actorRef.sessionId)).toEqual(['alpha', `alpha/${(actor.getSnapshot().children.timer as AnyActorRef).sessionId}`]);
    expect(sessions.ref(actor, 'alpha')).toBe(events[0]!.actorRef);
    expect(sessions.ref(events[0]!.actorRef as AnyActorRef, 'alpha')).toBe(events[0]!.actorRef); // mapping twice changes nothing
    expect(sessions.ref(actor, 'alpha').id).toBe('alpha');
    actor.stop();
  });
});
