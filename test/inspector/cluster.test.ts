/**
 * The inspector over a runtime on a shared store (postgresStore): the overview names this
 * process's member id and shards, and lists every member of the cluster with its shards.
 * Needs Debian's `chromium` and a PostgreSQL server (each skips, saying so, without).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_ARGS, findChromium } from './chromium.js';
import { chromium, type Browser } from 'playwright-core';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { serveInspector, type Inspector } from '../../src/inspector/serveInspector.js';
import { postgresStore } from '../../src/postgres.js';
import { counterAgent } from '../runtime/helpers.js';
import { pgTest } from '../store/pgTest.js';

const executablePath = findChromium();
if (!executablePath) console.warn('\n*** test/inspector/cluster: SKIPPED: no `chromium` on PATH (apt-get install -y chromium) ***\n');
const pg = await pgTest('inspcluster');

describe.skipIf(!executablePath || !pg.available)('the inspector shows the cluster', () => {
  let browser: Browser;
  const runtimes: Runtime[] = [];
  let inspector: Inspector;

  beforeAll(async () => {
    const schema = pg.schema();
    for (let i = 0; i < 2; i++) {
      const store = postgresStore({ connectionString: pg.url, schema, shards: 16, leaseTtl: 1_000 });
      runtimes.push(await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store }));
    }
    inspector = await serveInspector(runtimes[0]!);
    browser = await chromium.launch({
      executablePath: executablePath!,
      args: CHROMIUM_ARGS,
    });
  });

  afterAll(async () => {
    await browser?.close();
    await inspector?.close();
    for (const r of runtimes) await r.stop();
  });

  it('names this member and its shards, and lists both members with theirs', async () => {
    const page = await browser.newPage();
    await page.goto(inspector.url);
    const member = runtimes[0]!.stats().cluster!.member!;
    await page.waitForSelector(`h2 >> text=/Cluster · this process is member ${member}, owns \\d+ of 16 shards/`);
    // Both members, each with its share once the cluster has rebalanced (8 + 8).
    await page.waitForFunction(
      `(() => { const cells = [...document.querySelectorAll('#members tr[data-member] td.num')].map((td) => Number(td.textContent));
         return cells.length === 2 && cells.every((n) => n === 8); })()`,
      undefined,
      { timeout: 20_000 },
    );
    expect(await page.locator(`#members tr[data-member="${member}"] td`).first().textContent()).toBe(`${member} (this one)`);
    expect(await page.locator('[data-stat="unowned shards"] .v').textContent()).toBe('0');
  });
});
