/**
 * What a resident agent keeps besides its logic actor, kept small (docs/benchmarks.md,
 * "Memory per agent"): the actor's error observer is shared, its options are dropped once
 * it runs, a machine that never emits gets no emit listener, and one lifecycle listener
 * serves every entry. Each cut keeps its behaviour: checked here.
 */
import { describe, expect, it } from 'vitest';
import { assign, createActor, createMachine, emit, enqueueActions, raise, sendTo, setup, type AnyStateMachine } from 'xstate';
import { agentMachine, type AgentContext, type AgentEvent } from '../../machines/agent.js';
import { systemClock } from '../../src/clock.js';
import { defineAgent, type AgentDefinition } from '../../src/defineAgent.js';
import { RuntimeEmitter } from '../../src/events.js';
import { Actors, mayEmit } from '../../src/runtime/Actors.js';
import { Inspection } from '../../src/runtime/Inspection.js';
import { Lifecycle } from '../../src/runtime/Lifecycle.js';
import type { Entry } from '../../src/runtime/types.js';

const counter = createMachine({
  types: {} as { context: { n: number }; events: { type: 'inc' } | { type: 'boom' } },
  context: { n: 0 },
  on: {
    inc: { actions: assign({ n: ({ context }) => context.n + 1 }) },
    boom: {
      actions: () => {
        throw new Error('boom');
      },
    },
  },
});

describe('mayEmit', () => {
  it('is false for a machine with no emit and no enqueueActions', () => {
    expect(mayEmit(counter)).toBe(false);
    const others = setup({ actions: { custom: () => {}, bump: assign({}) } }).createMachine({
      initial: 'a',
      entry: ['custom', { type: 'bump' }],
      states: {
        a: { on: { go: { target: 'b', actions: [raise({ type: 'x' }), sendTo(({ self }) => self, { type: 'y' })] } } },
        b: { after: { 10: 'a' }, always: { guard: () => false, target: 'a', actions: 'custom' }, exit: () => {} },
      },
    });
    expect(mayEmit(others)).toBe(false);
  });

  it('is true for an emit or an enqueueActions anywhere, inline or named', () => {
    const cases: AnyStateMachine[] = [
      createMachine({ on: { go: { actions: emit({ type: 'x' }) } } }),
      setup({ actions: { tell: emit({ type: 'x' }) } }).createMachine({ on: { go: { actions: 'tell' } } }),
      setup({ actions: { tell: emit({ type: 'x' }) } }).createMachine({ on: { go: { actions: [{ type: 'tell' }] } } }),
      createMachine({ initial: 'a', states: { a: { entry: emit({ type: 'x' }) } } }),
      createMachine({ initial: 'a', states: { a: { exit: [assign({}), emit({ type: 'x' })] } } }),
      createMachine({ initial: 'a', states: { a: { always: { guard: () => false, actions: emit({ type: 'x' }) } } } }),
      createMachine({ initial: 'a', states: { a: { after: { 5: { target: 'b', actions: emit({ type: 'x' }) } } }, b: {} } }),
      createMachine({ initial: 'a', states: { a: { initial: 'deep', states: { deep: { on: { go: { actions: enqueueActions(() => {}) } } } } } } }),
      setup({ actors: { p: createMachine({}) } }).createMachine({ invoke: { src: 'p', onDone: { actions: emit({ type: 'x' }) } } }),
      setup({ actions: { q: enqueueActions(({ enqueue }) => enqueue.emit({ type: 'x' })) } }).createMachine({ entry: 'q' }),
    ];
    expect(cases.map(mayEmit)).toEqual(cases.map(() => true));
  });
});

function actorsFor(def: AgentDefinition): { actors: Actors; entry: (id: string) => Entry } {
  const emitter = new RuntimeEmitter();
  const inspection = new Inspection(createActor(createMachine({})), () => [], () => {});
  const actors = new Actors({ definitions: new Map([[def.type, def]]), clock: systemClock, emitter, newId: () => 'id' }, inspection);
  const entry = (id: string) =>
    ({ id, def, record: { id, type: def.type, parent: null, pinned: false, input: { from: id }, createdAt: 0 }, turn: null }) as unknown as Entry;
  return { actors, entry };
}

describe('agent actors', () => {
  it('share their options once running, keep no input or stored snapshot, and need no emit listener when they cannot emit', () => {
    const { actors, entry } = actorsFor(defineAgent({ type: 'counter', logic: counter }));
    const fresh = actors.create(entry('a'), null);
    fresh.send({ type: 'inc' });
    const restored = actors.create(entry('b'), fresh.getPersistedSnapshot());
    expect(restored.getSnapshot().context).toEqual({ n: 1 });
    const internals = (a: unknown) => a as { options: Record<string, unknown>; eventListeners: Map<string, unknown>; observers: Set<unknown> };
    expect(internals(restored).options).toBe(internals(fresh).options);
    expect(internals(fresh).options.input).toBeUndefined();
    expect(internals(restored).options.snapshot).toBeUndefined();
    expect(internals(fresh).eventListeners.size).toBe(0);
    expect(internals(fresh).observers.size).toBe(1);
  });

  it('of a machine that emits have their emit listener', () => {
    const emitting = createMachine({ on: { go: { actions: emit({ type: 'x' }) } } });
    const { actors, entry } = actorsFor(defineAgent({ type: 'e', logic: emitting }));
    const actor = actors.create(entry('a'), null);
    expect((actor as unknown as { eventListeners: Map<string, Set<unknown>> }).eventListeners.get('*')?.size).toBe(1);
  });

  it('that error are silenced by the shared observer (XState rethrows from a timer without one)', async () => {
    const { actors, entry } = actorsFor(defineAgent({ type: 'counter', logic: counter }));
    const a = actors.create(entry('a'), null);
    const b = actors.create(entry('b'), null);
    a.send({ type: 'boom' });
    expect(a.getSnapshot().status).toBe('error');
    expect(b.getSnapshot().status).toBe('active');
    await new Promise((r) => setTimeout(r, 10)); // an uncaught error from XState's timer would fail this file
    b.send({ type: 'boom' });
    expect(b.getSnapshot().status).toBe('error');
    await new Promise((r) => setTimeout(r, 10));
  });
});

describe('Lifecycle listener', () => {
  it('is called with its owner after every event, and events its effects send are processed after, in order', () => {
    const seen: string[] = [];
    let life!: Lifecycle<AgentContext, AgentEvent>;
    const machine = agentMachine.provide({
      actions: {
        // Re-entrant: the supervisor answers a slot request at once.
        requestSlot: () => {
          life.send({ type: 'slot.granted' });
          seen.push('requested');
        },
        startLoad: () => {
          life.send({ type: 'load.done' });
          seen.push('loading');
        },
      },
    });
    const owner = { name: 'entry' };
    life = new Lifecycle<AgentContext, AgentEvent>(machine, { id: 'a' });
    life.subscribe((o: { name: string }) => seen.push(`listener(${o.name}): ${JSON.stringify(life.getSnapshot().value)}`), owner);
    life.start();
    life.send({ type: 'message.accepted' });
    expect(seen).toEqual(['listener(entry): {"unloaded":"dormant"}', 'requested', 'loading', 'listener(entry): "idle"']);
    expect(life.getSnapshot().context).toMatchObject({ mailbox: 1, permitPending: true });
    life.stop();
    life.send({ type: 'message.accepted' });
    expect(life.getSnapshot().context.mailbox).toBe(1);
  });
});
