/**
 * Batches runtime events for the inspector's live stream: at most one flush every
 * `interval` ms, at most `maxBatch` events per flush; events beyond that are counted
 * as dropped (the page shows the count and refetches a snapshot instead).
 *
 * Why: the runtime can emit thousands of events a second. Pushing each one to a browser
 * would flood the page and, through socket writes, slow the runtime. Here an event costs
 * one array push (or one counter increment once the batch is full) and no timer is armed
 * while nothing happens. A leaf: imports nothing.
 */
export interface InspectorEvent {
  name: string;
  id: string;
  at: number;
  [key: string]: unknown;
}

export interface Batch {
  events: InspectorEvent[];
  /** Events left out of this batch (and of no other) because the batch was full. */
  dropped: number;
}

export interface EventBatcherOptions {
  /** Least time between two flushes (ms). Default 100. */
  interval?: number;
  /** Most events per flush. Default 500. */
  maxBatch?: number;
  /** Timers (injected in tests). */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

export class EventBatcher {
  readonly #flush: (batch: Batch) => void;
  readonly #interval: number;
  readonly #maxBatch: number;
  readonly #setTimeout: (fn: () => void, ms: number) => unknown;
  readonly #clearTimeout: (handle: unknown) => void;
  #events: InspectorEvent[] = [];
  #dropped = 0;
  #timer: unknown = null;

  constructor(flush: (batch: Batch) => void, options: EventBatcherOptions = {}) {
    this.#flush = flush;
    this.#interval = options.interval ?? 100;
    this.#maxBatch = options.maxBatch ?? 500;
    this.#setTimeout =
      options.setTimeout ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref?.();
        return t;
      });
    this.#clearTimeout = options.clearTimeout ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

  push(event: InspectorEvent): void {
    if (this.#events.length < this.#maxBatch) this.#events.push(event);
    else this.#dropped++;
    if (this.#timer === null) this.#timer = this.#setTimeout(() => this.#fire(), this.#interval);
  }

  /**
   * Like `push`, but the event is only built when it will be sent: once the batch is
   * full, an event costs one counter increment.
   */
  offer(make: () => InspectorEvent): void {
    if (this.#events.length < this.#maxBatch) this.#events.push(make());
    else this.#dropped++;
    if (this.#timer === null) this.#timer = this.#setTimeout(() => this.#fire(), this.#interval);
  }

  /** Events waiting for the next flush. */
  get pending(): number {
    return this.#events.length;
  }

  /** Drops what is waiting and disarms the timer. */
  stop(): void {
    if (this.#timer !== null) this.#clearTimeout(this.#timer);
    this.#timer = null;
    this.#events = [];
    this.#dropped = 0;
  }

  #fire(): void {
    this.#timer = null;
    const batch: Batch = { events: this.#events, dropped: this.#dropped };
    this.#events = [];
    this.#dropped = 0;
    if (batch.events.length > 0 || batch.dropped > 0) this.#flush(batch);
  }
}
