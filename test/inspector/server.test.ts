/**
 * The inspector's server and its parts, without a browser: event batching, the JSON
 * API, the stored (read-only) view. The layout has its own file (machineGraph.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { manualClock } from '../../src/clock.js';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { EventBatcher, type Batch } from '../../src/inspector/EventBatcher.js';
import { serveInspector, serveStoredInspector, type Inspector } from '../../src/inspector/serveInspector.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import { counterAgent, deferred, doorAgent, until, type Deferred } from '../runtime/helpers.js';
import { DAMAGE_SAID, damagedDatabase, type Damage } from './damagedDatabase.js';

/**
 * The runtime as a tool outside it sees it: reading a symbol-keyed property (the test-only
 * INTERNALS hook) throws, and the names read are recorded.
 */
function publicOnly(runtime: Runtime): { runtime: Runtime; read: Set<string> } {
  const read = new Set<string>();
  const proxy = new Proxy(runtime, {
    get(target, key) {
      if (typeof key === 'symbol') throw new Error(`read ${String(key)} of the runtime`);
      read.add(key);
      return Reflect.get(target, key) as unknown;
    },
    getOwnPropertyDescriptor(target, key) {
      if (typeof key === 'symbol') throw new Error(`read ${String(key)} of the runtime`);
      return Reflect.getOwnPropertyDescriptor(target, key);
    },
  });
  return { runtime: proxy, read };
}

const PUBLIC_READS = ['list', 'get', 'stats', 'on', 'residency', 'mailbox', 'history', 'timers', 'machineOf', 'logicValue'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON read back from the API
async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}

function manualTimers() {
  const pending: (() => void)[] = [];
  return {
    setTimeout: (fn: () => void) => (pending.push(fn), pending.length),
    clearTimeout: () => void pending.splice(0),
    fire: () => pending.splice(0).forEach((f) => f()),
    get armed() {
      return pending.length;
    },
  };
}

describe('EventBatcher', () => {
  it('sends events in batches of at most maxBatch and counts the rest as dropped', () => {
    const t = manualTimers();
    const batches: Batch[] = [];
    const b = new EventBatcher((x) => batches.push(x), { maxBatch: 3, ...t });
    expect(t.armed).toBe(0);
    for (let i = 0; i < 10; i++) b.push({ name: 'message.accepted', id: `a${i}`, at: i });
    expect(t.armed).toBe(1);
    t.fire();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.events.map((e) => e.id)).toEqual(['a0', 'a1', 'a2']);
    expect(batches[0]!.dropped).toBe(7);
    t.fire();
    expect(batches).toHaveLength(1);
    b.push({ name: 'turn.started', id: 'x', at: 0 });
    t.fire();
    expect(batches[1]).toEqual({ events: [{ name: 'turn.started', id: 'x', at: 0 }], dropped: 0 });
  });

  it('offer() builds an event only when it will be sent', () => {
    const t = manualTimers();
    const batches: Batch[] = [];
    const b = new EventBatcher((x) => batches.push(x), { maxBatch: 2, ...t });
    let built = 0;
    for (let i = 0; i < 5; i++) b.offer(() => (built++, { name: 'message.accepted', id: `a${i}`, at: i }));
    expect(built).toBe(2);
    t.fire();
    expect(batches).toEqual([{ events: [{ name: 'message.accepted', id: 'a0', at: 0 }, { name: 'message.accepted', id: 'a1', at: 1 }], dropped: 3 }]);
  });

  it('arms no timer while nothing happens, and stop() discards what waits', () => {
    const t = manualTimers();
    const batches: Batch[] = [];
    const b = new EventBatcher((x) => batches.push(x), t);
    b.push({ name: 'turn.started', id: 'x', at: 0 });
    b.stop();
    expect(b.pending).toBe(0);
    t.fire();
    expect(batches).toEqual([]);
  });
});

