/**
 * The write path: group commit with an output gate.
 *
 * Every store write of the runtime (accepts, turn begins and commits, spawns, destroys,
 * load and evict notes) is handed to `write()`, which returns a promise for that one op.
 * The ops that become ready in one turn of the event loop, for all agents together, go
 * to the store in ONE `store.batch()` call: one transaction, one fsync. A write's promise
 * settles only after the batch that holds it is durable (or failed), and everything a
 * write makes visible — a resolved `send`, an `ask` answer, an event, a turn's outgoing
 * messages — happens in that promise's continuation: nothing leaves before it is durable
 * (the output gate).
 *
 * Failures: an op the store refuses on its own (a commit of a message not pending, an
 * append to a missing agent…) fails alone, with its typed error; a batch the store cannot
 * write at all fails every op in it with the same error, after retries with backoff while
 * the store says it is busy (another connection holds its write lock).
 *
 * Slicing: a batch holds at most MAX_OPS ops; more wait for the next turn of the loop, so
 * one flush never blocks the host application's event loop for long.
 *
 * Pipelining: with a store that writes its batches in order on another thread
 * (`Store.pipelined`: sqliteStore's writer thread), the next batch is handed over while the
 * previous one is still being written (up to PIPELINE_DEPTH in flight; the writer merges the
 * ones waiting into one transaction), so the runtime's own work overlaps the store's instead
 * of waiting for every fsync. Answers still come in batch order.
 */
import type { Clock } from '../clock.js';
import { StoreError } from '../errors.js';
import * as slice from './slice.js';
import type { Store, StoreOp, StoreOpResult } from '../store/Store.js';

/** Ops in one batch at most (about 1–2 ms of SQLite work on the benchmark machine: it bounds the work between two turns of the event loop). */
export const MAX_OPS = 96;
/**
 * Batches in flight at most on a pipelined store: while the writer thread syncs one, the
 * runtime hands over what the next turns of the event loop wrote, and the writer merges
 * what waits into one transaction (sqliteWriter.ts).
 */
export const PIPELINE_DEPTH = 8;
/** How often a busy store is retried (10 ms, 20 ms, … 1 s: about 6 s in all). */
export const STORE_RETRIES = 10;

interface Pending {
  op: StoreOp;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class WriteBuffer {
  #queue: Pending[] = [];
  #scheduled = false;
  /** Batches written and not yet answered. */
  #inFlight = 0;
  /** Settles when the last batch's answers have all been handed out. */
  #handout: Promise<void> = Promise.resolve();
  /** Batches in flight at most: PIPELINE_DEPTH for a store that keeps their order (`Store.pipelined`), else one. */
  readonly #depth: number;
  /** Batches written and ops in them (for stats and benchmarks). */
  readonly counts = { batches: 0, ops: 0 };

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {
    this.#depth = store.pipelined === true ? PIPELINE_DEPTH : 1;
  }

  /** Queues one op; resolves with its value once the batch holding it is durable. */
  write<T = unknown>(op: StoreOp): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Ops waiting for a batch. */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * The next batch: at the end of this turn of the event loop (setImmediate), for every
   * store. (Flushing a free store such as memoryStore as soon as the current job ends, in a
   * microtask, was measured and dropped: 10–25 % more delivery to one agent, but the 1 ms
   * timer's p99 under a burst doubled, 4.6 → 9.7 ms, and burst throughput fell 15 %;
   * docs/benchmarks.md.)
   */
  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#depth) return;
    this.#scheduled = true;
    // The runtime's one yield (slice.next): a second setImmediate of its own would run in
    // the same check phase as the turns waiting for the next slice, each starting a slice
    // of its own, and the timers would wait for both.
    void slice.next().then(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#queue.length === 0) return;
    this.#inFlight++;
    const batch = this.#queue.length <= MAX_OPS ? this.#queue.splice(0) : this.#queue.splice(0, MAX_OPS);
    // Answers go out in batch order: this batch's after the previous one's.
    const previous = this.#handout;
    let handedOut!: () => void;
    this.#handout = new Promise<void>((resolve) => (handedOut = resolve));
    let results: StoreOpResult[] | null = null;
    let failure: unknown = null;
    try {
      const ops = batch.map((p) => p.op);
      // A pipelined store retries a busy database itself: retrying here could commit a later
      // batch, already in flight, ahead of this one.
      results = await (this.#depth > 1 ? this.store.batch(ops) : this.#retrying(() => this.store.batch(ops)));
      this.counts.batches++;
      this.counts.ops += batch.length;
    } catch (err) {
      failure = err;
    }
    this.#inFlight--;
    if (this.#queue.length > 0) this.#schedule();
    await previous;
    for (let i = 0; i < batch.length; i++) {
      // What an answer sets off (the rest of a turn, the next one) runs in the continuations:
      // a batch's answers are handed out over several slices when they take long.
      if ((i & 15) === 15 && slice.spent()) await slice.room();
      const p = batch[i]!;
      const r = results?.[i];
      if (!r) p.reject(failure ?? new StoreError('The store returned no result for a write'));
      else if (r.ok) p.resolve(r.value);
      else p.reject(r.error);
    }
    handedOut();
  }

  async #retrying<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof StoreError) || !err.retryable || attempt >= STORE_RETRIES) throw err;
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, Math.min(10 * 2 ** attempt, 1_000)));
    }
  }
}
