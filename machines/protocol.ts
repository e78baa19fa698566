/**
 * The wiring between the two statecharts, as data: which agent effect becomes which
 * supervisor event, and which supervisor effect becomes which agent event. The runtime,
 * the simulation and the model-based tests all route through these, so there is one
 * protocol (docs/semantics.md, "The protocol between them").
 */
import type { AgentContext, AgentEvent } from './agent.js';
import type { SupervisorEffects, SupervisorEvent } from './supervisor.js';

/** Agent effects that are messages to the supervisor, and the event each becomes. */
export const agentToSupervisor = {
  requestSlot: 'slot.request',
  returnSlot: 'agent.released',
  notifyLoaded: 'agent.loaded',
  notifyLoadFailed: 'agent.loadFailed',
  becomeEvictable: 'agent.evictable',
  requestPermit: 'permit.request',
  cancelPermit: 'permit.cancel',
  returnPermit: 'permit.release',
  endTurn: 'permit.release',
  refuseEvict: 'evict.refused',
  notifyFlushing: 'agent.flushing',
  notifyFlushed: 'agent.flushed',
  notifyFlushFailed: 'agent.flushFailed',
  notifyPinned: 'agent.pinned',
  notifyReleased: 'agent.released',
} as const satisfies Record<string, SupervisorEvent['type']>;

export type AgentToSupervisorEffect = keyof typeof agentToSupervisor;

/** The supervisor event for an agent effect, given the agent's context and the time. */
export function supervisorEventFor(effect: AgentToSupervisorEffect, context: AgentContext, now: number): SupervisorEvent {
  const type = agentToSupervisor[effect];
  const id = context.id;
  if (type === 'slot.request') return { type, id, pinned: context.pinned };
  if (type === 'agent.evictable') return { type, id, at: now };
  return { type, id } as SupervisorEvent;
}

/**
 * Agent actions that send each effect to the supervisor through `send`. Spread them
 * into `agentMachine.provide({ actions })`, next to the runtime's own effects.
 */
export function supervisorBoundActions(
  send: (event: SupervisorEvent, agentId: string) => void,
  now: () => number,
): Record<AgentToSupervisorEffect, (args: { context: AgentContext }) => void> {
  const out = {} as Record<AgentToSupervisorEffect, (args: { context: AgentContext }) => void>;
  for (const effect of Object.keys(agentToSupervisor) as AgentToSupervisorEffect[]) {
    out[effect] = ({ context }) => send(supervisorEventFor(effect, context, now()), context.id);
  }
  return out;
}

/** The agent event for each supervisor effect that addresses an agent. */
export function agentEventFor(
  effect: 'grantSlot' | 'grantPermit' | 'evict',
  params: SupervisorEffects['grantSlot'] | SupervisorEffects['evict'],
): AgentEvent {
  if (effect === 'grantSlot') return { type: 'slot.granted' };
  if (effect === 'grantPermit') return { type: 'permit.granted' };
  return { type: 'evict', reason: (params as SupervisorEffects['evict']).reason };
}