describe('serveInspector', () => {
  const open: Inspector[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((i) => i.close()));
  });

  it('binds 127.0.0.1 without a token by default and serves the page and the API', async () => {
    const store = memoryStore();
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store });
    await runtime.spawn('counter', { id: 'alice' });
    await runtime.ask('alice', { type: 'ping' });
    const inspector = await serveInspector(runtime);
    open.push(inspector);
    expect(inspector.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(inspector.url);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<script>');
    expect(html).not.toMatch(/(src|href)="https?:/); // nothing from the network
    const snap = await getJson(`${inspector.url}api/snapshot`);
    expect(snap.stats.residentCap).toBe(2);
    expect(snap.lru).toEqual(['alice']);
    expect(snap.agents.map((a: { id: string; state: string }) => [a.id, a.state])).toEqual([['alice', 'idle']]);
    const agent = await getJson(`${inspector.url}api/agent/alice`);
    expect(agent.rollout.map((r: { kind: string }) => r.kind)).toContain('turn.finished');
    expect((await fetch(`${inspector.url}api/agent/nobody`)).status).toBe(404);
    // A loopback server without a token refuses other Host names (DNS rebinding).
    const port = Number(new URL(inspector.url).port);
    const status = await new Promise<number>((resolve, reject) =>
      get({ host: '127.0.0.1', port, path: '/api/snapshot', headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject),
    );
    expect(status).toBe(403);
    await runtime.stop();
  });

  it("draws an agent type's own statechart and reports its state, live and as stored", async () => {
    const door = doorAgent();
    const store = memoryStore();
    const runtime = await createRuntime({ agents: [counterAgent(new Map()), door], residentCap: 1, runningCap: 1, store });
    await runtime.spawn('door', { id: 'front' });
    await runtime.spawn('counter', { id: 'alice' });
    await runtime.ask('front', { type: 'open' });
    await runtime.ask('front', { type: 'narrow' });
    const inspector = await serveInspector(runtime);
    open.push(inspector);
    const drawing = await getJson(`${inspector.url}api/machine/door`);
    expect(drawing.machineId).toBe('door');
    expect(drawing.states.map((s: { path: string[] }) => s.path.join('.'))).toEqual(['closed', 'opened', 'opened.wide', 'opened.ajar']);
    expect(drawing.edges.map((e: { source: string; target: string; lines: string[] }) => `${e.source}>${e.target}:${e.lines}`).sort()).toEqual([
      'door.closed>door.opened:open',
      'door.opened.wide>door.opened.ajar:narrow',
      'door.opened>door.closed:close',
    ]);
    // Resident: the live state value.
    let front = await getJson(`${inspector.url}api/agent/front`);
    expect(front.logic).toEqual({ kind: 'machine', drawable: true, value: { opened: 'ajar' }, resident: true });
    // The rollout keeps the state each turn left (for the timeline and the step-back slider).
    const values = (front.rollout as { kind: string; value?: unknown }[]).filter((r) => r.kind === 'snapshot').map((r) => r.value);
    expect(values).toEqual([{ opened: 'wide' }, { opened: 'ajar' }]);
    // Evicted (alice takes the only slot): the stored snapshot's value.
    await runtime.ask('alice', { type: 'ping' });
    front = await getJson(`${inspector.url}api/agent/front`);
    expect(front.agent.state).toBe('unloaded');
    expect(front.logic).toEqual({ kind: 'machine', drawable: true, value: { opened: 'ajar' }, resident: false });
    // A fromTurn agent has no statechart of its own to draw; an unknown type is a clear 404.
    const alice = await getJson(`${inspector.url}api/agent/alice`);
    expect(alice.logic).toMatchObject({ kind: 'turn', drawable: false, value: null });
    expect((alice.rollout as { kind: string }[]).filter((r) => r.kind === 'snapshot')).not.toContainEqual(expect.objectContaining({ value: expect.anything() }));
    expect((alice.rollout as { kind: string }[]).some((r) => r.kind === 'snapshot')).toBe(true);
    for (const type of ['counter', 'nope']) {
      const res = await fetch(`${inspector.url}api/machine/${type}`);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(new RegExp(`"${type}" has no statechart`));
    }
    // The lifecycle drawing is the agent machine's.
    const lifecycle = await getJson(`${inspector.url}api/lifecycle`);
    expect(lifecycle.machineId).toBe('agent');
    expect(lifecycle.states.filter((s: { depth: number }) => s.depth === 1).map((s: { key: string }) => s.key)).toEqual(
      expect.arrayContaining(['unloaded', 'loading', 'idle', 'running', 'flushing']),
    );
    await runtime.stop();
  });

  it('reads the runtime only through its public API: policy, LRU order, both queues, mailbox, rollout, logic', async () => {
    const holds = new Map<string, Deferred>();
    const store = memoryStore();
    const real = await createRuntime({ agents: [counterAgent(new Map(), holds), doorAgent()], residentCap: 2, runningCap: 1, store });
    const { runtime, read } = publicOnly(real);
    for (const id of ['alice', 'bob', 'carol']) await runtime.spawn('counter', { id });
    await runtime.spawn('door', { id: 'front' });
    await runtime.ask('front', { type: 'open' });
    // alice runs and keeps the only permit; bob, resident, waits for it; carol waits for a slot.
    const hold = deferred();
    holds.set('h', hold);
    await runtime.send('alice', { type: 'hold', key: 'h' });
    await until(() => runtime.stats().running === 1, 'alice running');
    await runtime.send('bob', { type: 'ping' });
    await until(() => runtime.residency().permitQueue.length === 1, 'bob waiting for a permit');
    await runtime.send('carol', { type: 'ping' });
    await runtime.send('carol', { type: 'ping', n: 2 });
    await until(() => runtime.residency().slotQueue.length === 1, 'carol waiting for a slot');
    const inspector = await serveInspector(runtime);
    open.push(inspector);
    const snap = await getJson(`${inspector.url}api/snapshot`);
    expect(snap).toMatchObject({ live: true, policy: 'lru', slotQueue: ['carol'], permitQueue: ['bob'] });
    expect(snap.lru).toEqual(real.residency().lru);
    expect(snap.stats).toMatchObject({ residentCap: 2, running: 1, waitingForSlot: 1, waitingForPermit: 1 });
    expect((await getJson(`${inspector.url}api/snapshot?top=1`)).permitQueue).toEqual(['bob']);
    // carol's mail waits in her mailbox; front's rollout and state (front was evicted for bob).
    const carol = await getJson(`${inspector.url}api/agent/carol`);
    expect(carol.mailbox.map((m: { message: { type: string } }) => m.message.type)).toEqual(['ping', 'ping']);
    expect(carol.logic).toEqual({ kind: 'turn', drawable: false, value: null, resident: false });
    const front = await getJson(`${inspector.url}api/agent/front`);
    expect(front.agent.state).toBe('unloaded');
    expect(front.rollout.map((r: { kind: string }) => r.kind)).toContain('snapshot');
    expect(front.logic).toEqual({ kind: 'machine', drawable: true, value: { opened: 'wide' }, resident: false });
    // Only the last entry (its eviction) asked for: the state is found further back.
    const last = await getJson(`${inspector.url}api/agent/front?rollout=1`);
    expect(last.rollout.map((r: { kind: string; note?: string }) => r.note ?? r.kind)).toEqual(['evicted']);
    expect(last.logic).toEqual({ kind: 'machine', drawable: true, value: { opened: 'wide' }, resident: false });
    expect((await getJson(`${inspector.url}api/machine/door`)).machineId).toBe('door');
    for (const name of read) expect(['spawn', 'ask', 'send', ...PUBLIC_READS], name).toContain(name);
    for (const name of ['residency', 'mailbox', 'history', 'timers', 'machineOf', 'logicValue']) expect(read.has(name), name).toBe(true);
    hold.resolve();
    await real.stop();
  });

  it('accepts the store option of old, and needs it no more', async () => {
    const store = memoryStore();
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store });
    await runtime.spawn('counter', { id: 'alice' });
    await runtime.ask('alice', { type: 'ping' });
    const inspector = await serveInspector(runtime, { store });
    open.push(inspector);
    const alice = await getJson(`${inspector.url}api/agent/alice`);
    expect(alice.rollout.map((r: { kind: string }) => r.kind)).toContain('turn.finished');
    await runtime.stop();
  });

  it('refuses a token shorter than 16 characters and an invalid port', async () => {
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store: memoryStore() });
    expect(() => serveInspector(runtime, { token: 'short' })).toThrow(TypeError);
    expect(() => serveInspector(runtime, { port: -1 })).toThrow(/port/);
    await runtime.stop();
  });
});

