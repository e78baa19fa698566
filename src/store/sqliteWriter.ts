/**
 * The SQLite writer thread of `sqliteStore(path, { writer: 'thread' })` (see
 * sqliteThreadStore.ts, which starts it): a worker thread that opens its own sqliteStore on
 * the file and runs every write of the store, one request at a time, in the order they were
 * posted: `batch` (its ops prepared by the calling thread), the single write methods (each a
 * batch of its one op, prepared there too), `acquire` (the `-lock` file's connection lives
 * here) and `close`. Background steps of the store (the deletion of destroyed agents' rows)
 * run here as well, between requests.
 *
 * Protocol: a request `{ id, kind, … }`; the answer `{ id, ok: true, value }` or
 * `{ id, ok: false, error }` with the error as plain data (threadErrors.ts). A batch's
 * result slots carry their errors the same way. Every request is answered once its
 * transaction committed (or failed): the calling thread's reads see the commit by then.
 *
 * The requests run one after the other, in the order they came (a batch the database
 * refuses as busy is retried before the next request starts): the calling thread may post a
 * batch before the previous one was answered (the store is `pipelined`). The writes run
 * synchronously (better-sqlite3); this thread's own event loop is the only one an fsync holds.
 */

import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { StoreError } from '../errors.js';
import type { Store, StoreOpResult, StoreOwner } from './Store.js';
import { holdOpenFile, sqliteStore, sqliteWriterOf, type SqlitePreparedOp, type SqliteWriter } from './sqliteStore.js';
import { sendError, type SentError } from './threadErrors.js';

/** What the calling thread asks. */
export type WriterRequest = { id: number } & (
  | { kind: 'batch'; action: string; ops: (SqlitePreparedOp | null)[] }
  | { kind: 'one'; op: SqlitePreparedOp }
  | { kind: 'acquire'; owner: StoreOwner }
  | { kind: 'close' }
  /** Throws out of the thread (tests: a crashed writer). */
  | { kind: 'crash' }
);

/** A batch's result slot as sent back. */
export type SentResult = { ok: true; value: unknown } | { ok: false; error: SentError };

/** The answer to a request. */
export type WriterReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SentError };

export interface WriterData {
  path: string;
  synchronous: 'FULL' | 'NORMAL';
}

const port = parentPort;
if (port === null) throw new Error('sqliteWriter.ts runs as the worker thread of sqliteStore(path, { writer: "thread" })');
const { path, synchronous } = workerData as WriterData;

// The calling thread has the file open (its reader): this open must not read it with fs.
holdOpenFile(path);
let store: Store | null = null;
let writer: SqliteWriter | null = null;
let openFailure: unknown = null;
try {
  store = sqliteStore(path, { synchronous, writer: 'main' });
  writer = sqliteWriterOf(store)!;
} catch (error) {
  openFailure = error;
}

/** The store and its write paths, or why this thread could not open them. */
function opened(): { store: Store; writer: SqliteWriter } {
  if (store === null || writer === null) throw openFailure ?? new StoreError(`The SQLite writer thread could not open "${path}"`);
  return { store, writer };
}

/** Stands for an op the calling thread failed already (its error stays there). */
const FAILED_THERE = new Error('failed on the calling thread');

/** Requests received and not yet answered, in the order they came. */
const waiting: Exclude<WriterRequest, { kind: 'crash' }>[] = [];
let pumping = false;

port.on('message', (request: WriterRequest) => {
  if (request.kind === 'crash') throw new Error('the SQLite writer thread was made to crash (a test)');
  waiting.push(request);
  if (!pumping) void pump();
});

/** Ops in one merged transaction at most (about 10 of the runtime's group commits). */
const MERGE_OPS = 1_024;

/**
 * Answers the requests one after the other. Batches waiting next to each other are written
 * in ONE transaction (one fsync): while this thread was syncing, the calling thread may have
 * handed over several (the store is `pipelined`); each still gets its own answer, and an op
 * that fails still fails alone. This is the group commit of the writer's side: the number of
 * fsyncs follows the disk, not the calling thread's turns of the event loop.
 */
