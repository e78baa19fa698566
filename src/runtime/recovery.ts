/**
 * Start-up recovery: turns that a process left in flight when it died are recorded
 * `crashed` (or left pending to run again, for definitions with `redeliverCrashed`), and
 * the agents with pending mail are listed to be scheduled.
 */
import type { Clock } from '../clock.js';
import type { AgentDefinition } from '../defineAgent.js';
import type { RuntimeEmitter, RuntimeEvents } from '../events.js';
import type { AgentRecord, Store } from '../store/Store.js';

export async function recover(
  store: Store,
  definitions: Map<string, AgentDefinition>,
  clock: Clock,
  emitter: RuntimeEmitter,
  /** A shared store: only these shards (just taken over from a process that died or stopped). */
  shards?: readonly number[],
): Promise<{ crashed: RuntimeEvents['turn.finished'][]; recovered: Map<string, [AgentRecord, number]> }> {
  const crashed: RuntimeEvents['turn.finished'][] = [];
  const cluster = store.cluster;
  const inFlight = shards && cluster ? await cluster.inFlight(shards) : await store.turnsInFlight();
  for (const { agentId, seq } of inFlight) {
    const rec = await store.getAgent(agentId).catch(() => null);
    const def = rec ? definitions.get(rec.type) : undefined;
    if (def?.redeliverCrashed) continue; // the message stays pending and runs again
    const at = clock.now();
    // A remote ask of that message hears that its turn crashed.
    const head = cluster ? (await store.pending(agentId, 1).catch(() => []))[0] : undefined;
    const reply = head?.seq === seq && head.replyTo !== undefined ? { reply: { outcome: 'crashed' as const } } : {};
    await store.commitTurn({ agentId, seq, outcome: 'crashed', at, durationMs: 0, ...reply }).catch(() => {});
    crashed.push({ id: agentId, at, seq, outcome: 'crashed', durationMs: 0 });
  }
  const recovered = new Map<string, [AgentRecord, number]>();
  for (const id of shards && cluster ? await cluster.withPending(shards) : await store.agentsWithPending()) {
    const rec = await store.getAgent(id).catch((err: unknown) => {
      emitter.emit('error', () => ({ id, at: clock.now(), error: err as Error, where: 'recovery' }));
      return null;
    });
    if (!rec || !definitions.has(rec.type)) continue;
    recovered.set(id, [rec, await store.mailboxSize(id)]);
  }
  return { crashed, recovered };
}
