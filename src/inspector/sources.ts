/**
 * Where the inspector's data comes from: a running runtime (live, with events) or a
 * stored database (read-only, nothing runs). The server and the page only see this
 * interface.
 *
 * A live runtime is read only through its public API, as any tool would: `list`, `get`,
 * `stats`, `on`, and the read views `residency`, `mailbox`, `history`, `timers`,
 * `machineOf` and `logicValue`. Nothing here reaches into the runtime's internals.
 *
 * A damaged agent (its stored data cannot be read: StoreCorruptionError) is left out of
 * the overview and listed in its `damaged`; `agent()` of it rejects with that error,
 * which the server answers with what is damaged.
 */
import type { AnyStateMachine } from 'xstate';
import type { AgentInfo, Runtime, RuntimeStats } from '../createRuntime.js';
import { agentRow } from '../runtime/agentRows.js';
import { StoreCorruptionError } from '../errors.js';
import { RUNTIME_EVENT_NAMES } from '../events.js';
import type { AgentRecord, RolloutEntry, Store, StoredMessage, TimerRecord } from '../store/Store.js';
import type { InspectorEvent } from './EventBatcher.js';

/** An agent as the overview and its page show it (a stored view: unloaded, never resident). */
export type AgentRow = AgentInfo;

/** An agent the overview could not read: its id and what is damaged. */
export interface DamagedAgent {
  id: string;
  error: string;
}

export interface SnapshotQuery {
  limit: number;
  cursor: string | null;
  type?: string;
  resident?: boolean;
  state?: string;
  /** How many ids of the LRU order and of each queue to include. */
  top: number;
}

export interface Snapshot {
  live: boolean;
  at: number;
  stats: RuntimeStats | null;
  policy: string | null;
  /** Next victim first. */
  lru: string[];
  slotQueue: string[];
  permitQueue: string[];
  agents: AgentRow[];
  cursor: string | null;
  /** Agents of this page left out because their stored data cannot be read. */
  damaged: DamagedAgent[];
}

/** What the page knows of an agent's own logic. */
export interface LogicView {
  /** `machine`: an XState machine of the user's; `turn`: a fromTurn function; `unknown`: a stored view. */
  kind: 'machine' | 'turn' | 'unknown';
  /** `/api/machine/<type>` can draw it. */
  drawable: boolean;
  /** The logic's state value: the live one when resident, else the stored snapshot's (null when none). */
  value: unknown;
  resident: boolean;
}

/** One pending durable timer, as the page lists it. */
export interface TimerView {
  key: string;
  /** The deadline (ms since the epoch, on the runtime's clock). */
  at: number;
  /** The type of the message it will deliver. */
  type: string;
}

/** An agent's pending durable timers: how many, the next deadline, the earliest `limit` of them. */
export interface TimersView {
  /** All pending timers of the agent (the list may hold fewer). */
  count: number;
  /** The earliest deadline, or null when none is pending. */
  next: number | null;
  /** The server's time when read (ms since the epoch), for "in 12 s". */
  now: number;
  /** Earliest first (ties by key). */
  list: TimerView[];
}

export interface AgentDetail {
  agent: AgentRow;
  mailbox: StoredMessage[];
  rollout: RolloutEntry[];
  logic: LogicView;
  timers: TimersView;
}

/** How many of each an agent's page reads; `timers` defaults to 20. */
export interface AgentLimits {
  rollout: number;
  mailbox: number;
  timers?: number;
}

/** The default number of an agent's timers listed. */
export const TIMERS_LIMIT = 20;

/** The timers block of an agent's page from its earliest pending timers and its counter. */
export function timersView(count: number, timers: readonly TimerRecord[]): TimersView {
  return {
    count: Math.max(count, timers.length),
    next: timers.length > 0 ? timers[0]!.at : null,
    now: Date.now(),
    list: timers.map((t) => ({ key: t.key, at: t.at, type: t.message.type })),
  };
}

export interface InspectorSource {
  readonly live: boolean;
  snapshot(query: SnapshotQuery): Promise<Snapshot>;
  /** `null` when the agent does not exist; rejects with StoreCorruptionError when its stored data cannot be read. */
  agent(id: string, limits: AgentLimits): Promise<AgentDetail | null>;
  /** An agent type's logic when it is a statechart of the user's (null otherwise or unknown). */
  machine(type: string): AnyStateMachine | null;
  /**
   * Subscribes to every runtime event; returns the unsubscribe. The listener gets a
   * function that builds the event, so a full batch costs nothing more. Absent for stored views.
   */
  subscribe?(listener: (make: () => InspectorEvent) => void): () => void;
}

/** The state value the latest snapshot entry of a rollout recorded; undefined when none did. */
function lastValue(rollout: readonly RolloutEntry[]): unknown {
  for (let i = rollout.length - 1; i >= 0; i--) {
    const r = rollout[i]!;
    if (r.kind === 'snapshot' && r.value !== undefined) return r.value;
  }
  return undefined;
}

/**
 * The logic's stored state value: the latest one the rollout (already read) recorded with
 * a snapshot, else read from the snapshot itself (older rollouts, machines without states).
 */
async function storedValue(store: Store, id: string, rollout: readonly RolloutEntry[]): Promise<unknown> {
  const value = lastValue(rollout);
  if (value !== undefined) return value;
  const snapshot = await store.loadSnapshot(id);
  return snapshot !== null && typeof snapshot === 'object' && 'value' in snapshot ? (snapshot as { value: unknown }).value : null;
}

