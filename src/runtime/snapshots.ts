/**
 * Snapshots of an agent's logic as the runtime stores and answers them, and when a turn of
 * a machine is over. Pure functions over XState actors.
 */
import { fromPromise, type AnyActorRef } from 'xstate';
import { isTurnLogic } from '../fromTurn.js';
import type { AgentDefinition } from '../defineAgent.js';
import type { Json } from '../store/Store.js';
import { copyJson, copyPlain, describeThrown } from '../validate.js';

/**
 * The persisted snapshot as it is stored: a plain JSON copy. XState leaves `output`/`error`
 * as `undefined` at the top level, which JSON drops; anything else that is not JSON makes
 * the turn fail (a context holding a Date, a function or a cycle would not survive eviction).
 */
export function storedSnapshot(agentId: string, actor: AnyActorRef): unknown {
  let persisted: unknown;
  try {
    persisted = actor.getPersistedSnapshot();
  } catch (err) {
    if (err instanceof RangeError) {
      // XState's own copy recursed forever: a cycle in the context. Say where it is.
      copyJson((actor.getSnapshot() as { context?: unknown }).context, 'the agent context');
    }
    throw notPersistable(agentId, err);
  }
  return copyJson(persisted, 'the agent snapshot', { dropUndefined: true });
}

export function notPersistable(agentId: string, err: unknown): TypeError {
  return new TypeError(
    `the state of agent "${agentId}" cannot be persisted (${describeThrown(err)}); ` +
      'spawn child actors from logic registered by name in setup({ actors })',
    { cause: err },
  );
}

/** What `ask` answers with: a turn function's state, or a machine's value and context (copies). */
export function resultState(def: AgentDefinition, snapshot: unknown): unknown {
  if (snapshot === undefined || snapshot === null) return undefined;
  const s = snapshot as { value?: unknown; context?: { state?: unknown } };
  if (isTurnLogic(def.logic)) return copyPlain(s.context?.state);
  return copyPlain({ value: s.value, context: s.context });
}

/** The state value of a machine snapshot, unless it says nothing (`{}`: a machine without states). */
export function stateValueOf(snapshot: unknown): Json | undefined {
  const value = (snapshot as { value?: Json } | null)?.value;
  if (value === undefined || (typeof value === 'object' && value !== null && Object.keys(value).length === 0)) return undefined;
  return value;
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(describeThrown(err));
}

/** The source of XState's promise logic, to tell promise children from long-lived ones. */
const PROMISE_TRANSITION = String(fromPromise(async () => undefined).transition);
const promiseLike = new WeakMap<object, boolean>();
function isPromiseLogic(logic: unknown): boolean {
  if (typeof logic !== 'object' || logic === null) return false;
  let known = promiseLike.get(logic);
  if (known === undefined) {
    known = String((logic as { transition?: unknown }).transition) === PROMISE_TRANSITION;
    promiseLike.set(logic, known);
  }
  return known;
}

type ActorShape = AnyActorRef & { logic?: unknown };
const snapshotOf = (actor: AnyActorRef) =>
  actor.getSnapshot() as { status: string; children?: Record<string, ActorShape>; machine?: unknown };

/**
 * At rest: not running, or a machine whose children are all at rest. An active promise,
 * callback or observable child is work in progress; a child machine waiting for events
 * is at rest.
 */
export function quiescent(actor: AnyActorRef): boolean {
  const snap = snapshotOf(actor);
  if (snap.status !== 'active') return true;
  if (!snap.machine || !snap.children) return false;
  return Object.values(snap.children).every(quiescent);
}

/**
 * A turn of a machine is over when the event is processed and every promise child (at any
 * depth) has settled. A long-lived child (a callback, an observable) does not keep the turn
 * open: it keeps the agent resident instead (see `hasLiveChildren`).
 */
export function turnOver(actor: AnyActorRef): boolean {
  const snap = snapshotOf(actor);
  if (snap.status !== 'active' || !snap.children) return true;
  for (const key in snap.children) {
    const child = snap.children[key]!;
    if (isPromiseLogic(child.logic)) {
      if (snapshotOf(child).status === 'active') return false;
    } else if (!turnOver(child)) return false;
  }
  return true;
}

/** A long-lived child (callback, observable…) is active somewhere in the machine. */
export function hasLiveChildren(actor: AnyActorRef): boolean {
  const snap = snapshotOf(actor);
  if (snap.status !== 'active' || !snap.children) return false;
  for (const key in snap.children) {
    const child = snap.children[key]!;
    if (snapshotOf(child).machine ? hasLiveChildren(child) : snapshotOf(child).status === 'active') return true;
  }
  return false;
}
