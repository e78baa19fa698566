/**
 * The SQLite writer: on the main thread (as the runtime has it: the write buffer calls
 * `store.batch`, and better-sqlite3 runs the whole transaction, fsync included, inside
 * that call, on the event loop) or on a worker thread (the main thread posts the batch's
 * ops and gets the results back: it is blocked only while the ops are serialized and the
 * results deserialized; the batch takes longer to be durable by the thread hop).
 *
 * One batch is a group commit as the write buffer makes it under the durable-turns
 * workload, at its largest: MAX_OPS = 96 ops, for 48 agents an `append` (a new message)
 * and a `commitTurn` of the head message with its snapshot that begins the next turn
 * (`CommitTurn.next`), on `sqliteStore` (WAL, FULL and NORMAL), in a temp file.
 *
 * Rows, alternating batch by batch, each path on its own file, after a warm-up:
 * - main thread: the time `store.batch(ops)` holds the event loop (the call returns once
 *   the transaction is committed and synced);
 * - worker: `postMessage(ops)` (serializes them, on the main thread), the round trip until
 *   the results are back, the time the batch took inside the worker, and the main
 *   thread's share of receiving the results, bounded by `structuredClone(results)`;
 * - echo worker: the same round trip with a worker that writes nothing (thread hop and
 *   copies alone).
 */
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { Worker } from 'node:worker_threads';
import { sqliteStore, type Store, type StoreOp, type StoreOpResult } from '../src/index.js';
import { fmt } from './harness.js';
import { percentile } from './durableTurns.js';

type Sync = 'FULL' | 'NORMAL';
const AGENTS = 48;
const OPS = 2 * AGENTS;
const WARMUP = 30;
const BATCHES = 300;

const id = (i: number) => `w-${i}`;
const snapshotOf = (n: number) => ({ status: 'active', value: 'idle', historyValue: {}, context: { state: { n } }, children: {} });

/** 48 agents, one message each, begun: each batch then appends one more and commits the head, beginning the next. */
async function prepare(file: string, synchronous: Sync): Promise<Store> {
  const store = sqliteStore(file, { synchronous });
  for (let i = 0; i < AGENTS; i++) await store.createAgent({ id: id(i), type: 'n', parent: null, pinned: false, input: null, createdAt: Date.now() });
  await store.append(Array.from({ length: AGENTS }, (_, i) => ({ agentId: id(i), messageId: `m-${i}-1`, message: { type: 'go' }, at: Date.now() })));
  for (let i = 0; i < AGENTS; i++) await store.beginTurn(id(i), 1, Date.now());
  return store;
}

/** The ops of batch `b` (heads are at seq b + 1). */
function opsOf(b: number): StoreOp[] {
  const ops: StoreOp[] = [];
  const seq = b + 1;
  for (let i = 0; i < AGENTS; i++) {
    const at = Date.now();
    ops.push({ op: 'append', request: { agentId: id(i), messageId: `m-${i}-${seq + 1}`, message: { type: 'go' }, at } });
    ops.push({
      op: 'commitTurn',
      commit: { agentId: id(i), seq, outcome: 'done', snapshot: snapshotOf(seq), outputs: [], outbox: [], spawned: [], at, durationMs: 0, next: { seq: seq + 1, at } },
    });
  }
  return ops;
}

const allOk = (rs: StoreOpResult[]) => {
  const bad = rs.find((r) => !r.ok);
  if (bad) throw new Error(`a batch op failed: ${bad.ok ? '' : bad.error.message}`);
};

class WriterWorker {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, (r: { results: StoreOpResult[]; workerMs: number }) => void>();
  #next = 0;
  readonly ready: Promise<void>;
  constructor(file: string | null, synchronous: Sync, echo: boolean) {
    // The worker is TypeScript: tsx's loader is registered in the worker before it is imported
    // (a worker does not get the loader the main thread was started with).
    const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./writerWorker.ts', import.meta.url).href)}); })`;
    this.#worker = new Worker(boot, { eval: true, workerData: { file, synchronous, echo } });
    this.ready = new Promise((resolve, reject) => {
      this.#worker.once('error', reject);
      this.#worker.on('message', (m: { ready?: true; id?: number; results?: StoreOpResult[]; workerMs?: number }) => {
        if (m.ready) return resolve();
        const w = this.#waiting.get(m.id!);
        this.#waiting.delete(m.id!);
        w?.({ results: m.results!, workerMs: m.workerMs! });
      });
    });
  }
  /** Posts the ops; returns how long `postMessage` held the thread, and the reply. */
  post(ops: StoreOp[]): { postMs: number; reply: Promise<{ results: StoreOpResult[]; workerMs: number }> } {
    const n = this.#next++;
    const reply = new Promise<{ results: StoreOpResult[]; workerMs: number }>((resolve) => this.#waiting.set(n, resolve));
    const t = performance.now();
    this.#worker.postMessage({ id: n, ops });
    return { postMs: performance.now() - t, reply };
  }
  terminate(): Promise<number> {
    return this.#worker.terminate();
  }
}

interface Figures {
  mainBlocked: number[];
  post: number[];
  receive: number[];
  roundTrip: number[];
  inWorker: number[];
  echoPost: number[];
  echoRoundTrip: number[];
  cloneOps: number[];
  bytes: number;
}

