/**
 * A small benchmark harness: runs candidates in alternating rounds (so drift and noise
 * on a shared machine hit all of them alike), reports the median per-operation time,
 * and compares ratios measured side by side in one run.
 */
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';

export interface Measured {
  name: string;
  /** Median nanoseconds per operation over the rounds. */
  nsPerOp: number;
  /** Operations per second at the median. */
  opsPerSec: number;
  rounds: number[];
}

/** `fn` runs `ops` operations and returns nothing; it is called once per round. */
export interface Candidate {
  name: string;
  setup?: () => void;
  run: (ops: number) => void;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function compare(candidates: Candidate[], opts: { ops: number; rounds: number; warmup?: number }): Measured[] {
  const times = candidates.map(() => [] as number[]);
  for (const c of candidates) c.setup?.();
  for (let w = 0; w < (opts.warmup ?? 1); w++) for (const c of candidates) c.run(opts.ops);
  for (let r = 0; r < opts.rounds; r++) {
    candidates.forEach((c, i) => {
      const t0 = process.hrtime.bigint();
      c.run(opts.ops);
      const t1 = process.hrtime.bigint();
      times[i]!.push(Number(t1 - t0) / opts.ops);
    });
  }
  return candidates.map((c, i) => {
    const ns = median(times[i]!);
    return { name: c.name, nsPerOp: ns, opsPerSec: 1e9 / ns, rounds: times[i]! };
  });
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Runs a section in a temporary folder, removed afterwards: `file(name)` is a database path
 * in it, and `load()` says the load average at the start and now (for the section's text).
 */
export async function inBenchFolder<T>(name: string, run: (file: (db: string) => string, load: () => string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), `residency-bench-${name}-`));
  const load0 = os.loadavg()[0]!;
  try {
    return await run(
      (db) => nodePath.join(dir, `${db}.db`),
      () => `${load0.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
