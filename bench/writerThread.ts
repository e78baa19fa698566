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
 *   copies alone);
 * - the store's own writer thread (`sqliteStore(file, { writer: 'thread' })`,
 *   src/store/sqliteThreadStore.ts): the time `store.batch(ops)` holds the event loop (the
 *   ops prepared and posted) and the time until it resolved.
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
async function prepare(file: string, synchronous: Sync, writer: 'main' | 'thread' = 'main'): Promise<Store> {
  const store = sqliteStore(file, { synchronous, writer });
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
  /** sqliteStore(file, { writer: 'thread' }): the event loop held by `store.batch`, and until it resolved. */
  storeHeld: number[];
  storeRoundTrip: number[];
  bytes: number;
}

async function measure(dir: string, synchronous: Sync): Promise<Figures> {
  const mainStore = await prepare(nodePath.join(dir, `main-${synchronous}.db`), synchronous);
  const workerFile = nodePath.join(dir, `worker-${synchronous}.db`);
  await (await prepare(workerFile, synchronous)).close();
  const writer = new WriterWorker(workerFile, synchronous, false);
  const echo = new WriterWorker(null, synchronous, true);
  const threadStore = await prepare(nodePath.join(dir, `thread-${synchronous}.db`), synchronous, 'thread');
  await Promise.all([writer.ready, echo.ready]);
  const f: Figures = {
    mainBlocked: [],
    post: [],
    receive: [],
    roundTrip: [],
    inWorker: [],
    echoPost: [],
    echoRoundTrip: [],
    cloneOps: [],
    storeHeld: [],
    storeRoundTrip: [],
    bytes: 0,
  };
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
      // The store's own writer thread.
      const tops = opsOf(b);
      t = performance.now();
      const tp = threadStore.batch(tops);
      const storeHeld = performance.now() - t;
      allOk(await tp);
      const storeRoundTrip = performance.now() - t;
      if (!measured) continue;
      f.mainBlocked.push(blocked);
      f.post.push(postMs);
      f.receive.push(receive);
      f.roundTrip.push(roundTrip);
      f.inWorker.push(r.workerMs);
      f.echoPost.push(e.postMs);
      f.echoRoundTrip.push(echoRoundTrip);
      f.cloneOps.push(cloneOps);
      f.storeHeld.push(storeHeld);
      f.storeRoundTrip.push(storeRoundTrip);
    }
    f.bytes = Buffer.byteLength(JSON.stringify(opsOf(0)));
  } finally {
    await Promise.all([writer.terminate(), echo.terminate()]);
    await Promise.all([mainStore.close(), threadStore.close()]);
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

/**
 * The decision this section's measures led to, with the end-to-end figures (sections "Event
 * loop" and "Durable turns", rows "writer thread") of the run that decided it.
 */
const DECISION: string[] = [
  "**Decision: the writer thread is the default, `sqliteStore(path)` = `sqliteStore(path, { writer: 'thread' })`; the",
  "main thread on request (`{ writer: 'main' }`).** Measured end to end with the runtime, sections \"Event loop\" and",
  "\"Durable turns\" (both writers side by side in each run), at commit 59e0042 (load average 1.3 to 2.8) and in",
  "runs before it the same day with the same write path:",
  "",
  "- lateness of a 1 ms timer, p99, yields / broadcast: **4.12 / 5.14 ms** with the writer thread against 8.35 / 8.47 ms",
  "  on the main thread (another run at load 1.5 to 2.4: 5.07 / 4.12 against 9.28 / 8.67; one at load 4.1 to 4.6:",
  "  8.32 / 8.95 against 16.9 / 20.1); p50 0.09 to 0.11 ms against 2.2 to 2.7 ms. The target (≤ 5 ms) is met, or missed",
  "  by 1.03×, in the calm runs; the main thread misses it by 1.7 to 1.9× in the same runs;",
  "- durable turns/s, writer thread / main thread: **1.100×** at runningCap 64 (6,074 against 5,524/s; the other runs",
  "  1.081×, 1.129×, 0.933×) and **0.886×** at runningCap 8 (4,054 against 4,576/s; the other runs 0.836×, 1.058×, 0.871×).",
  "",
  "What changed since the writer was made opt-in (at 9a24830, when it lost 10 to 26 % of the turns/s at runningCap 8",
  "and was even at 64): the write buffer keeps up to 8 group commits in flight on the writer thread (`Store.pipelined`:",
  "the writer takes batches in order and retries a busy database itself, so a later batch never commits ahead of an",
  "earlier one), and the writer writes the batches waiting for it in one transaction (one fsync): a profile of the",
  "writer showed it blocked in fsync most of the time, one per small batch. What is left at runningCap 8: each agent's",
  "next turn waits for its commit (its begin rides in it), so with 8 agents there is little to overlap, and each commit",
  "pays the thread hop (0.2 to 0.4 ms). Costs of the writer thread otherwise: about 37 ms more to open and acquire",
  "(the worker starts) and about 10 MB more resident memory (its V8 isolate), from the built package.",
];

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
    rows.push(`| \`sqliteStore(file, { writer: 'thread' })\`: \`store.batch(ops)\` | ${sync} | ${pp(f.storeHeld)} (the call) | ${pp(f.storeRoundTrip)} | – |`);
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
    `(WAL; FULL and NORMAL); about ${fmt(full.bytes / 1024, 1)} KB of ops as JSON. Written from the main thread (as \`sqliteStore(file)\``,
    'does: better-sqlite3 runs the transaction and its fsync inside the `store.batch` call, on the event loop) and from a',
    'worker thread holding its own `sqliteStore` (bench/writerWorker.ts): the main thread then only serializes the ops',
    '(`postMessage`) and deserializes the results (bounded here by `structuredClone(results)`). The store built on it,',
    "`sqliteStore(file, { writer: 'thread' })` (src/store/sqliteThreadStore.ts), is measured the same way: the event loop",
    'is held by the call (the ops serialized to JSON and posted), until it resolves the batch is durable. Each path on its own',
    `file; ${fmt(BATCHES)} batches each after ${WARMUP} of warm-up, alternating batch by batch, in one process. p50 / p99.`,
    `Load average ${load}, on ${os.cpus().length} cores.`,
    '',
    '| path | synchronous | event loop held per batch | batch durable after (round trip) | time in SQLite |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows,
    '',
    `- ${line('FULL', full)}.`,
    `- ${line('NORMAL', normal)}.`,
    `- \`sqliteStore(file, { writer: 'thread' })\`, FULL: the call holds the event loop ${pp(full.storeHeld)} (p50 / p99), the batch is durable after ${pp(full.storeRoundTrip)}.`,
    '',
    ...DECISION,
  ].join('\n');
}