/** Status, content type and body of a GET (the path sent as it is, percent-encoding included). */
async function getText(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

describe('the API refuses what it cannot read with 400, and says 404 for an unknown agent', () => {
  it.each(['live', 'stored'])('%s', async (kind) => {
    const store = memoryStore();
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store });
    await runtime.spawn('counter', { id: 'alice' });
    const inspector = kind === 'live' ? await serveInspector(runtime) : await serveStoredInspector(store);
    try {
      for (const path of ['api/agent/%E0%A4%A', 'api/agent/%', 'api/agent/%C0%AF', 'api/machine/%E0%A4%A']) {
        const r = await getText(`${inspector.url}${path}`);
        expect([r.status, r.type], path).toEqual([400, 'text/plain; charset=utf-8']);
        expect(r.body, path).toMatch(/^Bad request: malformed percent-encoding in the path\n$/);
      }
      for (const id of ['..%2Fetc', 'has%20space', 'x'.repeat(256), '-dash-first', 'esc%1B%5B2J']) {
        const r = await getText(`${inspector.url}api/agent/${id}`);
        expect([r.status, r.type], id).toEqual([400, 'text/plain; charset=utf-8']);
        expect(r.body, id).toMatch(/^Bad request: not an agent id: ids are 1–255 characters/);
        expect(r.body, id).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
      }
      const unknown = await getText(`${inspector.url}api/agent/nobody`);
      expect([unknown.status, unknown.type, unknown.body]).toEqual([404, 'text/plain; charset=utf-8', 'Agent "nobody" does not exist\n']);
      expect((await getText(`${inspector.url}api/agent/alice`)).status).toBe(200);
    } finally {
      await inspector.close();
      await runtime.stop();
    }
  });
});

