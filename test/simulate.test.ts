import { describe, expect, it, vi } from 'vitest';
import { simulate } from '../src/simulate.js';

describe('simulation of the two statecharts', () => {
  it('handles every message once and never passes either cap', () => {
    for (const seed of [1, 2, 3]) {
      const s = simulate({ agents: 200, residentCap: 8, runningCap: 3, messages: 2000, seed });
      expect(s.handled, `seed ${seed}`).toBe(s.accepted);
      expect(s.accepted).toBeGreaterThanOrEqual(1000);
      expect(s.maxResident).toBe(8);
      expect(s.maxRunning).toBe(3);
      expect(s.evictions).toBeGreaterThan(0);
      expect(s.loads - s.evictions).toBe(s.resident);
    }
  });

  it('is deterministic for a seed', () => {
    const a = simulate({ agents: 50, residentCap: 4, runningCap: 2, messages: 300, seed: 42 });
    const b = simulate({ agents: 50, residentCap: 4, runningCap: 2, messages: 300, seed: 42 });
    expect(a).toEqual(b);
  });
});

describe('residency CLI', () => {
  it('exits 2 with a usage message on bad arguments', async () => {
    const errors: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    const { main } = await import('../src/cli.js');
    expect(main(['demo', '--cap', '0'])).toBe(2);
    expect(main(['demo', '--cap', '4', '--running', '5'])).toBe(2);
    expect(main(['demo', '--bogus'])).toBe(2);
    expect(main(['frobnicate'])).toBe(2);
    expect(main([])).toBe(2);
    err.mockRestore();
    expect(errors[0]).toMatch(/Expected --cap to be an integer ≥ 1, got `0`/);
    expect(errors[1]).toMatch(/--running \(5\) to be ≤ --cap \(4\)/);
    expect(errors.every((e) => e.includes('usage: residency'))).toBe(true);
  });

  it('runs the demo to its exactly-once line', async () => {
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((m: string) => void out.push(m));
    const { main } = await import('../src/cli.js');
    const code = main(['demo', '--agents', '100', '--cap', '8', '--running', '2', '--messages', '500', '--seed', '7']);
    log.mockRestore();
    expect(code).toBe(0);
    expect(out.at(-1)).toMatch(/every accepted message handled exactly once: yes/);
  });
});
