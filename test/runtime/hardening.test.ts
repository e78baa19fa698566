/**
 * Hardening: every turn ends, a failed turn changes nothing, nothing crashes the process,
 * reserved message types are refused, interrupts move the lifecycle only when a turn really
 * aborts, and the smaller defects found by attacking the runtime as a user would. Each case
 * reproduces a defect that was seen, and asserts what the contract asks for instead.
 *
 * No test sleeps: time is a manual clock and waiting is bounded by event-loop turns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, createMachine, emit, fromCallback, fromPromise, setup } from 'xstate';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../src/store/Store.js';
import {
  AgentNotFoundError,
  FencedError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
  TurnFailedError,
  UnknownAgentTypeError,
} from '../../src/errors.js';
import { counterAgent, deferred, flush, record, until, wrapStore, type Deferred, type Handled } from './helpers.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

/** A store holding an agent `id` (type counter) whose record cannot be read (as a damaged file would). */
async function storeWithDamagedRecord(id: string): Promise<Store> {
  const inner = memoryStore();
  await inner.createAgent({ id, type: 'counter', parent: null, pinned: false, input: null, createdAt: 0 });
  return wrapStore(inner, {
    getAgent: async (x) => {
      if (x === id) throw new StoreCorruptionError(id, 'its record is not valid JSON');
      return inner.getAgent(x);
    },
    getAgents: async (ids) => (await inner.getAgents(ids)).filter((r) => r.id !== id),
  });
}

async function counterRuntime(opts: { store?: Store; runningCap?: number; residentCap?: number } = {}) {
  const handled: Handled = new Map();
  const holds = new Map<string, Deferred>();
  const store = opts.store ?? memoryStore();
  const clock = manualClock(1_000);
  const runtime = await createRuntime({
    agents: [counterAgent(handled, holds)],
    residentCap: opts.residentCap ?? 4,
    runningCap: opts.runningCap ?? 1,
    store,
    clock,
  });
  return { runtime, handled, holds, store, clock };
}

/** An agent whose turn throws whatever `throwing(message)` returns (or returns a state). */
function thrower() {
  return defineAgent({
    type: 'thrower',
    logic: fromTurn<{ n: number }>(
      async ({ state, message }) => {
        if (message.type === 'null-proto') throw Object.create(null);
        if (message.type === 'bigint-message') {
          const e = new Error('x');
          Object.defineProperty(e, 'message', { value: 10n });
          throw e;
        }
        if (message.type === 'symbol') throw Symbol('odd');
        if (message.type === 'throwing-getter') {
          throw Object.defineProperty(new Error('y'), 'message', {
            get() {
              throw new Error('no');
            },
          });
        }
        return { n: state.n + 1 };
      },
      { initialState: { n: 0 } },
    ),
  });
}

/** A fresh SQLite store in a temporary folder (removed after the tests). */
const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempSqlite(): Store {
  const dir = mkdtempSync(join(tmpdir(), 'residency-hardening-'));
  tempDirs.push(dir);
  return sqliteStore(join(dir, 'r.db'));
}

