/**
 * The bridge to Stately's inspector (`@statelyai/inspect`): the XState inspection events
 * of resident agents, with session ids that name agents, in the shape its
 * `inspector.inspect` observer converts.
 *
 * Why the events cannot go to Stately's inspector as XState emits them:
 * - Every agent is a root actor with its own actor system, and XState numbers session ids
 *   from one counter per process (`x:0`, `x:1`, …; the supervisor takes one too). An
 *   agent's session id therefore says nothing about which agent it is, changes every
 *   time the agent is loaded again (after an eviction, or a rollback of a failed turn),
 *   and two processes reporting to one inspector hand out the same ids.
 * - XState emits `@xstate.actor` in the actor's constructor, before anyone can subscribe
 *   to the new actor's system: an agent's root actor (and any child created with its
 *   initial state) would never be announced. The runtime announces them itself
 *   ({@link SessionIds.actorEvents}), when an agent is loaded and when an observer
 *   attaches while agents are resident.
 * - Stately's converter understands `@xstate.actor`, `@xstate.event` and
 *   `@xstate.snapshot` only (it converts them later, in a timer, where a failure cannot be
 *   caught, and warns about anything that is not `@xstate.*`): the bridge forwards those
 *   three ({@link isStatelyEvent}), and only for agents, never for the runtime's
 *   supervisor.
 *
 * The session-id scheme, for an agent `alice`:
 * - its root actor: `alice` (the same after every reload, in every process);
 * - an actor inside it (invoked or spawned): `alice/<its XState session id>`, e.g.
 *   `alice/x:12`;
 * - `rootId` of every event: `alice`; `_parent` and `sourceRef` are mapped the same way.
 * Agent ids never contain `/`, so the two kinds never collide. `runtime.inspect()` uses
 * the same scheme; the supervisor's actor is {@link SUPERVISOR_SESSION_ID} there.
 *
 * An actor ref is mapped to a facade, `Object.create(actorRef, { sessionId, _parent })`,
 * memoised per actor (the same facade in every event): its methods and snapshot are the
 * actor's own, by inheritance.
 *
 * @example
 * const sessions = new SessionIds();
 * const next = (event: InspectionEvent) => {
 *   if (isStatelyEvent(event)) inspector.inspect.next?.(sessions.event(event, 'alice'));
 * };
 * const actor = createActor(machine);
 * actor.system.inspect(next);
 * sessions.actorEvents(actor, 'alice').forEach(next); // announces the root actor: sessionId 'alice'
 * actor.start();
 */
import type { AnyActorRef, InspectionEvent, Observer } from 'xstate';

/** What takes inspection events: a function, or an XState observer `{ next }` (such as `inspector.inspect`). */
export type InspectionObserver<E = InspectionEvent> = Observer<E> | ((event: E) => void);

/** The event types Stately's inspector converts; nothing else is forwarded to it. */
export const STATELY_EVENT_TYPES = ['@xstate.actor', '@xstate.event', '@xstate.snapshot'] as const;

/** The session id of the runtime's supervisor actor in `runtime.inspect()` (never forwarded to Stately). */
export const SUPERVISOR_SESSION_ID = '@residency/supervisor';

/** True for the event types Stately's inspector converts (`@xstate.actor`, `@xstate.event`, `@xstate.snapshot`). */
export function isStatelyEvent(event: { type: string }): boolean {
  const t = event.type;
  return t === '@xstate.actor' || t === '@xstate.event' || t === '@xstate.snapshot';
}

/** True for a function or an object with a `next` function. */
export function isInspectionObserver(value: unknown): value is InspectionObserver<never> {
  if (typeof value === 'function') return true;
  return typeof value === 'object' && value !== null && typeof (value as { next?: unknown }).next === 'function';
}

/** The observer as a function of one event (an observer object's `next`, called on it). */
export function toNext<E>(observer: InspectionObserver<E>): (event: E) => void {
  if (typeof observer === 'function') return observer;
  return (event) => observer.next!(event);
}

/** The fields of an actor ref that the mapping reads and replaces. */
interface Ref {
  sessionId: string;
  _parent?: AnyActorRef;
  system?: unknown;
  getSnapshot(): unknown;
}

/**
 * Maps actor refs and inspection events of an agent to the session-id scheme above.
 * Keeps one facade per actor (in a WeakMap: nothing is retained once an actor is gone).
 */
export class SessionIds {
  readonly #facades = new WeakMap<object, AnyActorRef>();

  /**
   * The session id an actor of the agent (or namespace) `root` gets: `root` for the root
   * actor, `<root>/<sessionId>` for an actor inside it.
   */
  sessionIdOf(ref: AnyActorRef, root: string): string {
    return (ref as unknown as Ref)._parent === undefined ? root : `${root}/${ref.sessionId}`;
  }

  /** The actor as observers see it: its facade with the mapped session id (and `id`, for a root). */
  ref(ref: AnyActorRef, root: string): AnyActorRef {
    const known = this.#facades.get(ref);
    if (known) return known;
    const parent = (ref as unknown as Ref)._parent;
    const sessionId = this.sessionIdOf(ref, root);
    // A root actor's `id` is its XState session id (`x:3`): it becomes the agent id too, so
    // that `id === sessionId` as for any root actor created without an explicit id.
    const facade = Object.create(ref, {
      sessionId: { value: sessionId, enumerable: true },
      _parent: { value: parent === undefined ? undefined : this.ref(parent, root) },
      ...(parent === undefined ? { id: { value: root, enumerable: true } } : {}),
    }) as AnyActorRef;
    this.#facades.set(ref, facade);
    this.#facades.set(facade, facade); // mapping a mapped ref changes nothing
    return facade;
  }

  /**
   * The event with its actor refs mapped and `rootId` the agent's (a shallow copy; the
   * event's own fields, such as `_transitions` of a microstep, are kept).
   */
  event<E extends InspectionEvent>(event: E, root: string): E {
    const mapped = { ...event, rootId: root, actorRef: this.ref(event.actorRef as AnyActorRef, root) };
    if (event.type === '@xstate.event') {
      const source = (event as InspectionEvent & { type: '@xstate.event' }).sourceRef as AnyActorRef | undefined;
      // A source from another system (none in an agent's own system, but be safe) keeps its ids.
      (mapped as { sourceRef?: unknown }).sourceRef =
        source && (source as unknown as Ref).system === (event.actorRef as unknown as Ref).system ? this.ref(source, root) : source;
    }
    return mapped as E;
  }

  /**
   * `@xstate.actor` events announcing the actor and, depth first, every child in its
   * machine snapshot (parents before children), all mapped: what XState emitted before
   * anyone could observe (in the actors' constructors).
   */
  actorEvents(actor: AnyActorRef, root: string): InspectionEvent[] {
    const out: InspectionEvent[] = [];
    const visit = (ref: AnyActorRef) => {
      out.push({ type: '@xstate.actor', actorRef: this.ref(ref, root), rootId: root });
      const children = (ref.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> } | undefined)?.children;
      if (children && typeof children === 'object') for (const child of Object.values(children)) if (child) visit(child);
    };
    visit(actor);
    return out;
  }
}
