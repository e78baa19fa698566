/**
 * The worker side of bench/writerThread.ts: a SQLite writer on a worker thread, as the
 * runtime would have it if its group commits left the main thread. It opens its own
 * `sqliteStore` on the file it is given and answers every batch of ops posted to it with
 * the results of `store.batch(ops)`, and the time the batch took inside the worker. With
 * `echo`, it answers at once with results of the same shape and writes nothing (the cost
 * of the thread hop and of the copies alone).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { sqliteStore, type Store, type StoreOp, type StoreOpResult } from '../src/index.js';

const { file, synchronous, echo } = workerData as { file: string | null; synchronous: 'FULL' | 'NORMAL'; echo: boolean };
const store: Store | null = echo || file === null ? null : sqliteStore(file, { synchronous });

parentPort!.on('message', (m: { id: number; ops: StoreOp[] }) => {
  void (async () => {
    const t0 = performance.now();
    let results: StoreOpResult[];
    if (store) results = await store.batch!(m.ops);
    else results = m.ops.map((op) => ({ ok: true, value: op.op === 'append' ? { agentId: op.request.agentId, messageId: op.request.messageId, seq: 0, duplicate: false } : { outbox: [] } }));
    parentPort!.postMessage({ id: m.id, results, workerMs: performance.now() - t0 });
  })();
});
parentPort!.postMessage({ ready: true });