async function measure(dir: string, synchronous: Sync): Promise<Figures> {
  const mainStore = await prepare(nodePath.join(dir, `main-${synchronous}.db`), synchronous);
  const workerFile = nodePath.join(dir, `worker-${synchronous}.db`);
  await (await prepare(workerFile, synchronous)).close();
  const writer = new WriterWorker(workerFile, synchronous, false);
  const echo = new WriterWorker(null, synchronous, true);
  await Promise.all([writer.ready, echo.ready]);
  const f: Figures = { mainBlocked: [], post: [], receive: [], roundTrip: [], inWorker: [], echoPost: [], echoRoundTrip: [], cloneOps: [], bytes: 0 };
  try {
    for (let b = 0; b < WARMUP + BATCHES; b++) {
      const measured = b >= WARMUP;
      // Main thread: the batch runs inside the call.
      const ops = opsOf(b);
      let t = performance.now();
      const p = mainStore.batch!(ops);
      const blocked = performance.now() - t;
      allOk(await p);
      // Worker: the same batch on its own file.
      const wops = opsOf(b);
      t = performance.now();
      const { postMs, reply } = writer.post(wops);
      const r = await reply;
      const roundTrip = performance.now() - t;
      allOk(r.results);
      t = performance.now();
      structuredClone(r.results);
      const receive = performance.now() - t;
      // Echo worker: the hop and the copies alone.
      const eops = opsOf(b);
      t = performance.now();
      const e = echo.post(eops);
      await e.reply;
      const echoRoundTrip = performance.now() - t;
      t = performance.now();
      structuredClone(eops);
      const cloneOps = performance.now() - t;
      if (!measured) continue;
      f.mainBlocked.push(blocked);
      f.post.push(postMs);
      f.receive.push(receive);
      f.roundTrip.push(roundTrip);
      f.inWorker.push(r.workerMs);
      f.echoPost.push(e.postMs);
      f.echoRoundTrip.push(echoRoundTrip);
      f.cloneOps.push(cloneOps);
    }
    f.bytes = Buffer.byteLength(JSON.stringify(opsOf(0)));
  } finally {
    await Promise.all([writer.terminate(), echo.terminate()]);
    await mainStore.close();
  }
  return f;
}

export async function benchWriterThread(): Promise<string> {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'residency-bench-writer-'));
  const load0 = os.loadavg()[0]!;
  try {
    const full = await measure(dir, 'FULL');
    const normal = await measure(dir, 'NORMAL');
    const load = `${load0.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end`;
    return render(full, normal, load);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function render(full: Figures, normal: Figures, load: string): string {
  const ms = (v: number) => `${fmt(v, v >= 10 ? 1 : 2)} ms`;
  const pp = (xs: number[]) => `${ms(percentile(xs, 50))} / ${ms(percentile(xs, 99))}`;
  const sum = (a: number[], b: number[]) => a.map((x, i) => x + b[i]!);
  const rows: string[] = [];
  for (const [sync, f] of [['FULL', full], ['NORMAL', normal]] as const) {
    rows.push(`| main thread: \`store.batch(ops)\` on the event loop | ${sync} | ${pp(f.mainBlocked)} | ${pp(f.mainBlocked)} | ${pp(f.mainBlocked)} |`);
    rows.push(
      `| worker: \`postMessage(ops)\`, the batch in the worker, results posted back | ${sync} | ${pp(sum(f.post, f.receive))} | ${pp(f.roundTrip)} | ${pp(f.inWorker)} |`,
    );
  }
  rows.push(`| echo worker (writes nothing): the thread hop and the copies alone | – | ${pp(full.echoPost)} (post only) | ${pp(full.echoRoundTrip)} | – |`);
  rows.push(`| \`structuredClone\` of one batch's ops on the main thread | – | ${pp(full.cloneOps)} | – | – |`);
  const p = (xs: number[], q: number) => percentile(xs, q);
  const line = (sync: Sync, f: Figures) => {
    const mainP99 = p(f.mainBlocked, 99);
    const workerP99 = p(sum(f.post, f.receive), 99);
    return (
      `${sync}: the main thread is held ${ms(p(f.mainBlocked, 50))} per batch at p50, ${ms(mainP99)} at p99; with a worker, ` +
      `${ms(p(sum(f.post, f.receive), 50))} / ${ms(workerP99)} (${fmt(mainP99 / Math.max(workerP99, 1e-6), 0)}× less at p99), ` +
      `and the batch is durable ${ms(p(f.roundTrip, 50) - p(f.mainBlocked, 50))} later at p50 (round trip ${ms(p(f.roundTrip, 50))} against ${ms(p(f.mainBlocked, 50))})`
    );
  };
  return [
    '## SQLite writer: main thread or worker thread',
    '',
    `One group commit of ${OPS} ops (the write buffer's most, MAX_OPS): for ${AGENTS} agents an \`append\` and a \`commitTurn\``,
    'with its snapshot that begins the next turn, as under the durable-turns workload, on `sqliteStore(<temp file>)`',
    `(WAL; FULL and NORMAL); about ${fmt(full.bytes / 1024, 1)} KB of ops as JSON. Written from the main thread (as the runtime does:`,
    'better-sqlite3 runs the transaction and its fsync inside the `store.batch` call, on the event loop) and from a',
    'worker thread holding its own `sqliteStore` (bench/writerWorker.ts): the main thread then only serializes the ops',
    '(`postMessage`) and deserializes the results (bounded here by `structuredClone(results)`). Each path on its own',
    `file; ${fmt(BATCHES)} batches each after ${WARMUP} of warm-up, alternating batch by batch, in one process. p50 / p99.`,
    `Load average ${load}, on ${os.cpus().length} cores.`,
    '',
    '| path | synchronous | event loop held per batch | batch durable after (round trip) | time in SQLite |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows,
    '',
    `- ${line('FULL', full)}.`,
    `- ${line('NORMAL', normal)}.`,
  ].join('\n');
}
