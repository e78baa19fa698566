import { describe, expect, it } from 'vitest';
import { assign, emit, setup } from 'xstate';
import { createRuntime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import {
  AgentExistsError,
  AgentNotFoundError,
  AskTimeoutError,
  RuntimeStoppedError,
  TurnFailedError,
  UnknownAgentTypeError,
} from '../../src/errors.js';
import { INTERNALS, type RuntimeInternals } from '../../src/runtime/internals.js';
import { counterAgent, deferred, flush, record, until, type Deferred, type Handled } from './helpers.js';

async function setupRuntime(opts: { residentCap?: number; runningCap?: number; idleTimeout?: number } = {}) {
  const handled: Handled = new Map();
  const holds = new Map<string, Deferred>();
  const store = memoryStore();
  const clock = manualClock(1_000);
  const runtime = await createRuntime({
    agents: [counterAgent(handled, holds)],
    residentCap: opts.residentCap ?? 2,
    runningCap: opts.runningCap ?? 1,
    idleTimeout: opts.idleTimeout ?? null,
    store,
    clock,
  });
  return { runtime, handled, holds, store, clock };
}

describe('createRuntime: spawn, send, ask', () => {
  it('registers an agent lazily and loads it on its first message', async () => {
    const { runtime, store } = await setupRuntime();
    const loaded = record(runtime, 'agent.loaded');
    await runtime.spawn('counter', { id: 'alice' });
    expect((await runtime.get('alice')).state).toBe('unloaded');
    expect(loaded).toEqual([]);
    const r = await runtime.ask('alice', { type: 'inc', n: 1 });
    expect(r).toEqual({ outcome: 'done', state: { count: 1, seen: [1] }, outputs: [{ handled: 1 }] });
    expect(loaded.map((e) => e.id)).toEqual(['alice']);
    expect(await store.mailboxSize('alice')).toBe(0);
    expect((await runtime.get('alice')).turns).toBe(1);
  });

  it('resolves send once the message is stored, before it is handled', async () => {
    const { runtime, store, holds } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    holds.set('k', deferred());
    await runtime.send('a', { type: 'hold', key: 'k' });
    await runtime.send('a', { type: 'inc', n: 2 });
    expect(await store.mailboxSize('a')).toBe(2);
    holds.get('k')!.resolve();
    await until(() => runtime.stats().running === 0 && runtime.stats().waitingForPermit === 0, 'turns to end');
    await flush();
    expect(await store.mailboxSize('a')).toBe(0);
  });

  it('handles messages from one caller in call order', async () => {
    const { runtime, handled } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    const sends = Array.from({ length: 30 }, (_, i) => runtime.send('a', { type: 'inc', n: i }));
    await Promise.all(sends);
    await runtime.ask('a', { type: 'inc', n: 'last' });
    expect(handled.get('a')).toEqual([...Array.from({ length: 30 }, (_, i) => String(i)), 'last']);
  });

  it('rejects a failed turn with TurnFailedError and keeps the state', async () => {
    const { runtime } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    await runtime.ask('a', { type: 'inc', n: 1 });
    const err = await runtime.ask('a', { type: 'fail' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TurnFailedError);
    expect((err as TurnFailedError).code).toBe('TURN_FAILED');
    expect(await runtime.ask('a', { type: 'inc', n: 2 })).toMatchObject({ state: { count: 2, seen: [1, 2] } });
  });

  it('gives typed errors for unknown types, duplicate ids, missing agents, and calls after stop', async () => {
    const { runtime } = await setupRuntime();
    await expect(runtime.spawn('nope', { id: 'x' })).rejects.toBeInstanceOf(UnknownAgentTypeError);
    await runtime.spawn('counter', { id: 'x' });
    await expect(runtime.spawn('counter', { id: 'x' })).rejects.toBeInstanceOf(AgentExistsError);
    await expect(runtime.send('ghost', { type: 'inc' })).rejects.toBeInstanceOf(AgentNotFoundError);
    await expect(runtime.get('ghost')).rejects.toBeInstanceOf(AgentNotFoundError);
    await expect(runtime.destroy('ghost')).rejects.toBeInstanceOf(AgentNotFoundError);
    await runtime.stop();
    await expect(runtime.send('x', { type: 'inc' })).rejects.toBeInstanceOf(RuntimeStoppedError);
    await expect(runtime.spawn('counter', { id: 'y' })).rejects.toBeInstanceOf(RuntimeStoppedError);
  });

  it('times out an ask on the injected clock, and the message is still handled', async () => {
    const { runtime, holds, clock, handled } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    holds.set('k', deferred());
    void runtime.send('a', { type: 'hold', key: 'k' });
    const asked = runtime.ask('a', { type: 'inc', n: 9 }, { timeout: 500 });
    await flush();
    clock.advance(500);
    await expect(asked).rejects.toBeInstanceOf(AskTimeoutError);
    holds.get('k')!.resolve();
    await until(() => handled.get('a')?.includes('9') ?? false, 'the message to be handled');
  });
});

describe('createRuntime: residency', () => {
  it('evicts the least recently used idle agent when the cap is full, and reloads on delivery', async () => {
    const { runtime, handled } = await setupRuntime({ residentCap: 2 });
    const evicted = record(runtime, 'agent.evicted');
    for (const id of ['a', 'b', 'c']) await runtime.spawn('counter', { id });
    await runtime.ask('a', { type: 'inc', n: 1 });
    await runtime.ask('b', { type: 'inc', n: 1 });
    await runtime.ask('a', { type: 'inc', n: 2 }); // a is now more recent than b
    await runtime.ask('c', { type: 'inc', n: 1 }); // full: b goes
    expect(evicted.map((e) => [e.id, e.reason])).toEqual([['b', 'cap']]);
    expect((await runtime.get('b')).state).toBe('unloaded');
    const r = await runtime.ask('b', { type: 'inc', n: 2 }); // reload on delivery, state intact
    expect(r.state).toEqual({ count: 2, seen: [1, 2] });
    expect(evicted.map((e) => e.id)).toEqual(['b', 'a']);
    expect(handled.get('b')).toEqual(['1', '2']);
  });

  it('loads an agent once however many messages race to it (single flight)', async () => {
    const { runtime, handled } = await setupRuntime();
    const loading = record(runtime, 'agent.loading');
    await runtime.spawn('counter', { id: 'a' });
    await Promise.all(Array.from({ length: 50 }, (_, i) => runtime.send('a', { type: 'inc', n: i })));
    await until(() => (handled.get('a')?.length ?? 0) === 50, '50 messages');
    expect(loading).toHaveLength(1);
  });

  it('waits instead of overshooting when every resident is busy (the cap test), then drains the backlog', async () => {
    const cap = 3;
    const { runtime, holds, handled } = await setupRuntime({ residentCap: cap, runningCap: cap });
    const saturated = record(runtime, 'residency.saturated');
    let maxResident = 0;
    const watch = () => {
      const s = runtime.stats();
      maxResident = Math.max(maxResident, s.resident + s.loading + s.flushing);
    };
    for (const e of ['agent.loading', 'agent.loaded', 'agent.evicted', 'turn.started', 'turn.finished'] as const) runtime.on(e, watch);
    for (let i = 0; i < 10; i++) await runtime.spawn('counter', { id: `agent-${i}` });
    // Fill every slot with a held turn.
    for (let i = 0; i < cap; i++) {
      holds.set(`h${i}`, deferred());
      await runtime.send(`agent-${i}`, { type: 'hold', key: `h${i}` });
    }
    await until(() => runtime.stats().running === cap, 'the slots to fill');
    // A backlog for agents that are not resident: they must wait.
    for (let i = cap; i < 10; i++) await runtime.send(`agent-${i}`, { type: 'inc', n: i });
    await flush();
    expect(runtime.stats().waitingForSlot).toBe(10 - cap);
    expect(saturated.length).toBeGreaterThan(0);
    expect(maxResident).toBeLessThanOrEqual(cap);
    // Residents keep answering: a second message to a held agent is accepted.
    await runtime.send('agent-0', { type: 'inc', n: 'again' });
    for (let i = 0; i < cap; i++) holds.get(`h${i}`)!.resolve();
    await until(() => [...Array(10).keys()].every((i) => (handled.get(`agent-${i}`)?.length ?? 0) >= 1), 'the backlog to drain');
    await until(() => runtime.stats().waitingForSlot === 0 && runtime.stats().running === 0, 'quiet');
    expect(maxResident).toBeLessThanOrEqual(cap);
    expect(handled.get('agent-0')).toEqual(['hold', 'again']);
  });

  it('never runs more than runningCap turns at once', async () => {
    const { runtime, holds } = await setupRuntime({ residentCap: 5, runningCap: 2 });
    let running = 0;
    let maxRunning = 0;
    runtime.on('turn.started', () => void (maxRunning = Math.max(maxRunning, ++running)));
    runtime.on('turn.finished', () => void running--);
    for (let i = 0; i < 5; i++) {
      await runtime.spawn('counter', { id: `a${i}` });
      holds.set(`k${i}`, deferred());
      await runtime.send(`a${i}`, { type: 'hold', key: `k${i}` });
    }
    await until(() => runtime.stats().running === 2, 'two running');
    await flush();
    expect(runtime.stats().waitingForPermit).toBe(3);
    for (let i = 0; i < 5; i++) holds.get(`k${i}`)!.resolve();
    await until(() => runtime.stats().running === 0 && runtime.stats().waitingForPermit === 0, 'all done');
    expect(maxRunning).toBe(2);
  });

  it('keeps pinned agents outside the cap and never evicts them', async () => {
    const { runtime } = await setupRuntime({ residentCap: 1 });
    const evicted = record(runtime, 'agent.evicted');
    await runtime.spawn('counter', { id: 'root', pinned: true });
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    await runtime.ask('root', { type: 'inc' });
    await runtime.ask('a', { type: 'inc' });
    await runtime.ask('b', { type: 'inc' });
    expect(evicted.map((e) => e.id)).toEqual(['a']);
    expect(runtime.stats()).toMatchObject({ pinned: 1, resident: 1 });
    expect((await runtime.get('root')).state).toBe('idle');
  });

  it('passivates agents idle longer than idleTimeout, on the injected clock', async () => {
    const { runtime, clock } = await setupRuntime({ residentCap: 4, idleTimeout: 60_000 });
    const evicted = record(runtime, 'agent.evicted');
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    await runtime.ask('a', { type: 'inc' });
    clock.advance(30_000);
    await runtime.ask('b', { type: 'inc' });
    clock.advance(30_000); // a has been idle 60 s, b 30 s
    await until(() => evicted.length === 1, 'a to be passivated');
    expect(evicted[0]).toMatchObject({ id: 'a', reason: 'idle' });
    clock.advance(30_000);
    await until(() => evicted.length === 2, 'b to be passivated');
    expect(evicted[1]).toMatchObject({ id: 'b', reason: 'idle' });
  });
});

describe('createRuntime: memory', () => {
  it('keeps nothing for agents that are unloaded with an empty mailbox', async () => {
    const { runtime } = await setupRuntime({ residentCap: 2 });
    const internals = (runtime as unknown as Record<symbol, () => RuntimeInternals>)[INTERNALS]!();
    for (let i = 0; i < 20; i++) {
      await runtime.spawn('counter', { id: `a${i}` });
      await runtime.ask(`a${i}`, { type: 'inc' });
    }
    await flush();
    // Two resident agents; the eighteen evicted ones left nothing behind in the runtime.
    expect(internals.agents().map((a) => a.state)).toEqual(['idle', 'idle']);
  });
});

describe('createRuntime: interrupt, close, destroy, and their races', () => {
  it('interrupts a running turn: the signal fires, the turn is recorded interrupted, identity kept', async () => {
    const { runtime, store } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    await runtime.ask('a', { type: 'inc', n: 1 });
    const asked = runtime.ask('a', { type: 'hold', key: 'never' });
    await until(() => runtime.stats().running === 1, 'the turn to run');
    await runtime.interrupt('a');
    const r = await asked;
    expect(r.outcome).toBe('interrupted');
    expect(r.state).toEqual({ count: 1, seen: [1] });
    const rollout = await store.rollout('a');
    expect(rollout.filter((e) => e.kind === 'turn.finished').map((e) => (e as { outcome: string }).outcome)).toEqual(['done', 'interrupted']);
    expect(await runtime.ask('a', { type: 'inc', n: 2 })).toMatchObject({ state: { count: 2, seen: [1, 2] } });
  });

  it('does nothing on interrupt of an unloaded agent and does not load it', async () => {
    const { runtime } = await setupRuntime();
    const loading = record(runtime, 'agent.loading');
    await runtime.spawn('counter', { id: 'a' });
    await runtime.interrupt('a');
    await flush();
    expect(loading).toEqual([]);
  });

  it('ignores an interrupt that arrives while the agent is loading', async () => {
    const { runtime, handled } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    const loading = new Promise<void>((resolve) => runtime.on('agent.loading', () => resolve()));
    const asked = runtime.ask('a', { type: 'inc', n: 1 });
    await loading;
    await runtime.interrupt('a');
    expect((await asked).outcome).toBe('done');
    expect(handled.get('a')).toEqual(['1']);
  });

  it('closes an agent after its running turn and keeps queued messages, which reload it', async () => {
    const { runtime, holds, handled } = await setupRuntime();
    const evicted = record(runtime, 'agent.evicted');
    await runtime.spawn('counter', { id: 'a' });
    holds.set('k', deferred());
    await runtime.send('a', { type: 'hold', key: 'k' });
    await until(() => runtime.stats().running === 1, 'running');
    await runtime.send('a', { type: 'inc', n: 'queued' });
    const closed = runtime.close('a');
    holds.get('k')!.resolve();
    await closed;
    expect(evicted.map((e) => [e.id, e.reason])).toEqual([['a', 'close']]);
    await until(() => handled.get('a')?.length === 2, 'the queued message');
    expect(handled.get('a')).toEqual(['hold', 'queued']);
  });

  it('keeps a message that arrives while its agent is flushing, then reloads to handle it', async () => {
    const { runtime, handled } = await setupRuntime({ residentCap: 1 });
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    await runtime.ask('a', { type: 'inc', n: 1 });
    let sent: Promise<unknown> | null = null;
    runtime.on('agent.evicting', (e) => {
      if (e.id === 'a' && !sent) sent = runtime.send('a', { type: 'inc', n: 'during-flush' });
    });
    await runtime.ask('b', { type: 'inc', n: 1 }); // evicts a
    await sent;
    await until(() => handled.get('a')?.length === 2, 'a to reload and handle it');
    expect(handled.get('a')).toEqual(['1', 'during-flush']);
  });

  it('destroys an agent during its eviction: identity, mailbox and rollout are gone', async () => {
    const { runtime, store } = await setupRuntime({ residentCap: 1 });
    await runtime.spawn('counter', { id: 'a' });
    await runtime.spawn('counter', { id: 'b' });
    await runtime.ask('a', { type: 'inc' });
    let destroyed: Promise<void> | null = null;
    runtime.on('agent.evicting', (e) => {
      if (e.id === 'a') destroyed = runtime.destroy('a');
    });
    await runtime.ask('b', { type: 'inc' });
    await destroyed;
    await expect(runtime.get('a')).rejects.toBeInstanceOf(AgentNotFoundError);
    expect(await store.rollout('a')).toEqual([]);
    await runtime.spawn('counter', { id: 'a' }); // the id is free again
    expect((await runtime.ask('a', { type: 'inc', n: 7 })).state).toEqual({ count: 1, seen: [7] });
  });

  it('rejects the asks of an agent destroyed while they wait', async () => {
    const { runtime, holds } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    holds.set('k', deferred());
    void runtime.send('a', { type: 'hold', key: 'k' });
    const asked = runtime.ask('a', { type: 'inc' });
    await until(() => runtime.stats().running === 1, 'running');
    await runtime.destroy('a');
    await expect(asked).rejects.toBeInstanceOf(AgentNotFoundError);
  });
});

describe('createRuntime: agents talking to agents, and machine logic', () => {
  it('delivers messages sent from a turn when the turn commits, and spawns sub-agents with a parent', async () => {
    const handled: Handled = new Map();
    const root = defineAgent({
      type: 'root',
      logic: fromTurn<{ children: string[] }>(
        async ({ state, message, spawn, send }) => {
          if (message.type === 'delegate') {
            const id = spawn('counter', { id: `sub-${state.children.length}` });
            send(id, { type: 'inc', n: 'from-root' });
            return { children: [...state.children, id] };
          }
          return state;
        },
        { initialState: { children: [] } },
      ),
    });
    const runtime = await createRuntime({ agents: [root, counterAgent(handled)], residentCap: 2, runningCap: 1, store: memoryStore() });
    await runtime.spawn('root', { id: 'root', pinned: true });
    const r = await runtime.ask('root', { type: 'delegate' });
    expect(r.state).toEqual({ children: ['sub-0'] });
    await until(() => handled.get('sub-0')?.length === 1, 'the sub-agent to handle it');
    expect((await runtime.get('sub-0')).parent).toBe('root');
    expect((await runtime.list({ parent: 'root' })).agents.map((a) => a.id)).toEqual(['sub-0']);
  });

  it('runs an XState machine as logic: a turn lasts until quiescent, emitted events are outputs and effects', async () => {
    const order = setup({
      types: {
        context: {} as { items: number; notified: boolean },
        events: {} as { type: 'add' } | { type: 'checkout' },
        emitted: {} as { type: 'added' } | { type: 'agent.send'; to: string; message: { type: string; n: string } },
      },
    }).createMachine({
      id: 'order',
      context: { items: 0, notified: false },
      initial: 'open',
      states: {
        open: {
          on: {
            add: { actions: [assign({ items: ({ context }) => context.items + 1 }), emit({ type: 'added' })] },
            checkout: { target: 'paid', actions: emit({ type: 'agent.send', to: 'ledger', message: { type: 'inc', n: 'order' } }) },
          },
        },
        paid: {},
      },
    });
    const handled: Handled = new Map();
    const runtime = await createRuntime({
      agents: [defineAgent({ type: 'order', logic: order }), counterAgent(handled)],
      residentCap: 1,
      runningCap: 1,
      store: memoryStore(),
    });
    await runtime.spawn('order', { id: 'o1' });
    await runtime.spawn('counter', { id: 'ledger' });
    expect(await runtime.ask('o1', { type: 'add' })).toEqual({
      outcome: 'done',
      state: { value: 'open', context: { items: 1, notified: false } },
      outputs: [{ type: 'added' }],
    });
    await runtime.ask('o1', { type: 'add' });
    const r = await runtime.ask('o1', { type: 'checkout' });
    expect(r.state).toEqual({ value: 'paid', context: { items: 2, notified: false } });
    await until(() => handled.get('ledger')?.length === 1, 'the ledger to be told'); // evicts o1 (cap 1)
    expect((await runtime.ask('o1', { type: 'add' })).state).toEqual({ value: 'paid', context: { items: 2, notified: false } });
  });
});

describe('createRuntime: events and recovery', () => {
  it('keeps going when a listener throws, and reports it as an error event', async () => {
    const { runtime } = await setupRuntime();
    const errors = record(runtime, 'error');
    runtime.on('turn.finished', () => {
      throw new Error('listener bug');
    });
    await runtime.spawn('counter', { id: 'a' });
    expect((await runtime.ask('a', { type: 'inc' })).outcome).toBe('done');
    await flush();
    expect(errors.some((e) => e.error.message === 'listener bug')).toBe(true);
  });

  it('on start, marks turns left in flight as crashed and schedules agents with pending mail', async () => {
    const handled: Handled = new Map();
    const store = memoryStore();
    await store.createAgent({ id: 'a', type: 'counter', parent: null, pinned: false, input: null, createdAt: 0 });
    await store.append([
      { agentId: 'a', messageId: 'm1', message: { type: 'inc', n: 1 }, at: 0 },
      { agentId: 'a', messageId: 'm2', message: { type: 'inc', n: 2 }, at: 0 },
    ]);
    await store.beginTurn('a', 1, 0); // the process died during this turn
    const runtime = await createRuntime({ agents: [counterAgent(handled)], residentCap: 1, runningCap: 1, store });
    const finished = record(runtime, 'turn.finished'); // subscribing right after start sees recovery too
    await until(() => handled.get('a')?.length === 1, 'the pending message');
    // turn.finished comes once the turn's commit is durable (the output gate).
    await until(() => finished.length === 2, 'the turn to be committed');
    expect(finished.map((e) => [e.seq, e.outcome])).toEqual([[1, 'crashed'], [2, 'done']]);
    expect(handled.get('a')).toEqual(['2']); // message 1 is not silently re-run
    const outcomes = (await store.rollout('a')).filter((e) => e.kind === 'turn.finished').map((e) => (e as { outcome: string }).outcome);
    expect(outcomes).toEqual(['crashed', 'done']);
    await runtime.stop();
  });

  it('re-runs a crashed turn for a definition that opts in (redeliverCrashed)', async () => {
    const handled: Handled = new Map();
    const store = memoryStore();
    await store.createAgent({ id: 'a', type: 'counter', parent: null, pinned: false, input: null, createdAt: 0 });
    await store.append([{ agentId: 'a', messageId: 'm1', message: { type: 'inc', n: 1 }, at: 0 }]);
    await store.beginTurn('a', 1, 0);
    const def = { ...counterAgent(handled), redeliverCrashed: true };
    const runtime = await createRuntime({ agents: [def], residentCap: 1, runningCap: 1, store });
    await until(() => handled.get('a')?.length === 1, 'the message to run again');
    expect(handled.get('a')).toEqual(['1']);
    await flush();
    const outcomes = (await store.rollout('a')).filter((e) => e.kind === 'turn.finished').map((e) => (e as { outcome: string }).outcome);
    expect(outcomes).toEqual(['done']);
    expect(await store.turnsInFlight()).toEqual([]);
    await runtime.stop();
  });

  it('forwards XState inspection events and runtime events only while observed', async () => {
    const { runtime } = await setupRuntime();
    await runtime.spawn('counter', { id: 'a' });
    const seen: string[] = [];
    const sub = runtime.inspect((e) => seen.push(e.type));
    await runtime.ask('a', { type: 'inc' });
    sub.unsubscribe();
    const count = seen.length;
    expect(seen).toContain('@xstate.snapshot');
    expect(seen).toContain('@residency.event');
    await runtime.ask('a', { type: 'inc' });
    expect(seen.length).toBe(count);
  });
});