async function pump(): Promise<void> {
  pumping = true;
  try {
    for (;;) {
      // What arrived while the last write held this thread, in order, without waiting for
      // the event loop to dispatch it.
      for (let m = receiveMessageOnPort(port!); m !== undefined; m = receiveMessageOnPort(port!)) {
        const request = m.message as WriterRequest;
        if (request.kind === 'crash') throw new Error('the SQLite writer thread was made to crash (a test)');
        waiting.push(request);
      }
      const head = waiting[0];
      if (head === undefined) break;
      if (head.kind !== 'batch') {
        waiting.shift();
        port!.postMessage(await answer(head));
        continue;
      }
      let n = 0;
      let ops = 0;
      while (n < waiting.length && waiting[n]!.kind === 'batch' && (n === 0 || ops + (waiting[n] as { ops: unknown[] }).ops.length <= MERGE_OPS)) {
        ops += (waiting[n] as { ops: unknown[] }).ops.length;
        n++;
      }
      const batches = waiting.splice(0, n) as Extract<WriterRequest, { kind: 'batch' }>[];
      for (const reply of await answerBatches(batches)) port!.postMessage(reply);
    }
  } finally {
    pumping = false;
  }
}

/** How often a busy database is retried before a batch fails (10 ms, 20 ms, … 1 s: about 6 s in all, as the runtime's write buffer does for a store on its own thread). */
const BUSY_RETRIES = 10;

/**
 * Runs a batch, retrying while the database is busy (another connection holds its write
 * lock). The retries happen here, before any later request runs: the calling thread may
 * have posted the next batch already (the store is `pipelined`), and it must not commit
 * ahead of this one.
 */
async function executeRetrying(writer: SqliteWriter, action: string, ops: (SqlitePreparedOp | Error)[]): Promise<StoreOpResult[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return writer.execute(action, ops);
    } catch (error) {
      if (!(error instanceof StoreError) || !error.retryable || attempt >= BUSY_RETRIES) throw error;
    }
    await new Promise<void>((resolve) => setTimeout(resolve, Math.min(10 * 2 ** attempt, 1_000)));
  }
}

/** Batches written in one transaction; an answer each (all fail alike if the transaction does). */
async function answerBatches(batches: Extract<WriterRequest, { kind: 'batch' }>[]): Promise<WriterReply[]> {
  try {
    const { writer } = opened();
    const action = batches.length === 1 ? batches[0]!.action : `write ${batches.length} batches of ${batches.reduce((n, b) => n + b.ops.length, 0)} operations`;
    const results = await executeRetrying(
      writer,
      action,
      batches.flatMap((b) => b.ops.map((op) => op ?? FAILED_THERE)),
    );
    let at = 0;
    return batches.map((b) => {
      const mine = results.slice(at, at + b.ops.length);
      at += b.ops.length;
      return { id: b.id, ok: true, value: mine.map(sendResult) };
    });
  } catch (error) {
    const sent = sendError(error);
    return batches.map((b) => ({ id: b.id, ok: false, error: sent }));
  }
}

async function answer(request: Exclude<WriterRequest, { kind: 'crash' | 'batch' }>): Promise<WriterReply> {
  const { id } = request;
  try {
    const { store, writer } = opened();
    switch (request.kind) {
      case 'one':
        return { id, ok: true, value: writer.runOne(request.op) };
      case 'acquire':
        return { id, ok: true, value: await store.acquire(request.owner) };
      case 'close':
        await store.close();
        return { id, ok: true, value: undefined };
    }
  } catch (error) {
    return { id, ok: false, error: sendError(error) };
  }
}

function sendResult(result: StoreOpResult): SentResult {
  return result.ok ? result : { ok: false, error: sendError(result.error) };
}
