/**
 * The accept pipeline: every call that writes identity or mailboxes (spawn, send,
 * destroy) goes through one FIFO, so calls are accepted in call order. Consecutive sends
 * go to the write buffer together (at most MAX_SENDS at a time), so they are written in
 * the same group commit as each other and as the turns of that moment; while one batch
 * is being written, the next one gathers.
 */
import { AgentNotFoundError } from '../errors.js';
import type { AgentRecord, AppendRequest, AppendResult, Store } from '../store/Store.js';
import type { WriteBuffer } from './WriteBuffer.js';
import * as slice from './slice.js';

/** Sends written in one go at most: a bounded slice of work between two yields to the event loop. */
export const MAX_SENDS = 96;

export interface SendOp {
  kind: 'send';
  request: AppendRequest;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

export interface TaskOp {
  kind: 'task';
  run: () => Promise<void>;
}

export type AcceptOp = SendOp | TaskOp;

export interface AcceptHooks {
  /** Before the append: the agents of the batch that are not in memory must be checked. */
  needsCheck(agentId: string): boolean;
  /** Why a checked agent cannot take messages here (e.g. its type is not defined), if so. */
  refuse(record: AgentRecord): Error | undefined;
  /**
   * Called for each agent of a batch before its append (keeps it in memory until
   * `release`). `record` is given for agents that were checked in the store. False when it
   * holds nothing (no `release` then): the agent does not live in this process.
   */
  hold(agentId: string, record: AgentRecord | undefined): boolean;
  /** Called after the append, in order, for every message (duplicate or not). */
  accepted(op: SendOp, result: AppendResult): void;
  /** Called once per held agent after the batch, whatever happened. */
  release(agentId: string): void;
}

export class Accepter {
  readonly #queue: AcceptOp[] = [];
  #running = false;
  #idle: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly buffer: WriteBuffer,
    private readonly hooks: AcceptHooks,
  ) {}

  get pending(): number {
    return this.#queue.length;
  }

  push(op: AcceptOp): void {
    this.#queue.push(op);
    if (!this.#running) {
      this.#running = true;
      queueMicrotask(() => void this.#pump());
    }
  }

  /** Resolves when everything queued so far has been processed. */
  drained(): Promise<void> {
    if (!this.#running && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #pump(): Promise<void> {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.kind === 'task') {
        this.#queue.shift();
        await head.run().catch(() => {}); // a task settles its own caller
        continue;
      }
      let n = 0;
      while (n < this.#queue.length && n < MAX_SENDS && this.#queue[n]!.kind === 'send') n++;
      const batch = this.#queue.splice(0, n) as SendOp[];
      if (slice.spent()) await slice.room();
      try {
        await this.#sendBatch(batch);
      } catch (err) {
        // Whatever went wrong, the callers hear of it and the queue goes on (never stuck).
        for (const op of batch) op.reject(err);
      }
    }
    this.#running = false;
    for (const r of this.#idle.splice(0)) r();
  }

  async #sendBatch(batch: SendOp[]): Promise<void> {
    // Agents in memory are held at once, before anything is awaited: an entry dropped while
    // the records of the others are read would leave its message untold (stranded in the
    // store until a restart). The others are held once their records are read.
    const held: string[] = [];
    const hold = (id: string, record: AgentRecord | undefined) => {
      if (this.hooks.hold(id, record)) held.push(id);
    };
    const ids = [...new Set(batch.map((op) => op.request.agentId))];
    const checked = new Set(ids.filter((id) => this.hooks.needsCheck(id)));
    try {
      for (const id of ids) if (!checked.has(id)) hold(id, undefined);
      let ok = batch;
      const found = new Map<string, AgentRecord>();
      if (checked.size > 0) {
        const unreadable = new Map<string, unknown>();
        try {
          for (const r of await this.store.getAgents([...checked])) found.set(r.id, r);
          // Left out: missing, or a record that cannot be read (said apart one by one).
          for (const id of checked) {
            if (found.has(id)) continue;
            await this.store.getAgent(id).then(
              (r) => r && found.set(id, r),
              (err: unknown) => unreadable.set(id, err),
            );
          }
        } catch (err) {
          for (const op of batch) op.reject(err);
          return;
        }
        ok = [];
        for (const op of batch) {
          const id = op.request.agentId;
          const record = found.get(id);
          const refused = !checked.has(id)
            ? undefined
            : record
              ? this.hooks.refuse(record)
              : unreadable.has(id)
                ? unreadable.get(id)
                : new AgentNotFoundError(id);
          if (refused) op.reject(refused);
          else ok.push(op);
        }
        for (const id of new Set(ok.map((op) => op.request.agentId))) if (checked.has(id)) hold(id, found.get(id));
      }
      if (ok.length === 0) return;
      const results = await Promise.allSettled(ok.map((op) => this.buffer.write<AppendResult>({ op: 'append', request: op.request })));
      ok.forEach((op, i) => {
        const r = results[i]!;
        if (r.status === 'rejected') {
          op.reject(r.reason);
          return;
        }
        this.hooks.accepted(op, r.value);
        op.resolve(r.value);
      });
    } catch (err) {
      for (const op of batch) op.reject(err);
    } finally {
      for (const id of held) this.hooks.release(id);
    }
  }

}
