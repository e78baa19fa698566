/**
 * Inspection fan-out: XState inspection events of resident agents (and of the runtime's
 * supervisor) to `runtime.inspect()` observers and the Stately bridge.
 *
 * Nothing at all while nobody observes: no XState inspection callback is attached (one
 * costs about half the throughput). With an observer, every live agent actor's system has
 * one subscription that maps the events (stately.ts: session ids that name the agent) and
 * hands them to every observer; the supervisor's system has one while a runtime.inspect()
 * observer (not only the Stately bridge) is attached.
 */
import type { AnyActorRef, InspectionEvent, Subscription } from 'xstate';
import { SUPERVISOR_SESSION_ID, SessionIds, isStatelyEvent } from './stately.js';

interface Sink {
  next: (e: InspectionEvent) => void;
  /** The Stately bridge: agents only, `@xstate.actor`, `@xstate.event` and `@xstate.snapshot` only. */
  stately: boolean;
}

export class Inspection {
  readonly #sinks = new Set<Sink>();
  /** The inspection subscription of every live agent actor's system, only while someone observes. */
  readonly #watched = new Map<AnyActorRef, Subscription>();
  #supervisorWatch: Subscription | null = null;
  readonly #sessions = new SessionIds();

  constructor(
    private readonly supervisor: AnyActorRef,
    /** Resident agents and their actors, for observers that attach late. */
    private readonly residents: () => Iterable<{ id: string; actor: AnyActorRef | null }>,
    /** Reports a throwing observer (as an `error` event). */
    private readonly failed: (id: string, error: Error) => void,
  ) {}

  get active(): boolean {
    return this.#sinks.size > 0;
  }

  /**
   * Attaches an observer. `stately`: the Stately bridge, which gets only `@xstate.actor`,
   * `@xstate.event` and `@xstate.snapshot` of agents (never the supervisor's). Agents
   * already resident are announced to it at once (`@xstate.actor`). Returns a detach.
   */
  attach(next: (e: InspectionEvent) => void, options: { stately: boolean }): () => void {
    const sink: Sink = { next, stately: options.stately };
    this.#sinks.add(sink);
    if (!sink.stately && !this.#supervisorWatch) {
      this.#supervisorWatch = this.supervisor.system.inspect((e) => this.#dispatch(SUPERVISOR_SESSION_ID, e, true));
    }
    for (const e of this.residents()) {
      if (!e.actor) continue;
      this.#watch(e.id, e.actor);
      for (const ev of this.#sessions.actorEvents(e.actor, e.id)) this.#notify(sink, ev, e.id);
    }
    return () => {
      if (!this.#sinks.delete(sink)) return;
      if (this.#supervisorWatch && ![...this.#sinks].some((s) => !s.stately)) {
        this.#supervisorWatch.unsubscribe();
        this.#supervisorWatch = null;
      }
      if (this.#sinks.size === 0) {
        for (const sub of this.#watched.values()) sub.unsubscribe();
        this.#watched.clear();
      }
    };
  }

  /** A new agent actor (not started yet): watched and announced when someone observes. */
  created(agentId: string, actor: AnyActorRef): void {
    if (this.#sinks.size === 0) return;
    this.#watch(agentId, actor);
    // XState announced the actor (and children of its first state) in the constructor, unobserved.
    for (const ev of this.#sessions.actorEvents(actor, agentId)) for (const sink of this.#sinks) this.#notify(sink, ev, agentId);
  }

  /** Stops an agent actor and drops its inspection subscription (after its last events). */
  stop(actor: AnyActorRef): void {
    actor.stop();
    const sub = this.#watched.get(actor);
    if (!sub) return;
    sub.unsubscribe();
    this.#watched.delete(actor);
  }

  #watch(agentId: string, actor: AnyActorRef): void {
    if (this.#watched.has(actor)) return;
    this.#watched.set(actor, actor.system.inspect((e: InspectionEvent) => this.#dispatch(agentId, e, false)));
  }

  /** Maps an event of the agent (or the supervisor) `root` once and hands it to the observers that want it. */
  #dispatch(root: string, raw: InspectionEvent, supervisor: boolean): void {
    const forStately = !supervisor && isStatelyEvent(raw);
    let mapped: InspectionEvent | undefined;
    for (const sink of this.#sinks) {
      if (sink.stately && !forStately) continue;
      mapped ??= this.#sessions.event(raw, root);
      this.#notify(sink, mapped, supervisor ? '*' : root);
    }
  }

  /** A throwing observer never breaks the runtime: it is reported as an `error` event. */
  #notify(sink: Sink, event: InspectionEvent, id: string): void {
    try {
      sink.next(event);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      // Later, as for event listeners: the observer may have thrown in the middle of a transition.
      queueMicrotask(() => this.failed(id, error));
    }
  }
}
