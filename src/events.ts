/**
 * The runtime's events: a typed map (the mitt way), an emitter that is free when nobody
 * listens, and listeners that can throw without breaking anything.
 */
import mitt, { type Emitter, type Handler } from 'mitt';
import type { EvictReason } from '../machines/agent.js';
import type { TurnOutcome } from './store/Store.js';

interface Base {
  /** The agent the event is about. */
  id: string;
  /** When (ms, from the runtime's clock). */
  at: number;
}

export interface RuntimeEvents {
  'agent.spawned': Base & { type: string; parent: string | null; pinned: boolean };
  'agent.loading': Base;
  'agent.loaded': Base & { durationMs: number };
  'agent.evicting': Base & { reason: EvictReason };
  'agent.evicted': Base & { reason: EvictReason };
  'agent.destroyed': Base;
  'agent.failed': Base & { error: Error };
  'message.accepted': Base & { seq: number; messageId: string; type: string };
  'turn.started': Base & { seq: number };
  'turn.finished': Base & { seq: number; outcome: TurnOutcome; durationMs: number; error?: string };
  /** A slot request waits and no eviction under way will serve it; `id` is the agent waiting longest. */
  'residency.saturated': Base & { waiting: number; resident: number; running: number };
  /** Something went wrong that did not throw to a caller (a load, a flush, a listener). */
  'error': Base & { error: Error; where: string };
}

export type RuntimeEventName = keyof RuntimeEvents;

/** Every event name, for checking names given at run time. */
export const RUNTIME_EVENT_NAMES = [
  'agent.spawned', 'agent.loading', 'agent.loaded', 'agent.evicting', 'agent.evicted', 'agent.destroyed', 'agent.failed',
  'message.accepted', 'turn.started', 'turn.finished', 'residency.saturated', 'error',
] as const satisfies readonly RuntimeEventName[];

/**
 * An emitter whose listeners are isolated: a listener that throws is reported as an
 * `error` event (and, if an `error` listener throws too, on the console), and the other
 * listeners and the runtime go on. That `error` event is about the agent of the event
 * whose listener threw (`'*'` when it names none) and is stamped by `now`, the runtime's
 * clock (default `Date.now`).
 *
 * @example
 * const emitter = new RuntimeEmitter(() => clock.now());
 */
export class RuntimeEmitter {
  readonly #mitt: Emitter<Record<string, unknown>> = mitt<Record<string, unknown>>();
  readonly #wrapped = new WeakMap<Function, Handler<never>>();
  #count = 0;
  /** Everything emitted also goes here (inspectors). */
  tap: ((name: string, payload: unknown) => void) | null = null;
  readonly #now: () => number;

  constructor(now: () => number = () => Date.now()) {
    this.#now = now;
  }

  /** True when someone listens to `name` (or to everything). */
  wants(name: string): boolean {
    return this.tap !== null || (this.#count > 0 && (this.#mitt.all.has(name) || this.#mitt.all.has('*')));
  }

  /** Emits lazily: `payload` is only built when someone listens. */
  emit<K extends RuntimeEventName>(name: K, payload: () => RuntimeEvents[K]): void {
    if (!this.wants(name)) return;
    const p = payload();
    if (this.tap) {
      try {
        this.tap(name, p);
      } catch (err) {
        this.#listenerFailed(name, p, err);
      }
    }
    if (this.#count > 0) this.#mitt.emit(name, p);
  }

  on<K extends RuntimeEventName>(name: K, handler: (payload: RuntimeEvents[K]) => void): () => void {
    const wrapped = ((payload: RuntimeEvents[K]) => {
      try {
        handler(payload);
      } catch (err) {
        this.#listenerFailed(name, payload, err);
      }
    }) as Handler<never>;
    this.#wrapped.set(handler, wrapped);
    this.#mitt.on(name, wrapped as Handler<unknown>);
    this.#count++;
    return () => this.off(name, handler);
  }

  off<K extends RuntimeEventName>(name: K, handler: (payload: RuntimeEvents[K]) => void): void {
    const wrapped = this.#wrapped.get(handler);
    if (!wrapped) return;
    this.#wrapped.delete(handler);
    this.#mitt.off(name, wrapped as Handler<unknown>);
    this.#count--;
  }

  #listenerFailed(name: string, payload: unknown, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (name === 'error') {
      console.error(`residency: an 'error' listener threw:`, error);
      return;
    }
    const about = (payload as { id?: unknown } | null)?.id;
    const id = typeof about === 'string' ? about : '*';
    queueMicrotask(() =>
      this.emit('error', () => ({ id, at: this.#now(), error, where: `listener of '${name}'` })),
    );
  }
}