describe('every turn ends', () => {
  for (const kind of ['null-proto', 'bigint-message', 'symbol', 'throwing-getter']) for (const [storeName, makeStore] of [['memory', memoryStore], ['sqlite', tempSqlite]] as const) {
    it(`a turn that throws an odd value (${kind}) fails readably, releases its permit, and others go on (${storeName})`, async () => {
      const handled: Handled = new Map();
      const runtime = await createRuntime({
        agents: [thrower(), counterAgent(handled)],
        residentCap: 4,
        runningCap: 1,
        store: makeStore(),
        clock: manualClock(0),
      });
      await runtime.spawn('thrower', { id: 't' });
      await runtime.spawn('counter', { id: 'c' });
      const err = await runtime.ask('t', { type: kind }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TurnFailedError);
      expect((err as Error).message).toMatch(/^Agent "t" failed to handle message #1: .+/);
      expect(runtime.stats().running).toBe(0);
      expect((await runtime.ask('c', { type: 'inc', n: 1 })).state).toEqual({ count: 1, seen: [1] });
      expect((await runtime.ask('t', { type: 'ok' })).state).toEqual({ n: 1 });
      await runtime.stop();
    });
  }

  it('a machine whose context holds a cycle fails its turn instead of recursing forever', async () => {
    const m = setup({ types: { context: {} as { n: number; me?: unknown } } }).createMachine({
      context: { n: 0 },
      on: {
        inc: { actions: assign({ n: ({ context }) => context.n + 1 }) },
        loop: {
          actions: assign(({ context }) => {
            const c: Record<string, unknown> = { n: context.n };
            c.me = c;
            return c as { n: number };
          }),
        },
      },
    });
    const runtime = await createRuntime({
      agents: [defineAgent({ type: 'm', logic: m })],
      residentCap: 2,
      runningCap: 1,
      store: memoryStore(),
      clock: manualClock(0),
    });
    await runtime.spawn('m', { id: 'm1' });
    await runtime.ask('m1', { type: 'inc' });
    const err = await runtime.ask('m1', { type: 'loop' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TurnFailedError);
    expect((err as Error).message).toMatch(/circular/);
    expect(runtime.stats().running).toBe(0);
    // Rolled back: the cycle is gone, the count is what the last good turn left.
    expect((await runtime.ask('m1', { type: 'inc' })).state).toMatchObject({ context: { n: 2 } });
    await runtime.stop();
  });

  it('a busy store is retried with backoff, then the turn commits', async () => {
    let busy = 2;
    const inner = memoryStore();
    const store = wrapStore(inner, {
      commitTurn: async (c) => {
        if (c.outcome === 'done' && busy-- > 0) throw new StoreError('database is locked', { retryable: true });
        return inner.commitTurn(c);
      },
      batch: async (ops) => {
        if (ops.some((o) => o.op === 'commitTurn' && o.commit.outcome === 'done') && busy-- > 0) {
          throw new StoreError('database is locked', { retryable: true });
        }
        return inner.batch(ops);
      },
    });
    const { runtime, clock } = await counterRuntime({ store });
    await runtime.spawn('counter', { id: 'a' });
    const answer = runtime.ask('a', { type: 'inc', n: 1 });
    for (let i = 0; i < 50 && busy >= 0; i++) {
      await flush(5);
      clock.advance(1_000);
    }
    expect((await answer).state).toEqual({ count: 1, seen: [1] });
    expect(await inner.mailboxSize('a')).toBe(0);
    await runtime.stop();
  });

  it('a store that stays busy fails the turn, releases the permit, and the next agent runs', async () => {
    const inner = memoryStore();
    const store = wrapStore(inner, {
      commitTurn: async (c) => {
        if (c.agentId === 'a' && c.outcome === 'done') throw new StoreError('database is locked', { retryable: true });
        return inner.commitTurn(c);
      },
      batch: async (ops) => {
        if (ops.some((o) => o.op === 'commitTurn' && o.commit.agentId === 'a' && o.commit.outcome === 'done')) {
          throw new StoreError('database is locked', { retryable: true });
        }
        return inner.batch(ops);
      },
    });
    const { runtime, clock } = await counterRuntime({ store });
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    const failed = runtime.ask('a', { type: 'inc', n: 1 }).catch((e: unknown) => e);
    const other = runtime.ask('b', { type: 'inc', n: 1 });
    for (let i = 0; i < 100; i++) {
      await flush(3);
      clock.advance(1_000);
    }
    const err = await failed;
    expect(err).toBeInstanceOf(TurnFailedError);
    expect((err as Error).message).toMatch(/database is locked/);
    expect((await other).state).toEqual({ count: 1, seen: [1] });
    expect(runtime.stats().running).toBe(0);
    await runtime.stop();
  });
});

describe('a failed turn changes nothing', () => {
  for (const [what, message] of [
    ['sent to a missing agent', { type: 'forward', to: 'nobody' }],
    ['spawned an id that is taken', { type: 'spawn-taken' }],
    ['returned a state with a __proto__ key', { type: 'proto' }],
  ] as const) {
    for (const evict of [false, true]) {
      it(`a fromTurn turn that ${what} is rolled back${evict ? ' (evicted in between)' : ''}`, async () => {
        const agent = defineAgent({
          type: 'n',
          logic: fromTurn<{ n: number }>(
            async ({ state, message, send, spawn }) => {
              if (message.type === 'forward') send(String(message.to), { type: 'ping' });
              if (message.type === 'spawn-taken') spawn('n', { id: 'taken' });
              if (message.type === 'proto') return JSON.parse(`{"n": ${state.n + 1}, "__proto__": {"polluted": true}}`) as { n: number };
              return { n: state.n + 1 };
            },
            { initialState: { n: 0 } },
          ),
        });
        const runtime = await createRuntime({ agents: [agent], residentCap: 4, runningCap: 1, store: memoryStore(), clock: manualClock(0) });
        await runtime.spawn('n', { id: 'a' });
        await runtime.spawn('n', { id: 'taken' });
        expect((await runtime.ask('a', { type: 'inc' })).state).toEqual({ n: 1 });
        const err = await runtime.ask('a', message).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TurnFailedError);
        if (evict) await runtime.close('a');
        expect((await runtime.ask('a', { type: 'inc' })).state).toEqual({ n: 2 });
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        await runtime.stop();
      });
    }
  }
});

describe('nothing crashes the process', () => {
  /** A store holding an agent of a type the runtime does not define (a type removed in a new version). */
  async function withGoneType() {
    const store = memoryStore();
    await store.createAgent({ id: 'old', type: 'gone', parent: null, pinned: false, input: null, createdAt: 0 });
    const { runtime } = await counterRuntime({ store });
    await runtime.spawn('counter', { id: 'a' });
    return runtime;
  }

  it('a send to an agent of an undefined type rejects with UnknownAgentTypeError and later calls still work', async () => {
    const runtime = await withGoneType();
    await expect(runtime.send('old', { type: 'x' })).rejects.toBeInstanceOf(UnknownAgentTypeError);
    await expect(runtime.ask('old', { type: 'x' })).rejects.toBeInstanceOf(UnknownAgentTypeError);
    // The accept queue is not stuck.
    await runtime.spawn('counter', { id: 'b' });
    expect((await runtime.ask('b', { type: 'inc', n: 1 })).state).toEqual({ count: 1, seen: [1] });
    await runtime.stop();
  });

  it('a turn that sends to an agent of an undefined type fails', async () => {
    const runtime = await withGoneType();
    const err = await runtime.ask('a', { type: 'forward', to: 'old' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TurnFailedError);
    expect((err as Error).message).toMatch(/gone/);
    expect((await runtime.ask('a', { type: 'inc', n: 1 })).state).toEqual({ count: 1, seen: [1] });
    await runtime.stop();
  });

  it("a turn's message to an agent whose record is damaged quarantines the target", async () => {
    const { runtime } = await counterRuntime({ store: await storeWithDamagedRecord('bad') });
    const failed = record(runtime, 'agent.failed');
    await runtime.spawn('counter', { id: 'a' });
    await runtime.ask('a', { type: 'forward', to: 'bad' });
    await until(() => failed.length > 0, 'the damaged target to be quarantined');
    expect(failed[0]!.id).toBe('bad');
    expect(failed[0]!.error).toBeInstanceOf(StoreCorruptionError);
    expect((await runtime.ask('a', { type: 'inc', n: 1 })).state).toMatchObject({ count: 2 });
    await runtime.stop();
  });

  it('a stored machine state the new code does not have quarantines that agent, keeps its messages, and the rest goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'residency-hardening-'));
    try {
      const path = join(dir, 'r.db');
      const v1 = createMachine({ id: 'm', initial: 'a', states: { a: { on: { go: 'b' } }, b: { on: { go: 'a' } } } });
      const r1 = await createRuntime({ agents: [defineAgent({ type: 'm', logic: v1 })], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
      await r1.spawn('m', { id: 'x' });
      await r1.spawn('m', { id: 'y' });
      await r1.ask('x', { type: 'go' }); // x is stored in 'b'
      await r1.stop();
      const v2 = createMachine({ id: 'm', initial: 'a', states: { a: { on: { go: 'c' } }, c: { on: { go: 'a' } } } });
      const r2 = await createRuntime({ agents: [defineAgent({ type: 'm', logic: v2 })], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
      const failed = record(r2, 'agent.failed');
      const err = await r2.ask('x', { type: 'go' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreCorruptionError);
      expect((err as Error).message).toMatch(/Agent "x"/);
      expect((err as Error).message).toMatch(/"b"/);
      expect(failed.map((f) => f.id)).toEqual(['x']);
      expect((await r2.get('x')).state).toBe('failed');
      expect((await r2.get('x')).mailbox).toBe(1);
      // An ask to a quarantined agent rejects at once with the error that quarantined it.
      await expect(r2.ask('x', { type: 'go' })).rejects.toBeInstanceOf(StoreCorruptionError);
      expect((await r2.ask('y', { type: 'go' })).state).toMatchObject({ value: 'c' });
      await r2.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reserved message types', () => {
  for (const type of ['xstate.stop', 'xstate.init', 'residency.interrupt', 'residency.anything']) {
    it(`refuses "${type}" from send, ask and a turn's own sends, before anything is stored`, async () => {
      const { runtime, store } = await counterRuntime();
      await runtime.spawn('counter', { id: 'a' });
      await expect(runtime.send('a', { type })).rejects.toThrow(TypeError);
      await expect(runtime.send('a', { type })).rejects.toThrow(/reserved/);
      await expect(runtime.ask('a', { type })).rejects.toThrow(TypeError);
      expect(await store.mailboxSize('a')).toBe(0);
      expect((await store.rollout('a')).length).toBe(0);
      await runtime.stop();
    });
  }

  it("refuses a reserved type in a turn's send: the turn fails", async () => {
    const agent = defineAgent({
      type: 'r',
      logic: fromTurn(async ({ state, send }) => {
        send('r1', { type: 'xstate.stop' });
        return state;
      }, { initialState: {} }),
    });
    const runtime = await createRuntime({ agents: [agent], residentCap: 2, runningCap: 1, store: memoryStore(), clock: manualClock(0) });
    await runtime.spawn('r', { id: 'r1' });
    await expect(runtime.ask('r1', { type: 'go' })).rejects.toBeInstanceOf(TurnFailedError);
    await runtime.stop();
  });
});

describe('interrupts move the lifecycle only when a turn really aborts', () => {
  it('two interrupts in one tick stop one turn; the next turn runs alone under runningCap 1', async () => {
    const { runtime, holds } = await counterRuntime({ runningCap: 1 });
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    holds.set('one', deferred());
    holds.set('two', deferred());
    const first = runtime.ask('a', { type: 'hold', key: 'one' });
    const second = runtime.ask('a', { type: 'hold', key: 'two' });
    await until(() => runtime.stats().running === 1, 'a to run');
    await Promise.all([runtime.interrupt('a'), runtime.interrupt('a')]);
    expect((await first).outcome).toBe('interrupted');
    await flush();
    // Only now does b get a message: a's second turn holds the only permit, so b waits.
    let bDone = false;
    const other = runtime.ask('b', { type: 'inc', n: 1 }).then((r) => ((bDone = true), r));
    await flush();
    expect(runtime.stats().running).toBe(1);
    expect(bDone).toBe(false);
    expect((await runtime.get('a')).state).toBe('running');
    holds.get('two')!.resolve();
    expect((await second).outcome).toBe('done');
    expect((await other).state).toEqual({ count: 1, seen: [1] });
    await runtime.stop();
  });

  it('an interrupt with no live turn is a no-op', async () => {
    const { runtime } = await counterRuntime();
    await runtime.spawn('counter', { id: 'a' });
    await runtime.ask('a', { type: 'inc', n: 1 });
    await runtime.interrupt('a');
    expect((await runtime.get('a')).state).toBe('idle');
    expect((await runtime.ask('a', { type: 'inc', n: 2 })).state).toEqual({ count: 2, seen: [1, 2] });
    await runtime.stop();
  });

  it('an interrupt that lands while a finished turn is being committed does not lose it', async () => {
    const inner = memoryStore();
    let gate: Deferred | null = null;
    // The runtime writes through batch (group commit): a batch holding a commit waits at the gate.
    const store = wrapStore(inner, {
      batch: async (ops) => {
        if (gate && ops.some((o) => o.op === 'commitTurn')) await gate.promise;
        return inner.batch(ops);
      },
    });
    const m = setup({ types: { context: {} as { n: number } } }).createMachine({
      context: { n: 0 },
      on: { inc: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
    });
    const runtime = await createRuntime({ agents: [defineAgent({ type: 'm', logic: m })], residentCap: 2, runningCap: 1, store, clock: manualClock(0) });
    await runtime.spawn('m', { id: 'a' });
    await runtime.ask('a', { type: 'inc' });
    gate = deferred();
    const answer = runtime.ask('a', { type: 'inc' });
    await until(() => runtime.stats().running === 1, 'the turn');
    await flush();
    await runtime.interrupt('a');
    const g = gate;
    gate = null;
    g.resolve();
    const r = await answer;
    const stored = (await inner.loadSnapshot('a')) as { context: { n: number } };
    // What ask says and what the store keeps agree.
    expect((r.state as { context: { n: number } }).context.n).toBe(stored.context.n);
    await runtime.close('a');
    expect((await runtime.ask('a', { type: 'inc' })).state).toMatchObject({ context: { n: stored.context.n + 1 } });
    await runtime.stop();
  });
});

describe('machines with children', () => {
  it('a context holding a spawned child: the turn commits and ask answers with the ref as plain data', async () => {
    const m = setup({
      types: { context: {} as { ref: unknown; n: number } },
      actors: { child: createMachine({ id: 'kid', initial: 'on', states: { on: {} } }) },
    }).createMachine({
      context: { ref: null, n: 0 },
      on: {
        go: { actions: assign({ ref: ({ spawn }) => spawn('child', { id: 'kid' }), n: ({ context }) => context.n + 1 }) },
        inc: { actions: assign({ n: ({ context }) => context.n + 1 }) },
      },
    });
    const runtime = await createRuntime({ agents: [defineAgent({ type: 'm', logic: m })], residentCap: 2, runningCap: 1, store: memoryStore(), clock: manualClock(0) });
    await runtime.spawn('m', { id: 'a' });
    const r = await runtime.ask('a', { type: 'go' });
    expect(r.outcome).toBe('done');
    expect(JSON.parse(JSON.stringify(r.state))).toMatchObject({ context: { n: 1 } });
    expect((await runtime.ask('a', { type: 'inc' })).outcome).toBe('done');
    expect(runtime.stats().running).toBe(0);
    await runtime.stop();
  });

  it('a state that invokes a callback actor ends its turn; the agent stays resident while the child lives', async () => {
    const m = setup({
      types: { context: {} as { n: number } },
      actors: { listener: fromCallback(() => () => {}) },
    }).createMachine({
      context: { n: 0 },
      initial: 'idle',
      states: {
        idle: { on: { listen: 'listening' } },
        listening: { invoke: { src: 'listener' }, on: { stop: 'idle' } },
      },
      on: { inc: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
    });
    const handled: Handled = new Map();
    const runtime = await createRuntime({
      agents: [defineAgent({ type: 'm', logic: m }), counterAgent(handled)],
      residentCap: 1,
      runningCap: 1,
      store: memoryStore(),
      clock: manualClock(0),
    });
    await runtime.spawn('m', { id: 'a' });
    expect((await runtime.ask('a', { type: 'listen' })).state).toMatchObject({ value: 'listening' });
    expect((await runtime.ask('a', { type: 'inc' })).state).toMatchObject({ value: 'listening', context: { n: 1 } });
    // Not evictable while its child lives: another agent waits for the only slot.
    await runtime.spawn('counter', { id: 'c' });
    await runtime.send('c', { type: 'inc', n: 1 });
    await flush();
    expect((await runtime.get('a')).state).toBe('idle');
    expect(runtime.stats().waitingForSlot).toBe(1);
    // Leaving the state stops the child: now it can be evicted and c runs.
    await runtime.ask('a', { type: 'stop' });
    await until(() => handled.get('c')?.length === 1, 'c to run');
    await runtime.stop();
  });
});

describe('races with destroy', () => {
  it('destroy, spawn, ask back to back: the ask is answered', async () => {
    const { runtime } = await counterRuntime();
    for (let round = 0; round < 20; round++) {
      await runtime.spawn('counter', { id: 'a' });
      await runtime.ask('a', { type: 'inc', n: 1 });
      const d = runtime.destroy('a');
      const s = runtime.spawn('counter', { id: 'a' });
      const r = runtime.ask('a', { type: 'inc', n: 2 });
      await d;
      await s;
      expect((await r).state).toEqual({ count: 1, seen: [2] });
      await runtime.destroy('a');
    }
    await runtime.stop();
  });

  it('destroy during a load emits no error', async () => {
    const inner = memoryStore();
    let gate: Deferred | null = deferred();
    const store = wrapStore(inner, {
      loadSnapshot: async (id) => {
        if (gate) await gate.promise;
        return inner.loadSnapshot(id);
      },
    });
    const { runtime } = await counterRuntime({ store });
    const errors = record(runtime, 'error');
    await runtime.spawn('counter', { id: 'a' });
    const asked = runtime.ask('a', { type: 'inc', n: 1 }).catch((e: unknown) => e);
    await until(() => runtime.stats().loading === 1, 'the load');
    const destroyed = runtime.destroy('a');
    gate.resolve();
    gate = null;
    await destroyed;
    expect(await asked).toBeInstanceOf(AgentNotFoundError);
    await flush();
    expect(errors).toEqual([]);
    await runtime.stop();
  });
});

describe('smaller things', () => {
  it('stop() called twice returns the same promise', async () => {
    const { runtime } = await counterRuntime();
    const a = runtime.stop();
    const b = runtime.stop();
    expect(b).toBe(a);
    await a;
  });

  it('copies a message once: a getter cannot slip a large value past the size check', async () => {
    const { runtime, store } = await counterRuntime();
    await runtime.spawn('counter', { id: 'a' });
    let reads = 0;
    const sneaky = {
      type: 'inc',
      get payload() {
        reads++;
        return reads === 1 ? 'small' : 'x'.repeat(5 * 1024 * 1024);
      },
    };
    const r = await runtime.send('a', sneaky).catch((e: unknown) => e);
    if (r instanceof Error) expect(r).toBeInstanceOf(TypeError);
    const pending = await store.pending('a');
    for (const p of pending) expect(JSON.stringify(p.message).length).toBeLessThan(1024 * 1024);
    const proxy = new Proxy({ type: 'inc' }, { get: (t, k) => (k === 'then' ? undefined : Reflect.get(t, k)), ownKeys: () => { throw new Error('trap'); } });
    await expect(runtime.send('a', proxy)).rejects.toBeInstanceOf(TypeError);
    await runtime.stop();
  });

  it('refuses integer limits beyond the safe range', async () => {
    const { runtime } = await counterRuntime();
    await expect(runtime.list({ limit: 2 ** 63 })).rejects.toBeInstanceOf(TypeError);
    await runtime.stop();
  });

  it('two runtimes on one store: the second rejects with StoreLockedError', async () => {
    const store = memoryStore();
    const { runtime } = await counterRuntime({ store });
    const err = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreLockedError);
    expect((err as StoreLockedError).code).toBe('STORE_LOCKED');
    await runtime.stop();
  });

  it('a fenced store: the runtime drops its agents without writing and emits error', async () => {
    const inner = memoryStore();
    let fenced = false;
    const writes: string[] = [];
    const guard = <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
      if (fenced) throw new FencedError(null, 'another runtime took the store over');
      writes.push(name);
      return fn(...a);
    };
    const store = wrapStore(inner, {
      append: guard('append', (b) => inner.append(b)),
      commitTurn: guard('commitTurn', (c) => inner.commitTurn(c)),
      beginTurn: guard('beginTurn', (a, s, t) => inner.beginTurn(a, s, t)),
      note: guard('note', (a, e) => inner.note(a, e)),
      batch: guard('batch', (ops) => inner.batch(ops)),
    });
    const { runtime } = await counterRuntime({ store });
    const errors = record(runtime, 'error');
    await runtime.spawn('counter', { id: 'a' });
    await runtime.ask('a', { type: 'inc', n: 1 });
    fenced = true;
    const err = await runtime.send('a', { type: 'inc', n: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    await until(() => errors.some((e) => e.error instanceof FencedError), 'the fencing to be reported');
    expect(runtime.stats().resident).toBe(0);
    await expect(runtime.ask('a', { type: 'inc', n: 3 })).rejects.toBeInstanceOf(FencedError);
    await runtime.stop();
  });
});

describe('damage inside the store', () => {
  it('load failures back off (doubling), not a reload every 100 ms', async () => {
    const inner = memoryStore();
    const store = wrapStore(inner, {
      loadSnapshot: async (id) => {
        if (id === 'a') throw new StoreError('disk I/O error');
        return inner.loadSnapshot(id);
      },
    });
    const { runtime, clock } = await counterRuntime({ store });
    const loading = record(runtime, 'agent.loading');
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    await runtime.send('a', { type: 'inc', n: 1 });
    for (let i = 0; i < 100; i++) {
      await flush(2);
      clock.advance(100);
    }
    // 10 s: 100, 200, 400 … 6,400 ms apart → at most 8 loads (a fixed 100 ms would be 100).
    expect(loading.filter((e) => e.id === 'a').length).toBeLessThanOrEqual(8);
    expect(loading.filter((e) => e.id === 'a').length).toBeGreaterThanOrEqual(3);
    expect((await runtime.ask('b', { type: 'inc', n: 1 })).state).toEqual({ count: 1, seen: [1] });
    await runtime.stop();
  });

  it('list() leaves out an agent whose stored data cannot be read, reports it, and serves the others', async () => {
    const inner = memoryStore();
    const store = wrapStore(inner, {
      agentStats: async (ids) => {
        if (ids.includes('b')) throw new StoreCorruptionError('b', 'its counters cannot be read');
        return inner.agentStats(ids);
      },
    });
    const { runtime } = await counterRuntime({ store });
    const errors = record(runtime, 'error');
    for (const id of ['a', 'b', 'c']) await runtime.spawn('counter', { id });
    const page = await runtime.list();
    expect(page.agents.map((a) => a.id)).toEqual(['a', 'c']);
    expect(page.damaged?.map((d) => d.id)).toEqual(['b']);
    expect(errors.map((e) => e.id)).toEqual(['b']);
    await runtime.stop();
  });
});

describe('found by checking the docs against the code', () => {
  it("an interrupted first turn answers with the agent's state before it, and no outputs (none were recorded)", async () => {
    const agent = defineAgent({
      type: 'slow',
      logic: fromTurn<{ n: number }>(
        async ({ state, emit, signal }) => {
          emit({ early: true });
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
          return { n: state.n + 1 };
        },
        { initialState: { n: 0 } },
      ),
    });
    const runtime = await createRuntime({ agents: [agent], residentCap: 2, runningCap: 1, store: memoryStore(), clock: manualClock(0) });
    await runtime.spawn('slow', { id: 's' });
    const answer = runtime.ask('s', { type: 'go' });
    await until(() => runtime.stats().running === 1, 'the turn');
    await flush();
    await runtime.interrupt('s');
    expect(await answer).toEqual({ outcome: 'interrupted', state: { n: 0 }, outputs: [] });
    await runtime.stop();
  });

  it('a send to an agent whose record cannot be read says so (StoreCorruptionError), not "does not exist"', async () => {
    const { runtime } = await counterRuntime({ store: await storeWithDamagedRecord('bad') });
    await expect(runtime.send('bad', { type: 'inc' })).rejects.toBeInstanceOf(StoreCorruptionError);
    await expect(runtime.send('nobody', { type: 'inc' })).rejects.toBeInstanceOf(AgentNotFoundError);
    await runtime.stop();
  });
});

describe('found by the benchmarks', () => {
  it('a message to an agent in memory is not stranded when its entry is dropped while the batch reads other records', async () => {
    const inner = memoryStore();
    let gate: Deferred | null = null;
    const store = wrapStore(inner, {
      getAgents: async (ids) => {
        if (gate) await gate.promise;
        return inner.getAgents(ids);
      },
    });
    const handled: Handled = new Map();
    const clock = manualClock(0);
    const runtime = await createRuntime({ agents: [counterAgent(handled)], residentCap: 4, runningCap: 1, idleTimeout: 100, store, clock });
    await runtime.spawn('counter', { id: 'x' });
    await runtime.spawn('counter', { id: 'y' });
    await runtime.ask('x', { type: 'inc', n: 1 }); // x resident and idle
    gate = deferred();
    const toX = runtime.send('x', { type: 'inc', n: 2 });
    const toY = runtime.send('y', { type: 'inc', n: 1 }); // same batch: y's record is read (gated)
    await flush();
    clock.advance(1_000); // x idles out meanwhile and would leave memory
    await flush();
    gate.resolve();
    gate = null;
    await Promise.all([toX, toY]);
    await until(() => handled.get('x')?.length === 2 && handled.get('y')?.length === 1, 'both messages handled');
    expect(handled.get('x')).toEqual(['1', '2']);
    await runtime.stop();
  });
});

describe('found by the scale-out demo', () => {
  it('a graceful stop while a commit begins the next turn runs that turn: nothing is left in flight', async () => {
    // The commit of turn #1 begins turn #2 (CommitTurn.next); stop() lands while that commit
    // is written. The begun turn must run (or never have begun): never "in flight" after a
    // graceful stop, to be recorded `crashed` by the next start (or by a process taking over).
    const dir = mkdtempSync(join(tmpdir(), 'residency-stop-begun-'));
    try {
      for (const when of ['immediate', 'micro'] as const) {
        const path = join(dir, `${when}.db`);
        let runtime!: Runtime;
        let stopping: Promise<void> | null = null;
        const a = defineAgent({
          type: 'a',
          logic: fromTurn<{ n: number }>(
            async ({ state }) => {
              await new Promise<void>((r) => setTimeout(r, 2));
              if (state.n === 0) {
                const go = () => void (stopping = runtime.stop());
                if (when === 'immediate') setImmediate(go);
                else queueMicrotask(go);
              }
              return { n: state.n + 1 };
            },
            { initialState: { n: 0 } },
          ),
        });
        runtime = await createRuntime({ agents: [a], residentCap: 4, runningCap: 2, store: sqliteStore(path) });
        await runtime.spawn('a', { id: 'x' });
        await Promise.all([1, 2, 3].map((i) => runtime.send('x', { type: 'm', i })));
        await until(() => stopping !== null, 'the stop', 100_000);
        await stopping;
        const store = sqliteStore(path, { readonly: true });
        try {
          expect(await store.turnsInFlight(), when).toEqual([]);
          const rollout = await store.rollout('x');
          const seqs = (kind: string) => rollout.filter((e) => e.kind === kind).map((e) => (e as { seq: number }).seq);
          expect(seqs('turn.finished'), when).toEqual(seqs('turn.started'));
        } finally {
          await store.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
