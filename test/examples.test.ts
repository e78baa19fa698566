import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'residency-examples-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs an example as `npx tsx examples/<file> [args]` would, and returns its exit code and output. */
async function run(file: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', `examples/${file}`, ...args], { cwd: root, timeout: 60_000 });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('examples/chat-agents.ts', () => {
  it('the lead spawns six helpers through a cap of 3 and collects every answer (memoryStore)', async () => {
    const r = await run('chat-agents.ts');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^lead: "review the parser": 6 of 6 helpers answered$/m);
    expect(r.stdout).toMatch(/^ {2}lead\.helper-1: looked at src\/parser\.ts$/m);
    expect(r.stdout).toMatch(/^6 helpers exist; [0-3] resident \(cap 3\); [1-9]\d* evictions so far$/m);
  });

  it('keeps its agents in a database across runs (sqliteStore)', async () => {
    const db = join(dir, 'chat.db');
    expect((await run('chat-agents.ts', db)).code).toBe(0);
    const again = await run('chat-agents.ts', db);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/12 of 12 helpers answered/);
  });
});

describe('examples/order-workflow.ts', () => {
  it('walks the order machine to delivered, evicted between every step', async () => {
    const r = await run('order-workflow.ts');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n').map((l) => l.replace(/\s+/g, ' '))).toEqual([
      'item.added → cart total 120',
      'item.added → cart total 160',
      'order.placed → awaitingPayment total 160',
      'billing answered: 4 turns so far, the order is idle (the reply reloaded it)',
      'shipped → shipped total 160',
      'delivered → delivered total 160',
      'final: delivered',
    ]);
  });

  it('runs on a sqlite database too', async () => {
    const r = await run('order-workflow.ts', join(dir, 'orders.db'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^final: delivered$/m);
  });
});
