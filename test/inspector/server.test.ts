/**
 * The inspector's server and its parts, without a browser: event batching, the
 * lifecycle layout, the JSON API, the stored (read-only) view.
 */
import { get } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/createRuntime.js';
import { EventBatcher, type Batch } from '../../src/inspector/EventBatcher.js';
import { lifecycleGraph } from '../../src/inspector/lifecycleGraph.js';
import { serveInspector, serveStoredInspector, type Inspector } from '../../src/inspector/serveInspector.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { counterAgent } from '../runtime/helpers.js';

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

describe('lifecycleGraph', () => {
  it('draws every top-level lifecycle state once, ranked left to right from unloaded', () => {
    const g = lifecycleGraph();
    expect(g.nodes.map((n) => n.key).sort()).toEqual(['destroyed', 'failed', 'flushing', 'idle', 'loading', 'running', 'settling', 'unloaded']);
    const rank = Object.fromEntries(g.nodes.map((n) => [n.key, n.rank]));
    expect(rank.unloaded).toBe(0);
    expect(rank.loading).toBeLessThan(rank.idle!);
    expect(rank.idle).toBeLessThan(rank.running!);
    expect(g.nodes.find((n) => n.key === 'unloaded')!.children).toEqual(['dormant', 'waitingForSlot', 'backoff']);
    for (const e of g.edges) expect(e.back || rank[e.source]! < rank[e.target]!, `${e.source}→${e.target}`).toBe(true);
    expect(g.edges.find((e) => e.source === 'idle' && e.target === 'running')?.events.join()).toContain('permit.granted');
    expect(g.fromAnyState.map((t) => t.target)).toContain('destroyed');
    // No two boxes overlap.
    for (const a of g.nodes) for (const b of g.nodes) {
      if (a === b) continue;
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      expect(apart, `${a.key} overlaps ${b.key}`).toBe(true);
    }
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
    const inspector = await serveInspector(runtime, { store });
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

  it('refuses a token shorter than 16 characters and an invalid port', async () => {
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store: memoryStore() });
    expect(() => serveInspector(runtime, { token: 'short' })).toThrow(TypeError);
    expect(() => serveInspector(runtime, { port: -1 })).toThrow(/port/);
    await runtime.stop();
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
      expect(agent.rollout.some((r: { kind: string }) => r.kind === 'accepted')).toBe(true);
      const post = await fetch(`${inspector.url}api/snapshot`, { method: 'POST' });
      expect(post.status).toBe(405);
    } finally {
      await inspector.close();
      await runtime.stop();
    }
  });
});
