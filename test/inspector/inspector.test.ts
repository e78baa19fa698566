/**
 * The inspector in a real browser: Debian's `chromium` driven by playwright-core (which
 * never downloads a browser). Skips, loudly, only when no `chromium` is on PATH.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_ARGS, findChromium } from './chromium.js';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { serveInspector, serveStoredInspector, type Inspector } from '../../src/inspector/serveInspector.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import type { Store } from '../../src/store/Store.js';
import { counterAgent, deferred, doorAgent, type Deferred } from '../runtime/helpers.js';
import { damagedDatabase } from './damagedDatabase.js';


const executablePath = findChromium();
const ARTIFACTS = 'test-artifacts';

if (!executablePath) {
  console.warn('\n*** test/inspector: SKIPPED browser tests: no `chromium` on PATH (apt-get install -y chromium) ***\n');
}

describe.skipIf(!executablePath)('inspector in headless Chromium', () => {
  let browser: Browser;
  let page: Page;
  let runtime: Runtime;
  let store: Store;
  let inspector: Inspector;
  const holds = new Map<string, Deferred>();

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    store = memoryStore();
    const door = doorAgent();
    runtime = await createRuntime({ agents: [counterAgent(new Map(), holds), door], residentCap: 1, runningCap: 1, store });
    await runtime.spawn('counter', { id: 'alice' });
    inspector = await serveInspector(runtime);
    browser = await chromium.launch({
      executablePath: executablePath!,
      args: CHROMIUM_ARGS,
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  });

  afterAll(async () => {
    await browser?.close();
    await inspector?.close();
    await runtime?.stop();
  });

  it('shows an agent change state on the overview after a send', async () => {
    await page.goto(inspector.url);
    await page.waitForSelector('tr[data-agent="alice"][data-state="unloaded"]');
    await page.waitForSelector('#conn.ok');
    await runtime.send('alice', { type: 'ping' });
    await page.waitForSelector('tr[data-agent="alice"][data-state="idle"]');
    await page.waitForSelector('[data-stat="resident cap"] .v >> text=1');
    // The supervisor's books, read through runtime.residency(): its policy and the LRU order.
    await page.waitForSelector('h2 >> text=Supervisor · policy lru');
    await page.waitForSelector('section:has(h2:text("LRU order")) .ids a >> text=alice');
    // Loads, evictions and hit rate have their small charts over time.
    for (const stat of ['loads', 'evictions', 'hit rate']) expect(await page.locator(`[data-stat="${stat}"] svg polyline`).count(), stat).toBe(1);
    await page.screenshot({ path: `${ARTIFACTS}/inspector-overview.png`, fullPage: true });
  });

  it('lights the current lifecycle state on the agent page: idle, running, idle', async () => {
    await page.goto(`${inspector.url}#/agent/alice`);
    await page.waitForSelector('#statechart g.node.lit[data-state="idle"]');
    expect(await page.locator('#statechart g.node.lit').count()).toBe(1);

    const hold = deferred();
    holds.set('h1', hold);
    await runtime.send('alice', { type: 'hold', key: 'h1' });
    await page.waitForSelector('#statechart g.node.lit[data-state="running"]');
    await page.waitForSelector('#timeline li[data-kind="turn.started"]');
    hold.resolve();
    await page.waitForSelector('#statechart g.node.lit[data-state="idle"]');
    await page.waitForSelector('#timeline li[data-kind="turn.finished"][data-outcome="done"]');
  });

  it('shows an eviction in the timeline', async () => {
    // The cap is 1: bob's load evicts alice.
    await runtime.spawn('counter', { id: 'bob' });
    await runtime.send('bob', { type: 'ping' });
    await page.waitForSelector('#timeline li[data-kind="evicted"]');
    await page.waitForSelector('#statechart g.node.lit[data-state="unloaded"]');
    await page.screenshot({ path: `${ARTIFACTS}/inspector-agent.png`, fullPage: true });
  });

  it("draws an agent's own statechart and lights its state as messages move it", async () => {
    await runtime.spawn('door', { id: 'front' });
    await runtime.ask('front', { type: 'open' });
    await page.goto(`${inspector.url}#/agent/front`);
    await page.waitForSelector('#statechart g.node.lit[data-state="idle"]');
    await page.waitForSelector('#logicchart[data-lit="opened opened.wide"]');
    expect(await page.locator('#logicchart g.node').count()).toBe(4);
    expect(await page.locator('#logicchart g.node.lit').count()).toBe(2);
    expect(await page.locator('#logicchart path.edge.fired').count()).toBe(0);
    await runtime.send('front', { type: 'narrow' });
    await page.waitForSelector('#logicchart[data-lit="opened opened.ajar"]');
    // The transition just taken is the one that flashes.
    // (attached, not visible: a straight path has an empty box to playwright)
    await page.waitForSelector('#logicchart path.edge.fired[data-edge="door.opened.wide>door.opened.ajar"]', { state: 'attached' });
    expect(await page.locator('#logicchart path.edge.fired').count()).toBe(1);
    await page.waitForSelector('#timeline li[data-kind="snapshot"] >> text=state {"opened":"ajar"}');
    await page.screenshot({ path: `${ARTIFACTS}/inspector-logic.png`, fullPage: true });
    // Stepping back to just after the first turn lights the state that turn left.
    const kinds = await Promise.all((await page.locator('#timeline li').all()).map((li) => li.getAttribute('data-kind')));
    const slider = page.locator('input[type=range]');
    await slider.fill(String(kinds.indexOf('snapshot') + 1));
    await page.waitForSelector('#logicchart[data-lit="opened opened.wide"]');
    await page.waitForSelector('#statechart g.node.lit[data-state="running"]');
    await slider.fill(String(kinds.length));
    await page.waitForSelector('#logicchart[data-lit="opened opened.ajar"]');
    // Evicted (alice takes the slot): the stored state stays lit, marked as stored.
    await runtime.send('alice', { type: 'ping' });
    await page.waitForSelector('#statechart g.node.lit[data-state="unloaded"]');
    await page.waitForSelector('#logic-info >> text=(as stored)');
    await page.waitForSelector('#logicchart[data-lit="opened opened.ajar"]');
  });

  it('says when the rollout shown is not the whole history, and steps back from an unknown state', async () => {
    await runtime.spawn('counter', { id: 'carol' });
    for (let i = 0; i < 60; i++) await runtime.ask('carol', { type: 'ping' }); // 4 entries a turn: over 200
    await page.goto(`${inspector.url}#/agent/carol`);
    await page.waitForSelector('text=the latest 200 entries');
    expect(await page.locator('#timeline li').count()).toBe(200);
    // (The window starts on an entry that does not set the lifecycle state.)
    expect(['accepted', 'snapshot', 'output']).toContain(await page.locator('#timeline li').first().getAttribute('data-kind'));
    const slider = page.locator('input[type=range]');
    await slider.fill('1');
    // The first entry shown does not say which lifecycle state the agent was in: nothing is lit.
    await page.waitForSelector('#statechart[data-lit=""]', { state: 'attached' });
    await slider.fill('200');
    await page.waitForSelector('#statechart g.node.lit[data-state="idle"]');
  });

  it('says so in the page, without throwing, for a malformed, invalid or unknown agent link', async () => {
    const errors: string[] = [];
    const onError = (e: Error) => void errors.push(e.message);
    page.on('pageerror', onError);
    try {
      await page.goto(`${inspector.url}#/agent/%E0%A4%A`);
      await page.waitForSelector('#route-error >> text=Not an agent link: its id has malformed percent-encoding (%E0%A4%A)');
      await page.waitForSelector('#route-error a[href="#/"]');
      // From another page too (a hash change, no reload).
      await page.goto(`${inspector.url}#/agent/alice`);
      await page.waitForSelector('#statechart');
      await page.evaluate("location.hash = '#/agent/%'");
      await page.waitForSelector('#route-error >> text=Not an agent link');
      // The server's 400 and 404, in words.
      await page.goto(`${inspector.url}#/agent/has%20space`);
      await page.waitForSelector('.agent-head >> text=Bad request: not an agent id');
      await page.goto(`${inspector.url}#/agent/nobody`);
      await page.waitForSelector('.agent-head >> text=Agent "nobody" does not exist');
    } finally {
      page.off('pageerror', onError);
    }
    expect(errors).toEqual([]);
  });

  it("names a damaged agent on the overview, and says what is damaged on its page", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'residency-inspector-page-'));
    await damagedDatabase(join(dir, 'damaged.db'), 'snapshot');
    const stored = sqliteStore(join(dir, 'damaged.db'), { readonly: true });
    const view = await serveStoredInspector(stored);
    const errors: string[] = [];
    const onError = (e: Error) => void errors.push(e.message);
    page.on('pageerror', onError);
    try {
      await page.goto(view.url);
      await page.waitForSelector('tr[data-agent="c"]');
      expect(await page.locator('tr[data-agent]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-agent')))).toEqual(['a', 'c']);
      const notice = page.locator('#damaged');
      expect(await notice.textContent()).toMatch(/^1 agent could not be read: b$/);
      expect(await notice.locator('a').getAttribute('title')).toMatch(/^its snapshot is not valid JSON/);
      await page.screenshot({ path: `${ARTIFACTS}/inspector-damaged.png`, fullPage: true });
      await notice.locator('a[href="#/agent/b"]').click();
      await page.waitForSelector('#agent-error >> text=Agent "b" could not be read: its snapshot is not valid JSON');
      // No chart, timeline or mailbox of an agent that cannot be read.
      expect(await page.locator('#statechart, #timeline, #mailbox').count()).toBe(0);
      await page.waitForSelector('#agent-error a[href="#/"]');
      // The others still open.
      await page.goto(`${view.url}#/agent/a`);
      await page.waitForSelector('#timeline li[data-kind="turn.finished"]');
    } finally {
      page.off('pageerror', onError);
      await view.close();
      await stored.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(errors).toEqual([]);
  });

  it("shows an agent's pending timers: the count, the next deadline and the list, escaped", async () => {
    await runtime.spawn('counter', { id: 'tim' });
    const evil = '<img src=x onerror="window.__pwned=1">';
    await runtime.schedule('tim', { type: 'remind' }, { key: 'soon', delay: 50_000 });
    await runtime.schedule('tim', { type: evil }, { key: '<b>later</b>', delay: 2 * 3_600_000 });
    await page.goto(`${inspector.url}#/agent/tim`);
    await page.waitForSelector('h2 >> text=Timers · 2');
    expect(await page.locator('#timers-next').textContent()).toMatch(/^next \d\d:\d\d:\d\d\.\d{3} \(in \d+ s\)$/);
    const items = await page.locator('#timers li').allTextContents();
    expect(items).toHaveLength(2);
    expect(items[0]).toMatch(/^soon · \d\d:\d\d:\d\d\.\d{3} \(in \d+ s\) · remind$/);
    expect(items[1]).toMatch(/^<b>later<\/b> · .+ \(in 2 h\) · <img src=x onerror="window.__pwned=1">$/);
    // Shown as text, never as markup.
    expect(await page.locator('#timers img, #timers b').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.screenshot({ path: `${ARTIFACTS}/inspector-timers.png`, fullPage: true });
    // An agent without timers says so.
    await page.goto(`${inspector.url}#/agent/alice`);
    await page.waitForSelector('h2 >> text=Timers · 0');
    await page.waitForSelector('#timers li.empty >> text=none pending');
  });

  it('refuses requests without the token when bound to a non-loopback host', async () => {
    const open = await serveInspector(runtime, { host: '0.0.0.0' });
    try {
      const url = new URL(open.url);
      const token = url.searchParams.get('token');
      expect(token).toMatch(/^[\w-]{24,}$/);
      const base = `http://127.0.0.1:${url.port}`;
      for (const path of ['/', '/api/snapshot', '/api/lifecycle', '/api/machine/door', '/api/agent/alice', '/events']) {
        expect((await fetch(base + path)).status, path).toBe(403);
        expect((await fetch(`${base}${path}?token=wrong-${token}`)).status, path).toBe(403);
      }
      expect((await fetch(`${base}/api/snapshot?token=${token}`)).status).toBe(200);
      // The page carries the token on to its own requests.
      await page.goto(`${base}/?token=${token}`);
      await page.waitForSelector('tr[data-agent="alice"]');
      await page.waitForSelector('#conn.ok');
    } finally {
      await open.close();
    }
  });
});