describe('serveStoredInspector', () => {
  it('shows a stored database read-only, every agent unloaded, with its rollout', async () => {
    const store = memoryStore();
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store });
    await runtime.spawn('counter', { id: 'alice' });
    await runtime.ask('alice', { type: 'ping' });
    // A second store view over the same data: the runtime is still using it, the view only reads.
    const inspector = await serveStoredInspector(store);
    try {
      const snap = await getJson(`${inspector.url}api/snapshot`);
      expect(snap.live).toBe(false);
      expect(snap.stats).toBeNull();
      expect(snap.agents.map((a: { id: string; state: string }) => [a.id, a.state])).toEqual([['alice', 'unloaded']]);
      const agent = await getJson(`${inspector.url}api/agent/alice`);
      expect(agent.agent.turns).toBe(1);
      // No definitions here: the logic's stored state is shown, nothing drawn.
      expect(agent.logic).toMatchObject({ kind: 'unknown', drawable: false, resident: false });
      expect((await fetch(`${inspector.url}api/machine/counter`)).status).toBe(404);
      expect(agent.rollout.some((r: { kind: string }) => r.kind === 'accepted')).toBe(true);
      const post = await fetch(`${inspector.url}api/snapshot`, { method: 'POST' });
      expect(post.status).toBe(405);
    } finally {
      await inspector.close();
      await runtime.stop();
    }
  });
});

