/**
 * The calls from outside an agent's lifecycle that act on agents in memory: the user's
 * (pin, interrupt, close, destroy; retry a quarantined agent, or say why it is) and those
 * of fencing and the cluster (drop, dropAll: out of memory without a write). Each sends
 * the agent's lifecycle an event or takes its entry down; the Host wires the lifecycles.
 *
 * It keeps what these calls leave behind: the agents pinned by `runtime.pin()` (read when
 * an entry is made) and those whose stored record cannot be read (found by a delivery).
 */
import { lifecycleOf } from '../../machines/agent.js';
import type { AgentRecord } from '../store/Store.js';
import type { Timers } from './Timers.js';
import { takeLeft, type Core, type Entry } from './types.js';

/** What of the Host this needs. */
export interface ControlHost extends Pick<Core, 'entries' | 'definitions' | 'inspection' | 'waiters'> {
  readonly timers: Timers;
  ensureEntry(record: AgentRecord, mailbox?: number): Entry;
}

export class Control {
  /** Agents whose stored record cannot be read (found when a message was delivered to them). */
  readonly damaged = new Map<string, Error>();
  /** Agents pinned by `runtime.pin()` (besides those spawned pinned), for this runtime's life. */
  readonly #pinned = new Set<string>();

  constructor(private readonly host: ControlHost) {}

  /** Whether `runtime.pin()` pinned the agent (an entry made for it starts pinned). */
  pinned(id: string): boolean {
    return this.#pinned.has(id);
  }

  /** Pins the agent for this runtime's life (its entry, if any, now). */
  pin(record: AgentRecord): void {
    this.#pinned.add(record.id);
    this.host.entries.get(record.id)?.lifecycle.send({ type: 'pin' });
  }

  /** Out of quarantine (after a repair): loads again when it has mail. False when it was not quarantined. */
  retry(record: AgentRecord, mailbox: number): boolean {
    const wasDamaged = this.damaged.delete(record.id);
    const entry = this.host.entries.get(record.id);
    if (entry && lifecycleOf(entry.lifecycle.getSnapshot().value) === 'failed') {
      entry.failure = null;
      entry.lifecycle.send({ type: 'retry' });
      return true;
    }
    if (wasDamaged && !entry && mailbox > 0 && this.host.definitions.has(record.type)) this.host.ensureEntry(record, mailbox);
    return wasDamaged;
  }

  /** Interrupts the agent's turn, if one runs. */
  interrupt(id: string): void {
    const entry = this.host.entries.get(id);
    if (entry && lifecycleOf(entry.lifecycle.getSnapshot().value) === 'running') entry.lifecycle.send({ type: 'interrupt' });
  }

  /** Why the agent is quarantined, if it is (its record or state cannot be read or written). */
  failureOf(id: string): Error | undefined {
    const entry = this.host.entries.get(id);
    if (entry && lifecycleOf(entry.lifecycle.getSnapshot().value) === 'failed') return entry.failure ?? undefined;
    return this.damaged.get(id);
  }

  /** Passivates the agent; resolves once it has left memory (or at once if not in memory). */
  close(id: string, reason: 'close' | 'stop'): Promise<void> {
    const entry = this.host.entries.get(id);
    if (!entry) return Promise.resolve();
    const st = lifecycleOf(entry.lifecycle.getSnapshot().value);
    if (st === 'unloaded' || st === 'failed' || st === 'destroyed') {
      entry.lifecycle.send({ type: 'close', reason });
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      (entry.leftMemory ??= []).push((error) => (error ? reject(error) : resolve()));
      entry.lifecycle.send({ type: 'close', reason });
    });
  }

  /** Stops a turn that runs (destroy, fencing): nothing of it is written. */
  #abandon(entry: Entry, why: unknown): void {
    const turn = entry.turn;
    if (!turn || turn.interrupted) return;
    turn.interrupted = true;
    turn.abort?.abort(why);
    turn.wake?.();
  }

  /** Takes the agent out of memory for good, after its in-flight store work. */
  async destroy(id: string): Promise<void> {
    const { host } = this;
    this.damaged.delete(id);
    const entry = host.entries.get(id);
    if (!entry) return;
    entry.destroyed = true;
    entry.lifecycle.send({ type: 'destroy' });
    this.#abandon(entry, new Error('destroyed'));
    await entry.chain;
    if (entry.actor) host.inspection.stop(entry.actor);
    entry.actor = null;
    entry.lifecycle.stop();
    for (const r of takeLeft(entry)) r();
    if (host.entries.get(id) === entry) host.entries.delete(id);
    host.waiters.busy(entry, false);
  }

  /**
   * Fenced (another owner took the store over): every agent leaves memory without a
   * single write, and every waiting ask gets `err`.
   */
  dropAll(err: unknown): void {
    this.host.timers.stop();
    for (const entry of [...this.host.entries.values()]) this.drop(entry, err);
    this.host.waiters.rejectAll(null, err);
  }

  /**
   * The agent leaves memory without a single write (fenced, or its shard moved to another
   * process): its turn is abandoned, its slot and permit go back. Its asks are left waiting
   * (a shared store answers them from the process that runs the agent now).
   */
  drop(entry: Entry, err: unknown): void {
    const { host } = this;
    entry.destroyed = true;
    this.#abandon(entry, err ?? new Error('moved to another process'));
    entry.lifecycle.send({ type: 'destroy' });
    if (entry.actor) host.inspection.stop(entry.actor);
    entry.actor = null;
    entry.lifecycle.stop();
    for (const r of takeLeft(entry)) r();
    host.waiters.busy(entry, false);
    if (host.entries.get(entry.id) === entry) host.entries.delete(entry.id);
  }
}
