/**
 * Regenerates the inspector screenshots in docs/ (docs/inspector-overview.png,
 * docs/inspector-agent.png, docs/inspector-logic.png): runs a small swarm in memory, holds a few turns open so
 * the picture shows running agents and a queue, and photographs both pages in headless
 * Chromium (Debian's `chromium`, found on PATH; playwright-core never downloads one).
 *
 *   npx tsx scripts/screenshots.ts
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createMachine } from 'xstate';
import { createRuntime } from '../src/createRuntime.js';
import { defineAgent } from '../src/defineAgent.js';
import { fromTurn } from '../src/fromTurn.js';
import { serveInspector } from '../src/inspector/serveInspector.js';
import { memoryStore } from '../src/store/memoryStore.js';

const docs = (name: string) => fileURLToPath(new URL(`../docs/${name}`, import.meta.url));

const executablePath = (() => {
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('No `chromium` on PATH: apt-get install -y chromium');
  }
})();

// Turns on `slow` messages wait until released, so running agents are visible.
const held: (() => void)[] = [];
const chat = defineAgent({
  type: 'chat',
  logic: fromTurn<{ said: number }>(
    async ({ state, message, emit }) => {
      if (message.type === 'slow') await new Promise<void>((resolve) => held.push(resolve));
      emit({ reply: `seen ${message.type}` });
      return { said: state.said + 1 };
    },
    { initialState: { said: 0 } },
  ),
});

// An agent whose logic is a statechart of its own: the agent page draws it too.
const ticket = defineAgent({
  type: 'ticket',
  logic: createMachine({
    id: 'ticket',
    initial: 'open',
    states: {
      open: { on: { triage: 'triaged', comment: {} } },
      triaged: { on: { assign: 'working', close: 'closed' } },
      working: {
        initial: 'drafting',
        on: { close: 'closed', comment: {} },
        states: {
          drafting: { on: { submit: 'reviewing' } },
          reviewing: { on: { approve: '#ticket.closed', reject: 'drafting' } },
        },
      },
      closed: { on: { reopen: 'open' } },
    },
  }),
});

const store = memoryStore();
const runtime = await createRuntime({ agents: [chat, ticket], residentCap: 4, runningCap: 2, store });
const ids = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
for (const id of ids) await runtime.spawn('chat', { id });
// A history for alice: turns, then an eviction (others take her slot), then a reload.
await runtime.ask('alice', { type: 'hello' });
await runtime.ask('alice', { type: 'question' });
for (const id of ['bob', 'carol', 'dave', 'erin']) await runtime.ask(id, { type: 'hello' });
await runtime.ask('alice', { type: 'follow-up' });
await runtime.spawn('ticket', { id: 'ticket-7' });
for (const type of ['triage', 'assign', 'submit']) await runtime.ask('ticket-7', { type });
// Two held turns (the running cap), one agent waiting for a permit.
for (const id of ['bob', 'carol', 'dave']) await runtime.send(id, { type: 'slow' });

const inspector = await serveInspector(runtime);
const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  await page.goto(inspector.url);
  await page.waitForSelector('tr[data-agent="bob"][data-state="running"]');
  await page.waitForSelector('#conn.ok');
  await page.screenshot({ path: docs('inspector-overview.png'), fullPage: true });

  await page.goto(`${inspector.url}#/agent/alice`);
  await page.waitForSelector('#timeline li[data-kind="evicted"]');
  await page.waitForSelector('#statechart g.node.lit');
  await page.screenshot({ path: docs('inspector-agent.png'), fullPage: true });

  await page.goto(`${inspector.url}#/agent/ticket-7`);
  await page.waitForSelector('#logicchart[data-lit="working working.reviewing"]');
  await page.screenshot({ path: docs('inspector-logic.png'), fullPage: true });
  console.log('wrote docs/inspector-overview.png, docs/inspector-agent.png and docs/inspector-logic.png');
} finally {
  await browser.close();
  await inspector.close();
  for (const release of held.splice(0)) release();
  await runtime.stop();
  for (const release of held.splice(0)) release();
}
