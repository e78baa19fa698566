/**
 * The harness of the runtime benchmarks: like `compare` (bench/harness.ts), candidates
 * run in alternating rounds and the median is reported, but each candidate lives in its
 * own Node process. A candidate holding 100,000 agents then does not make another pay
 * for marking its heap at every major GC, and each is measured on the heap it would have
 * alone. Rounds never overlap: one process runs while the others wait. Setups may run
 * in parallel (they are not measured).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ArgOf, Kind } from './candidates.js';
import type { Reply, Request } from './child.js';
import { median } from './harness.js';

export interface Spec<K extends Kind = Kind> {
  name: string;
  kind: K;
  arg: ArgOf<K>;
  /** Operations per round for this candidate (per-op times are compared). */
  ops: number;
}

export interface IsolatedMeasured {
  name: string;
  nsPerOp: number;
  opsPerSec: number;
  /** Share of the round's wall time spent in GC, at the median round. */
  gcShare: number;
  setupMs: number;
  rounds: number[];
  facts: Record<string, number>;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const childPath = fileURLToPath(new URL('./child.ts', import.meta.url));

export const spec = <K extends Kind>(name: string, kind: K, arg: ArgOf<K>, ops: number): Spec => ({ name, kind, arg, ops }) as Spec;

class Child {
  readonly #proc: ChildProcess;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (r: Reply & { ok: true }) => void; reject: (e: Error) => void }>();

  constructor(s: Spec, execArgv: string[]) {
    this.#proc = fork(childPath, [s.kind, JSON.stringify(s.arg ?? null)], {
      cwd: root,
      execArgv: ['--import', 'tsx', ...execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#proc.on('message', (r: Reply) => {
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      if (r.ok) p.resolve(r);
      else p.reject(new Error(`${s.name}: ${r.error}`));
    });
    this.#proc.on('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`${s.name}: its process exited (${code})`));
      this.#pending.clear();
    });
  }

  request(r: Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never): Promise<Reply & { ok: true }> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#proc.send({ ...r, id } as Request);
    });
  }

  close(): void {
    if (this.#proc.connected) this.#proc.disconnect();
  }
}

export async function compareIsolated(
  specs: Spec[],
  opts: { rounds: number; warmup?: number; parallelSetup?: boolean; execArgv?: string[] },
): Promise<IsolatedMeasured[]> {
  const children = specs.map((s) => new Child(s, opts.execArgv ?? []));
  try {
    const setupMs: number[] = [];
    if (opts.parallelSetup) {
      const rs = await Promise.all(children.map((c) => c.request({ cmd: 'setup' })));
      rs.forEach((r, i) => (setupMs[i] = r.ms ?? 0));
    } else {
      for (const [i, c] of children.entries()) setupMs[i] = (await c.request({ cmd: 'setup' })).ms ?? 0;
    }
    for (let w = 0; w < (opts.warmup ?? 1); w++) {
      for (const [i, c] of children.entries()) await c.request({ cmd: 'run', ops: specs[i]!.ops });
    }
    const times = specs.map(() => [] as number[]);
    const gcs = specs.map(() => [] as number[]);
    for (let r = 0; r < opts.rounds; r++) {
      for (const [i, c] of children.entries()) {
        const res = await c.request({ cmd: 'run', ops: specs[i]!.ops });
        times[i]!.push(res.ns! / specs[i]!.ops);
        gcs[i]!.push(res.gcNs! / res.ns!);
      }
    }
    const facts = await Promise.all(children.map(async (c) => (await c.request({ cmd: 'check' })).facts ?? {}));
    return specs.map((s, i) => {
      const ns = median(times[i]!);
      return { name: s.name, nsPerOp: ns, opsPerSec: 1e9 / ns, gcShare: median(gcs[i]!), setupMs: setupMs[i]!, rounds: times[i]!, facts: facts[i]! };
    });
  } finally {
    for (const c of children) c.close();
  }
}
