/**
 * The one agent-row builder: what `runtime.get`/`list` answer, what `residency ls/show/stats`
 * print and what the inspector shows, built from the store's counters (O(1) per agent,
 * never O(history)) and, for a runtime, what it knows of the agent in memory.
 */
import type { LifecycleState } from '../../machines/agent.js';
import { StoreCorruptionError } from '../errors.js';
import type { AgentRecord, AgentStats, Store } from '../store/Store.js';

export interface AgentInfo {
  id: string;
  type: string;
  parent: string | null;
  state: LifecycleState;
  resident: boolean;
  pinned: boolean;
  /** Messages accepted and not yet handled. */
  mailbox: number;
  lastActiveAt: number | null;
  /** Turns finished (any outcome). */
  turns: number;
  /** Durable timers pending (scheduled and not yet fired or cancelled). */
  timers: number;
}

/** What a runtime knows of an agent in memory (none for a stored database). */
export interface LiveView {
  state: LifecycleState;
  pinned: boolean;
  lastActiveAt: number;
}

const RESIDENT: ReadonlySet<LifecycleState> = new Set(['loading', 'idle', 'running', 'flushing']);

export function agentRow(record: AgentRecord, stats: AgentStats | undefined, live: LiveView | null): AgentInfo {
  const state = live?.state ?? 'unloaded';
  return {
    id: record.id,
    type: record.type,
    parent: record.parent,
    state,
    resident: RESIDENT.has(state),
    pinned: record.pinned || (live?.pinned ?? false),
    mailbox: stats?.mailbox ?? 0,
    lastActiveAt: live?.lastActiveAt ?? stats?.lastActiveAt ?? record.createdAt,
    turns: stats?.turns ?? 0,
    timers: stats?.timers ?? 0,
  };
}

/**
 * The rows of `records` (one counters read for all of them). An agent whose counters
 * cannot be read is left out and named in `damaged`; the others are served.
 */
export async function readRows(
  store: Store,
  records: readonly AgentRecord[],
  live: (id: string) => LiveView | null = () => null,
): Promise<{ rows: AgentInfo[]; damaged: { id: string; error: string; cause: StoreCorruptionError }[] }> {
  const damaged: { id: string; error: string; cause: StoreCorruptionError }[] = [];
  let stats: Map<string, AgentStats>;
  try {
    stats = await store.agentStats(records.map((r) => r.id));
  } catch (err) {
    if (!(err instanceof StoreCorruptionError)) throw err;
    // Said apart one by one: one damaged agent does not hide the others.
    stats = new Map();
    for (const r of records) {
      try {
        const one = (await store.agentStats([r.id])).get(r.id);
        if (one) stats.set(r.id, one);
      } catch (e) {
        if (!(e instanceof StoreCorruptionError)) throw e;
        damaged.push({ id: r.id, error: e.message, cause: e });
      }
    }
  }
  const bad = new Set(damaged.map((d) => d.id));
  return { rows: records.filter((r) => !bad.has(r.id)).map((r) => agentRow(r, stats.get(r.id), live(r.id))), damaged };
}
