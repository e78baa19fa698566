import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import type { Io } from '../src/cli/format.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'residency-cli-'));
const db = join(dir, 'demo.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `main` in-process and collects what it printed. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), isTTY: false };
  const code = await main(argv, io);
  return { code, out, err };
}

describe('residency demo', () => {
  let run: { code: number; out: string; err: string };
  beforeAll(async () => {
    run = await cli('demo', '--agents', '50', '--cap', '8', '--running', '3', '--duration', '1', '--seed', '7', '--db', db);
  });

  it('runs the real runtime to its exactly-once line, checked from the store', () => {
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/^residency demo: 50 agents \(4 pinned roots\), resident cap 8, running cap 3/);
    expect(run.out).toMatch(/agents +50 in the store/);
    expect(run.out).toMatch(/reload latency +p50 [\d.]+ ms +p99 [\d.]+ ms/);
    expect(run.out).toMatch(/turn latency +p50 [\d.]+ ms +p99 [\d.]+ ms/);
    expect(run.out.trimEnd().split('\n').at(-1)).toBe('every accepted message handled exactly once: yes');
    const evictions = Number(/(\d+) evictions/.exec(run.out)?.[1]);
    expect(evictions).toBeGreaterThan(0); // 50 agents through 8 slots
  });

  it('ls lists every agent of the database it leaves, as a table and as JSON', async () => {
    const table = await cli('ls', '--db', db);
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +TYPE +PARENT +PINNED +STATE +MAILBOX +TURNS +LAST ACTIVE$/);
    expect(lines.at(-1)).toBe('50 agents (stored: none resident)');
    expect(lines.find((l) => l.startsWith('root-0'))).toMatch(/^root-0 +root +- +yes +unloaded +0 +\d+/);

    const json = JSON.parse((await cli('ls', '--db', db, '--type', 'worker', '--json')).out) as { agents: { id: string; type: string; parent: string; mailbox: number }[] };
    expect(json.agents).toHaveLength(46);
    expect(json.agents.every((a) => a.type === 'worker' && a.parent.startsWith('root-') && a.mailbox === 0)).toBe(true);

    const resident = await cli('ls', '--db', db, '--resident');
    expect(resident.out).toMatch(/no resident agents: nothing is resident in a stored database/);
    expect(JSON.parse((await cli('ls', '--db', db, '--resident', '--json')).out).agents).toEqual([]);
  });

  it('show prints identity, state, mailbox and the rollout', async () => {
    const r = await cli('show', 'agent-0000', '--db', db, '--last', '5');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^id +agent-0000$/m);
    expect(r.out).toMatch(/^parent +root-0$/m);
    expect(r.out).toMatch(/^state +unloaded/m);
    expect(r.out).toMatch(/^mailbox +empty$/m);
    expect(r.out).toMatch(/rollout \(last 5 entries\)/);
    const json = JSON.parse((await cli('show', 'root-1', '--db', db, '--json')).out) as { info: { pinned: boolean }; children: string[]; rollout: unknown[] };
    expect(json.info.pinned).toBe(true);
    expect(json.children.length).toBeGreaterThan(0);
    expect(json.rollout.length).toBeGreaterThan(0);

    const missing = await cli('show', 'nobody', '--db', db);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/"nobody"/);
  });

  it('stats counts what the store holds', async () => {
    const r = await cli('stats', '--db', db);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^agents +50 \(4 root, 46 worker\), 4 pinned$/m);
    expect(r.out).toMatch(/^resident +0: nothing is resident/m);
    const json = JSON.parse((await cli('stats', '--db', db, '--json')).out) as { agents: number; messages: { accepted: number; handled: number; pending: number } };
    expect(json.agents).toBe(50);
    expect(json.messages.handled).toBe(json.messages.accepted);
    expect(json.messages.pending).toBe(0);
  });

  it('says so when there is no database, and creates none', async () => {
    const r = await cli('stats', '--db', join(dir, 'absent.db'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/No database at ".*absent\.db": run `residency demo` first/);
  });
});

describe('bad arguments', () => {
  it.each([
    [['demo', '--cap', '0'], /Expected --cap to be an integer ≥ 1, got `0`/],
    [['demo', '--cap', '4', '--running', '5'], /--running \(5\) to be ≤ --cap \(4\)/],
    [['demo', '--duration', 'soon'], /Expected --duration to be an integer ≥ 0, got `soon`/],
    [['demo', '--bogus'], /Unknown option '--bogus'/],
    [['ls', 'extra'], /Unexpected argument 'extra'/],
    [['show'], /show needs an agent id/],
    [['frobnicate'], /unknown command `frobnicate`/],
    [[], /no command given/],
  ])('%j exits 2 with the usage', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toContain('usage: residency <command>');
    expect(r.out).toBe('');
  });
});

describe('Ctrl-C during the demo', () => {
  it('stops sending, stops the runtime, prints the report and exits 0', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/bin.ts', 'demo', '--agents', '200', '--cap', '8', '--running', '2', '--duration', '60', '--seed', '3', '--db', join(dir, 'sigint.db')],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // The first progress line: the demo is sending and agents are running.
      if (!sent && /\naccepted \d+ +handled/.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(sent).toBe(true);
    expect(err).toMatch(/stopping \(Ctrl-C again to exit at once\)/);
    expect(code).toBe(0);
    expect(out).toMatch(/stopped by Ctrl-C after/);
    expect(out).toMatch(/every accepted message handled exactly once: (yes|no \(\d+ not handled: \d+ pending in their durable mailboxes; none handled twice\))/);
  });
});
