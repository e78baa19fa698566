/**
 * Durable timers: deadlines live in the store; the runtime keeps ONE host timer, for the
 * earliest deadline of all agents (not one per agent or per timer). When it fires, the
 * due timers are read in batches through the store's index, and each one's message enters
 * its agent's mailbox exactly once (the store's `fire` op: idempotent by key and
 * deadline), through the normal path: a turn like any message, loading the agent if it is
 * not resident. A deadline that passed while the process was down fires at the next
 * start. Everything runs on the runtime's clock, so tests drive it with `manualClock`.
 */
import type { AppendRequest, Message, TimerRecord } from '../store/Store.js';
import { copyMessage, describeValue } from '../validate.js';
import type { Core } from './types.js';

/** Due timers read and fired per batch. */
const BATCH = 256;
/** Host timers cannot wait longer than this (ms); a later deadline re-arms on waking. */
const MAX_DELAY = 2 ** 31 - 1;

export class Timers {
  #handle: unknown = null;
  #armedAt = Infinity;
  #firing: Promise<void> | null = null;
  #stopped = false;

  constructor(
    private readonly core: Core,
    private readonly newId: () => string,
  ) {}

  /** Arms the host timer for the earliest deadline in the store (at start). */
  async start(): Promise<void> {
    const next = await this.core.store.nextDeadline();
    if (next !== null) this.arm(next);
  }

  /** A deadline became known (a schedule was committed): the host timer fires no later than it. */
  arm(at: number): void {
    if (this.#stopped || at >= this.#armedAt) return;
    if (this.#handle !== null) this.core.clock.clearTimeout(this.#handle);
    this.#armedAt = at;
    const delay = Math.min(MAX_DELAY, Math.max(0, at - this.core.clock.now()));
    this.#handle = this.core.clock.setTimeout(() => {
      this.#handle = null;
      this.#armedAt = Infinity;
      this.#firing ??= this.#fire().finally(() => (this.#firing = null));
    }, delay);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#handle !== null) this.core.clock.clearTimeout(this.#handle);
    this.#handle = null;
  }

  async #fire(): Promise<void> {
    const { core } = this;
    try {
      for (;;) {
        if (this.#stopped) return;
        const now = core.clock.now();
        const due = await core.store.dueTimers(now, BATCH);
        if (due.length === 0) break;
        const ids = due.map(() => this.newId());
        const fired = await Promise.allSettled(
          due.map((t, i) =>
            core.buffer.write<{ seq: number; duplicate: boolean } | null>({
              op: 'fire',
              agentId: t.agentId,
              key: t.key,
              at: t.at,
              messageId: ids[i]!,
              firedAt: now,
            }),
          ),
        );
        const delivered: { request: AppendRequest; seq: number; duplicate: boolean }[] = [];
        fired.forEach((r, i) => {
          const t = due[i]!;
          if (r.status === 'rejected') {
            core.emitter.emit('error', () => ({ id: t.agentId, at: core.clock.now(), error: r.reason as Error, where: 'timer' }));
          } else if (r.value) {
            delivered.push({ request: { agentId: t.agentId, messageId: ids[i]!, message: t.message as Message, at: now }, seq: r.value.seq, duplicate: r.value.duplicate });
          }
        });
        core.delivered(delivered);
        if (due.length < BATCH) break;
      }
      const next = await core.store.nextDeadline();
      if (next !== null) this.arm(next);
    } catch (err) {
      core.emitter.emit('error', () => ({ id: '*', at: core.clock.now(), error: err as Error, where: 'timer' }));
      // Try again later: a store outage must not lose a deadline.
      this.arm(core.clock.now() + 1_000);
    }
  }
}

export interface ScheduleOptions {
  /** In this many ms from now. */
  delay?: number;
  /** At this time (ms since the epoch, on the runtime's clock). */
  at?: number;
  /** Names the timer: a second schedule with the same key replaces the first. Default: a new key. */
  key?: string;
}

/**
 * A timer from `schedule(message, options)`: the message copied once and checked (as a
 * send), the deadline from `delay` or `at` (finite, not in the past), the key checked.
 * Throws TypeError for anything else.
 */
export function timerOf(agentId: string, message: unknown, options: unknown, now: number, newKey: () => string): TimerRecord {
  const copy = copyMessage(message);
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new TypeError(`Expected schedule options { delay?, at?, key? }, got ${describeValue(options)}`);
  }
  const o = (options ?? {}) as ScheduleOptions;
  if (o.delay !== undefined && o.at !== undefined) throw new TypeError('Expected one of `delay` and `at` in schedule options, got both');
  if (o.delay !== undefined && !(typeof o.delay === 'number' && Number.isFinite(o.delay) && o.delay >= 0)) {
    throw new TypeError(`Expected \`delay\` to be a finite number of milliseconds ≥ 0, got ${describeValue(o.delay)}`);
  }
  if (o.at !== undefined && !(typeof o.at === 'number' && Number.isFinite(o.at))) {
    throw new TypeError(`Expected \`at\` to be a finite time in milliseconds since the epoch, got ${describeValue(o.at)}`);
  }
  if (o.at !== undefined && o.at < now) {
    throw new TypeError(`Expected \`at\` not to be in the past, got ${o.at} (now is ${now}): use { delay: 0 } to fire at once`);
  }
  if (o.key !== undefined) assertTimerKey(o.key);
  return { agentId, key: o.key ?? newKey(), at: o.at ?? now + (o.delay ?? 0), message: copy };
}

/** A timer key: 1–255 characters (any text; it is never a path). */
export function assertTimerKey(key: unknown): asserts key is string {
  if (typeof key === 'string' && key.length >= 1 && key.length <= 255) return;
  throw new TypeError(`Expected \`key\` to be a string of 1–255 characters, got ${describeValue(key)}`);
}

