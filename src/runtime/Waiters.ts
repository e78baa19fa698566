/**
 * `ask()` waiters, by agent id and message id (one flat map: nothing is left behind per
 * agent), and the keep-alive: while a turn runs, a message waits or an ask waits, a ref'd
 * host timer holds the process open (every other timer of the runtime is unref'd); when
 * the runtime is idle, nothing does.
 */
import type { Waiter } from './types.js';

export class Waiters {
  readonly #byKey = new Map<string, Waiter>();
  /** Things with work (agents with mail, a turn, a load or a flush). */
  readonly #busy = new Set<object>();
  #alive: ReturnType<typeof setInterval> | null = null;

  /** `keepAlive`: hold the process open while there is work (the system clock only). */
  constructor(private readonly keepAlive: boolean) {}

  add(agentId: string, messageId: string, w: Waiter): void {
    this.#byKey.set(`${agentId}\u0000${messageId}`, w);
    this.#update();
  }

  has(agentId: string, messageId: string): boolean {
    return this.#byKey.has(`${agentId}\u0000${messageId}`);
  }

  take(agentId: string, messageId: string): Waiter | undefined {
    const key = `${agentId}\u0000${messageId}`;
    const w = this.#byKey.get(key);
    if (!w) return undefined;
    this.#byKey.delete(key);
    this.#update();
    return w;
  }

  /** The message of this waiter was accepted: a destroy of its agent may reject it now. */
  accepted(agentId: string, messageId: string): void {
    if (this.#byKey.size === 0) return;
    const w = this.#byKey.get(`${agentId}\u0000${messageId}`);
    if (w) w.accepted = true;
  }

  /**
   * Rejects the waiters of this agent whose messages were accepted (or every waiter,
   * without an id). An ask whose message is not accepted yet is not affected: it will be
   * accepted later (by a new incarnation of the id, after a destroy) or refused.
   */
  rejectAll(id: string | null, err: unknown): void {
    const prefix = id === null ? '' : `${id}\u0000`;
    for (const [key, w] of this.#byKey) {
      if (!key.startsWith(prefix) || (id !== null && !w.accepted)) continue;
      this.#byKey.delete(key);
      w.reject(err);
    }
    this.#update();
  }

  busy(who: object, busy: boolean): void {
    if (busy === this.#busy.has(who)) return;
    if (busy) this.#busy.add(who);
    else this.#busy.delete(who);
    this.#update();
  }

  clear(): void {
    this.#byKey.clear();
    this.#busy.clear();
    this.#update();
  }

  #update(): void {
    if (!this.keepAlive) return;
    const needed = this.#busy.size > 0 || this.#byKey.size > 0;
    if (needed && this.#alive === null) this.#alive = setInterval(() => {}, 1 << 30);
    else if (!needed && this.#alive !== null) {
      clearInterval(this.#alive);
      this.#alive = null;
    }
  }
}
