/**
 * The test runtime: `settle()` and `advance()` always come back (a turn that never
 * finishes makes them reject, naming what still runs, instead of waiting forever),
 * `advance()` refuses a time that is not a finite number ≥ 0, and the same scenario
 * gives the same history every time.
 */
import { describe, expect, it } from 'vitest';
import { assign, fromPromise, setup } from 'xstate';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { createTestRuntime } from '../../src/testing/createTestRuntime.js';

/** A turn that awaits a promise nothing ever resolves when the message says so. */
const stuck = defineAgent({
  type: 'stuck',
  logic: fromTurn<{ n: number }>(
    async ({ state, message }) => {
      if (message.type === 'hang') await new Promise<never>(() => {});
      return { n: state.n + 1 };
    },
    { initialState: { n: 0 } },
  ),
});

/** A machine agent whose invoked actor never settles. */
const waiting = defineAgent({
  type: 'waiting',
  logic: setup({
    actors: { forever: fromPromise(() => new Promise<never>(() => {})) },
  }).createMachine({
    id: 'waiting',
    initial: 'idle',
    states: {
      idle: { on: { fetch: 'fetching' } },
      fetching: { invoke: { src: 'forever', onDone: 'idle' } },
    },
  }),
});

const greeter = defineAgent({
  type: 'greeter',
  logic: fromTurn<{ greeted: number }>(
    async ({ state, message, emit, send }) => {
      emit({ said: `hello ${String(message.name)}` });
      if (message.name === 'bob') send('other', { type: 'greet', name: 'alice' });
      return { greeted: state.greeted + 1 };
    },
    { initialState: { greeted: 0 } },
  ),
});

describe('settle() and advance() come back when a turn never finishes', () => {
  it('settle() rejects after maxRounds, naming the fromTurn agent still running and its state', async () => {
    const t = await createTestRuntime({ agents: [stuck] });
    await t.spawn('stuck', { id: 'alice' });
    await t.spawn('stuck', { id: 'bob' });
    await t.send('bob', { type: 'ok' });
    await t.settle();
    await t.send('alice', { type: 'hang' });
    await t.send('alice', { type: 'ok' }); // waits behind the stuck turn
    const err = await t.settle(50).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/^settle\(\) gave up after 50 rounds/);
    expect(err!.message).toContain('"alice" (running, in a turn)');
    expect(err!.message).not.toContain('"bob"');
    expect(err!.message).toMatch(/mail pending for "alice"/);
  }, 10_000);

  it('settle() rejects for a machine agent whose invoked actor never settles, with the machine state', async () => {
    const t = await createTestRuntime({ agents: [waiting] });
    await t.spawn('waiting', { id: 'w' });
    await t.send('w', { type: 'fetch' });
    await expect(t.settle(20)).rejects.toThrow(/gave up after 20 rounds.*"w" \(running, in a turn, its logic in state "fetching"\)/);
  }, 10_000);

  it('advance() rejects the same way', async () => {
    const t = await createTestRuntime({ agents: [stuck] });
    await t.spawn('stuck', { id: 'alice' });
    await t.send('alice', { type: 'hang' });
    await expect(t.advance(1_000)).rejects.toThrow(/settle\(\) gave up after 1000 rounds.*"alice" \(running, in a turn\)/);
    expect(t.clock.now()).toBe(1_000);
  }, 10_000);

  it('settle() still waits for turns that do finish, however many there are', async () => {
    const t = await createTestRuntime({ agents: [greeter] });
    await t.spawn('greeter', { id: 'g' });
    await t.spawn('greeter', { id: 'other' });
    for (let i = 0; i < 50; i++) await t.send('g', { type: 'greet', name: i % 2 ? 'bob' : 'ada' });
    await t.settle();
    expect((await t.get('g'))!.state).toBe('idle');
    const turns = (await t.history('other')).filter((e) => e.kind === 'turn.finished');
    expect(turns).toHaveLength(25);
  });
});

describe('settle(maxRounds): the argument', () => {
  it('refuses a maxRounds that is not an integer ≥ 1', async () => {
    const t = await createTestRuntime({ agents: [greeter] });
    await expect(t.settle(0)).rejects.toThrow(new TypeError('Expected `maxRounds` to be an integer ≥ 1, got `0` (number)'));
    await expect(t.settle(1.5)).rejects.toThrow(TypeError);
  });
});

describe('advance(ms): the argument', () => {
  it.each([
    [-500, '`-500` (number)'],
    [Number.NaN, '`NaN` (number)'],
    [Number.POSITIVE_INFINITY, '`Infinity` (number)'],
    ['100', '`"100"` (string)'],
  ])('refuses %s with a TypeError and leaves time alone', async (ms, described) => {
    const t = await createTestRuntime({ agents: [greeter], now: 1_000 });
    await expect(t.advance(ms as number)).rejects.toThrow(new TypeError(`Expected \`ms\` to be a finite number ≥ 0, got ${described}`));
    expect(t.clock.now()).toBe(1_000);
  });
});

const counterMachine = defineAgent({
  type: 'counter',
  logic: setup({ types: { context: {} as { n: number } } }).createMachine({
    id: 'counter',
    context: { n: 0 },
    initial: 'counting',
    states: {
      counting: {
        on: { inc: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
        after: { 500: 'resting' },
      },
      resting: { on: { inc: 'counting' } },
    },
  }),
});

async function scenario() {
  const t = await createTestRuntime({ agents: [greeter, counterMachine], residentCap: 2, idleTimeout: 1_000 });
  await t.spawn('greeter', { id: 'g' });
  await t.spawn('greeter', { id: 'other' });
  await t.spawn('counter', { id: 'c' });
  await t.send('g', { type: 'greet', name: 'ada' });
  await t.send('g', { type: 'greet', name: 'bob' }); // sends a message to "other"
  await t.send('c', { type: 'inc' });
  await t.settle();
  await t.advance(600);
  await t.ask('c', { type: 'inc' });
  await t.advance(2_000); // idle timeouts: everyone is passivated
  await t.send('other', { type: 'greet', name: 'eve' }); // loads again
  await t.settle();
  return { g: await t.history('g'), other: await t.history('other'), c: await t.history('c') };
}

describe('determinism', () => {
  // Fails until runtime message ids are deterministic (derived from the store's owner
  // epoch and a counter, not Math.random()): that change belongs to src/createRuntime.ts.
  // Not skipped on purpose: it must pass once that change lands.
  it('the same scenario run twice gives the same history, message ids included', async () => {
    const first = await scenario();
    const second = await scenario();
    expect(first.g.length).toBeGreaterThan(5);
    expect(second).toEqual(first);
  });
});
