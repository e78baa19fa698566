/**
 * A statechart's own delays, made durable. XState keeps the delayed events of an actor
 * (`after`, `raise(…, { delay })`, `sendTo(self, …, { delay })`) in its system's scheduler;
 * the runtime gives machine agents a clock whose timers never fire (Actors.ts), and after
 * every turn compares what the scheduler holds with what it held before: each new delayed
 * event addressed to the agent itself becomes a durable timer (key `xstate:<id>`, deadline
 * now + delay), committed with the turn; each one XState cancelled meanwhile (the state
 * was left) is cancelled with it. When the deadline comes, the event enters the agent's
 * mailbox and is handled as a turn, so the agent need not stay in memory to be woken, and
 * its delays survive eviction and restarts (XState itself drops them on restore).
 *
 * A delayed event that XState scheduled before a reload cannot be cancelled by the new
 * actor (XState no longer knows it): if the state it belonged to was left meanwhile, it
 * still arrives, and a statechart ignores an event its state does not take (a turn that
 * changes nothing).
 */
import { createActor, createMachine, type AnyActorRef } from 'xstate';
import type { Message, TimerRecord } from '../store/Store.js';

interface Scheduled {
  source: AnyActorRef;
  target: AnyActorRef;
  event: Message;
  delay: number;
  id: string;
}

/** The prefix of the keys of a machine's own delays among its timers. */
export const DELAY_KEY_PREFIX = 'xstate:';

/** The delayed events XState holds for `actor` itself, by timer key. */
export function scheduledDelays(actor: AnyActorRef): Map<string, Scheduled> {
  const out = new Map<string, Scheduled>();
  const held = (actor.system as unknown as { getSnapshot?: () => { _scheduledEvents?: Record<string, Scheduled> } }).getSnapshot?.()._scheduledEvents ?? {};
  for (const e of Object.values(held)) if (e.target === actor) out.set(`${DELAY_KEY_PREFIX}${e.id}`, e);
  return out;
}

/** The durable timers to schedule and cancel for what changed between `before` and now. */
export function delayChanges(
  agentId: string,
  actor: AnyActorRef,
  before: ReadonlyMap<string, unknown>,
  now: number,
): { schedule: TimerRecord[]; cancel: string[] } | null {
  const after = scheduledDelays(actor);
  const schedule: TimerRecord[] = [];
  const cancel: string[] = [];
  for (const [key, e] of after) {
    if (!before.has(key)) schedule.push({ agentId, key, at: now + e.delay, message: structuredClone(e.event) });
  }
  for (const key of before.keys()) if (!after.has(key)) cancel.push(key);
  return schedule.length === 0 && cancel.length === 0 ? null : { schedule, cancel };
}

let supported: boolean | null = null;
/**
 * XState exposes what its scheduler holds (`system.getSnapshot()._scheduledEvents`): checked
 * once. Without it (another XState version), delays stay in memory as XState runs them.
 */
export function durableDelaysSupported(): boolean {
  if (supported === null) {
    const probe = createActor(createMachine({ initial: 'a', states: { a: { after: { 1: 'b' } }, b: {} } }), {
      clock: { setTimeout: () => 0, clearTimeout: () => {} },
    }).start();
    supported = scheduledDelays(probe).size === 1;
    probe.stop();
  }
  return supported;
}
