/**
 * The runtime holds the process open while it has work (a turn, waiting mail, an ask) and
 * not when it is idle: a script whose last line is `await runtime.ask(...)` prints its
 * answer, and a script that leaves an idle runtime running still exits.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('./fixtures/keepAlive.ts', import.meta.url));
const run = (mode: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, mode], { encoding: 'utf8', timeout: 60_000 });

describe('keeping the process alive', () => {
  it('an awaited ask keeps the process alive until it is answered', () => {
    const r = run('ask');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('{"n":1}');
    expect(r.status).toBe(0);
  });

  it('an idle runtime does not keep the process alive', () => {
    const r = run('idle');
    expect(r.stdout.trim()).toBe('idle');
    expect(r.status).toBe(0);
    expect(r.signal).toBeNull();
  });
});