describe('a damaged agent: the overview leaves it out and names it; its page says what is damaged', () => {
  const dir = mkdtempSync(join(tmpdir(), 'residency-inspector-damage-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ids = (agents: { id: string }[]) => agents.map((a) => a.id);

  // (Damage deep in an agent's history, such as old pages, is not read by the O(page) overview.)
  it.each<Damage>(['snapshot', 'rollout'])('stored: b %s', async (damage) => {
    const path = join(dir, `stored-${damage}.db`);
    await damagedDatabase(path, damage);
    const store = sqliteStore(path, { readonly: true });
    const inspector = await serveStoredInspector(store);
    try {
      const snap = await getJson(`${inspector.url}api/snapshot`);
      expect(ids(snap.agents)).toEqual(['a', 'c']);
      expect(snap.damaged).toEqual([{ id: 'b', error: expect.stringMatching(DAMAGE_SAID[damage]) }]);
      const b = await fetch(`${inspector.url}api/agent/b`);
      expect(b.status).toBe(200);
      expect(await b.json()).toEqual({ live: false, id: 'b', error: expect.stringMatching(DAMAGE_SAID[damage]) });
      const a = await getJson(`${inspector.url}api/agent/a`);
      expect(a.agent).toMatchObject({ id: 'a', state: 'unloaded', turns: 1 });
      // Nothing damaged: an empty list.
      expect((await getJson(`${inspector.url}api/snapshot?type=none`)).damaged).toEqual([]);
    } finally {
      await inspector.close();
      await store.close();
    }
  });

  it("live: the runtime's list reads counters only (b's row is readable); b's page says what is damaged", async () => {
    const path = join(dir, 'live-rollout.db');
    await damagedDatabase(path, 'rollout');
    const store = sqliteStore(path);
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store });
    const inspector = await serveInspector(runtime);
    try {
      // O(page): the listing never reads an agent's history, so damage there shows on its page.
      const snap = await getJson(`${inspector.url}api/snapshot`);
      expect(ids(snap.agents)).toEqual(['a', 'b', 'c']);
      expect(snap.damaged).toEqual([]);
      const b = await fetch(`${inspector.url}api/agent/b`);
      expect(b.status).toBe(200);
      expect(await b.json()).toEqual({ live: true, id: 'b', error: expect.stringMatching(DAMAGE_SAID.rollout) });
      expect((await getJson(`${inspector.url}api/agent/c`)).agent).toMatchObject({ id: 'c', turns: 1 });
    } finally {
      await inspector.close();
      await runtime.stop();
    }
  });
});

describe("an agent's pending timers (issue 14)", () => {
  it('runtime.timers lists them earliest first, validates like history, and the API answers with them, live and stored', async () => {
    const clock = manualClock(1_000);
    const store = memoryStore();
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store, clock });
    await runtime.spawn('counter', { id: 'alice' });
    await runtime.spawn('counter', { id: 'bob' });
    await runtime.schedule('alice', { type: 'later' }, { key: 'b-late', delay: 60_000 });
    await runtime.schedule('alice', { type: 'sooner' }, { key: 'a-soon', delay: 12_000 });
    const timers = await runtime.timers('alice');
    expect(timers.map((t) => [t.key, t.at, t.message.type])).toEqual([['a-soon', 13_000, 'sooner'], ['b-late', 61_000, 'later']]);
    expect((await runtime.timers('alice', { limit: 1 })).map((t) => t.key)).toEqual(['a-soon']);
    expect(await runtime.timers('bob')).toEqual([]);
    await expect(runtime.timers('has space')).rejects.toThrow(TypeError);
    await expect(runtime.timers('alice', { limit: 0 })).rejects.toThrow(TypeError);

    const { runtime: seen, read } = publicOnly(runtime);
    const inspector = await serveInspector(seen);
    const stored = await serveStoredInspector(store);
    try {
      for (const url of [inspector.url, stored.url]) {
        const alice = await getJson(`${url}api/agent/alice`);
        expect(alice.agent.timers).toBe(2);
        expect(alice.timers).toMatchObject({
          count: 2,
          next: 13_000,
          list: [
            { key: 'a-soon', at: 13_000, type: 'sooner' },
            { key: 'b-late', at: 61_000, type: 'later' },
          ],
        });
        expect(typeof alice.timers.now).toBe('number');
        // `?timers=1` lists the earliest only; the count stays the agent's.
        const one = await getJson(`${url}api/agent/alice?timers=1`);
        expect(one.timers).toMatchObject({ count: 2, next: 13_000, list: [{ key: 'a-soon' }] });
        const bob = await getJson(`${url}api/agent/bob`);
        expect(bob.timers).toMatchObject({ count: 0, next: null, list: [] });
      }
      expect(read.has('timers')).toBe(true);
      // Cancelled, it is gone from the API.
      expect(await runtime.cancelSchedule('alice', 'a-soon')).toBe(true);
      const after = await getJson(`${inspector.url}api/agent/alice`);
      expect(after.timers).toMatchObject({ count: 1, next: 61_000, list: [{ key: 'b-late' }] });
    } finally {
      await inspector.close();
      await stored.close();
      await runtime.stop();
    }
  });
});