/** Makes an event JSON-friendly (errors become their message), named. */
function plain(name: string, payload: unknown): InspectorEvent {
  const p = payload as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k in p) {
    const v = p[k];
    out[k] = v instanceof Error ? v.message : v;
  }
  out.name = name;
  return out as InspectorEvent;
}

/**
 * The state value an evicted agent's logic was stored with: the latest one its rollout
 * recorded. The last `limit` entries (already read) usually hold it; when they do not and
 * there are more, earlier entries are read, eight times as many each time. Null when no
 * snapshot of the rollout recorded one (the agent never finished a turn).
 */
async function historyValue(runtime: Runtime, id: string, rollout: readonly RolloutEntry[], limit: number): Promise<unknown> {
  let entries = rollout;
  for (;;) {
    const value = lastValue(entries);
    if (value !== undefined) return value;
    if (entries.length < limit) return null;
    limit *= 8;
    entries = await runtime.history(id, { limit });
  }
}

/** A running runtime, read through its public API (the `store` of old options is not needed). */
export function runtimeSource(runtime: Runtime): InspectorSource {
  return {
    live: true,
    async snapshot(q) {
      const books = runtime.residency({ top: q.top });
      const page = await runtime.list({ limit: q.limit, cursor: q.cursor, type: q.type, resident: q.resident });
      let agents: AgentRow[] = page.agents;
      if (q.state) agents = agents.filter((a) => a.state === q.state);
      return {
        live: true,
        at: Date.now(),
        stats: runtime.stats(),
        policy: books.policy,
        lru: books.lru,
        slotQueue: books.slotQueue,
        permitQueue: books.permitQueue,
        agents,
        cursor: page.cursor,
        damaged: page.damaged ?? [],
      };
    },
    async agent(id, limits) {
      let agent: AgentInfo;
      try {
        agent = await runtime.get(id);
      } catch (err) {
        if ((err as { code?: string }).code === 'AGENT_NOT_FOUND') return null;
        throw err;
      }
      const [mailbox, rollout, timers] = await Promise.all([
        runtime.mailbox(id, { limit: limits.mailbox }),
        runtime.history(id, { limit: limits.rollout }),
        runtime.timers(id, { limit: limits.timers ?? TIMERS_LIMIT }),
      ]);
      const machine = runtime.machineOf(agent.type);
      const live = runtime.logicValue(id);
      const logic: LogicView = {
        kind: machine ? 'machine' : 'turn',
        drawable: machine !== null,
        value: !machine ? null : live !== undefined ? live : await historyValue(runtime, id, rollout, limits.rollout),
        resident: live !== undefined,
      };
      return { agent, mailbox, rollout, logic, timers: timersView(agent.timers, timers) };
    },
    machine: (type) => runtime.machineOf(type),
    subscribe(listener) {
      const offs = RUNTIME_EVENT_NAMES.map((name) => runtime.on(name, (payload) => listener(() => plain(name, payload))));
      return () => {
        for (const off of offs) off();
      };
    },
  };
}

/**
 * A read-only view of a stored database: every agent is unloaded, since nothing runs.
 * A row reads what `residency ls` reads of the agent (its counters; its snapshot and last
 * rollout entry only to find damage), so both name the same damaged agents.
 */
export function storeSource(store: Store): InspectorSource {
  // O(1) per agent whatever its history: the counters, by the runtime's one row builder; the
  // snapshot and the last rollout entry are read only to find damage.
  const row = async (rec: AgentRecord): Promise<AgentRow> => {
    const [stats] = await Promise.all([store.agentStats([rec.id]), store.rollout(rec.id, { limit: 1 }), store.loadSnapshot(rec.id)]);
    return agentRow(rec, stats.get(rec.id), null);
  };
  return {
    live: false,
    async snapshot(q) {
      const page = q.resident === true ? { agents: [], cursor: null } : await store.listAgents({ type: q.type, limit: q.limit, cursor: q.cursor });
      // One damaged agent does not fail the page: it is left out, and named.
      const read = await Promise.all(
        page.agents.map((rec) =>
          row(rec).catch((err: unknown): DamagedAgent => {
            if (!(err instanceof StoreCorruptionError)) throw err;
            return { id: rec.id, error: err.what };
          }),
        ),
      );
      let agents = read.filter((r): r is AgentRow => 'state' in r);
      const damaged = read.filter((r): r is DamagedAgent => !('state' in r));
      if (q.state) agents = agents.filter((a) => a.state === q.state);
      return { live: false, at: Date.now(), stats: null, policy: null, lru: [], slotQueue: [], permitQueue: [], agents, cursor: page.cursor, damaged };
    },
    async agent(id, limits) {
      const rec = await store.getAgent(id);
      if (!rec) return null;
      const [agent, mailbox, rollout, timers] = await Promise.all([
        row(rec),
        store.pending(id, limits.mailbox),
        store.rollout(id, { limit: limits.rollout }),
        store.timers(id, limits.timers ?? TIMERS_LIMIT),
      ]);
      const logic: LogicView = { kind: 'unknown', drawable: false, value: await storedValue(store, id, rollout), resident: false };
      return { agent, mailbox, rollout, logic, timers: timersView(agent.timers, timers) };
    },
    machine: () => null,
  };
}
