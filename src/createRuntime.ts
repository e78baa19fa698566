/**
 * `createRuntime`: the public face of residency. It validates input, orders calls
 * through the accept pipeline, and leaves residency to the Host (the two statecharts
 * run for real).
 */
import { hostname } from 'node:os';
import type { AnyStateMachine, InspectionEvent } from 'xstate';
import type { PolicyFactory } from '../machines/policy.js';
import type { LifecycleState } from '../machines/agent.js';
import type { SupervisorContext } from '../machines/supervisor.js';
import { systemClock, type Clock } from './clock.js';
import type { AgentDefinition, Retention } from './defineAgent.js';
import { AgentNotFoundError, AskTimeoutError, FencedError, RuntimeStoppedError, StoreCorruptionError, UnknownAgentTypeError } from './errors.js';
import { RUNTIME_EVENT_NAMES, RuntimeEmitter, type RuntimeEventName, type RuntimeEvents } from './events.js';
import { Accepter } from './runtime/Accepter.js';
import { isTurnLogic } from './fromTurn.js';
import { isInspectionObserver, toNext, type InspectionObserver } from './runtime/stately.js';
import { Host, type TurnResult } from './runtime/Host.js';
import { readRows, type AgentInfo, type LiveView } from './runtime/agentRows.js';
export type { AgentInfo } from './runtime/agentRows.js';
import { fencedStore } from './runtime/fencedStore.js';
import { Membership, type ClusterStats } from './runtime/Membership.js';
import { assertOptions } from './runtime/options.js';
import { recover } from './runtime/recovery.js';
import { assertTimerKey, timerOf, type ScheduleOptions } from './runtime/Timers.js';
import { INTERNALS, type RuntimeInternals } from './runtime/internals.js';
import { sqliteStore } from './store/sqliteStore.js';
import type { AgentRecord, AppendRequest, AppendResult, Message, RolloutEntry, Store, StoredMessage } from './store/Store.js';
import { assertAgentId, assertIntegerAtLeast, copyJson, copyMessage, describeValue } from './validate.js';

export interface RuntimeOptions {
  /** The agent types this runtime can run. */
  agents: readonly AgentDefinition[];
  /** Most unpinned agents in memory at once (loading, resident and flushing). */
  residentCap: number;
  /** Most turns running at once; ≤ `residentCap`. */
  runningCap: number;
  /** Where agents live. Default: `sqliteStore('./.residency/residency.db')`, durable with no setup. */
  store?: Store;
  /** Evict agents idle this long (ms), even below the cap. Default: never. */
  idleTimeout?: number | null;
  /** Time and timers. Default: the system clock. */
  clock?: Clock;
  /** Eviction policy. Default: LRU. */
  policy?: PolicyFactory;
  /**
   * How much of each agent's history (rollout) to keep, unless its definition says:
   * `{ keepTurns }` or `'all'`. Default `{ keepTurns: 1000 }`: a long-lived agent's
   * history stays bounded (pruned a small batch per commit); counters (turns, mailbox,
   * last activity) stay exact.
   */
  history?: Retention;
  /** How long `stop()` lets running turns finish before interrupting them (ms). Default 10,000. */
  stopTimeout?: number;
  /**
   * The bridge to Stately's inspector: an XState inspection observer, such as
   * `createBrowserInspector().inspect` or `createWebSocketInspector().inspect` from
   * `@statelyai/inspect`. From the runtime's creation on, it gets the `@xstate.actor`,
   * `@xstate.event` and `@xstate.snapshot` events of every agent while it is resident
   * (nothing else: not the runtime's supervisor, not microsteps or actions), with session
   * ids that name agents: the agent id for its root actor, `<agentId>/<sessionId>` for
   * actors inside it (see src/runtime/stately.ts). Default: none, and inspection costs
   * nothing.
   */
  inspect?: InspectionObserver;
}

/** A runtime event, as `runtime.inspect()` observers get it besides XState's inspection events. */
export interface ResidencyInspectionEvent {
  type: '@residency.event';
  name: RuntimeEventName;
  payload: unknown;
}

/** The supervisor's books as tools see them (`runtime.residency()`). */
export interface ResidencyView {
  /** The eviction policy's name (`lru` by default). */
  policy: string;
  /** Evictable agents, next victim first. */
  lru: string[];
  /** Agents waiting for a resident slot, first come first. */
  slotQueue: string[];
  /** Agents waiting for a running permit, first come first. */
  permitQueue: string[];
}

export interface SpawnRequest {
  id: string;
  input?: unknown;
  parent?: string;
  pinned?: boolean;
}


export interface ListRequest {
  resident?: boolean;
  type?: string;
  parent?: string;
  limit?: number;
  cursor?: string | null;
}

export interface RuntimeStats {
  residentCap: number;
  runningCap: number;
  resident: number;
  loading: number;
  flushing: number;
  running: number;
  pinned: number;
  waitingForSlot: number;
  waitingForPermit: number;
  loads: number;
  evictions: number;
  hits: number;
  misses: number;
  /**
   * On a store several processes share (postgresStore): this process's member id, the shards
   * it owns, and the cluster as last read (members, their shard counts, shard moves). The
   * counts above are this process's.
   */
  cluster?: ClusterStats;
}

export interface Runtime {
  spawn(type: string, request: SpawnRequest): Promise<{ id: string; type: string; parent: string | null; pinned: boolean }>;
  send(id: string, message: Message): Promise<{ seq: number; messageId: string }>;
  ask(id: string, message: Message, options?: { timeout?: number }): Promise<TurnResult>;
  interrupt(id: string): Promise<void>;
  close(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  get(id: string): Promise<AgentInfo>;
  /** Agents whose stored record cannot be read are left out and listed in `damaged` (with an `error` event each). */
  list(request?: ListRequest): Promise<{ agents: AgentInfo[]; cursor: string | null; damaged?: { id: string; error: string }[] }>;
  stats(): RuntimeStats;
  on<K extends RuntimeEventName>(name: K, handler: (payload: RuntimeEvents[K]) => void): () => void;
  /**
   * Observes everything, from now until `unsubscribe()`: the XState inspection events of
   * every resident agent (all types, with the session ids of the Stately bridge: the agent
   * id for its root actor, `<agentId>/<sessionId>` inside it) and of the runtime's
   * supervisor (session id `@residency/supervisor`), and every runtime event as a
   * `@residency.event`. Agents already resident are announced with an `@xstate.actor`.
   * A function or an observer `{ next }`. For Stately's inspector, use the `inspect`
   * option of createRuntime, which forwards only what it understands.
   */
  inspect(observer: InspectionObserver<InspectionEvent | ResidencyInspectionEvent>): { unsubscribe(): void };
  /**
   * Schedules a message to an agent (a durable timer): in `delay` ms, or `at` a time (ms
   * since the epoch, on the runtime's clock). A second schedule with the same `key`
   * replaces the first. Resolves once durable with the key and the deadline. When it comes,
   * the message enters the agent's mailbox once and is handled as a turn, loading the
   * agent if needed; a deadline that passed while the process was down fires at the next
   * start. Bad input (unknown agent, a past or non-finite time, a bad message) is refused.
   */
  schedule(id: string, message: Message, options?: ScheduleOptions): Promise<{ key: string; at: number }>;
  /** Cancels the agent's timer `key`; resolves `true` when something was cancelled. */
  cancelSchedule(id: string, key: string): Promise<boolean>;
  /**
   * Pins an agent from now on: it loads when it has mail like any agent, is never evicted,
   * and does not count against the resident cap. For this runtime's life (a restart uses
   * the `pinned` given at spawn).
   */
  pin(id: string): Promise<void>;
  /**
   * Takes a quarantined (`failed`) agent out of quarantine after its stored record was
   * repaired (or the definition that restores it deployed): it loads again when it has
   * mail. Resolves `false` when the agent was not quarantined.
   */
  retry(id: string): Promise<boolean>;
  /**
   * Read-only views for tools such as the inspector (`serveInspector(runtime)`): the
   * supervisor's books (its policy, the eviction order and the queues, the first `top` of
   * each), an agent's pending messages and rollout (the last `limit`), the statechart of
   * an agent type (null for fromTurn logic) and a resident agent's state value.
   */
  residency(options?: { top?: number }): ResidencyView;
  mailbox(id: string, options?: { limit?: number }): Promise<StoredMessage[]>;
  history(id: string, options?: { limit?: number }): Promise<RolloutEntry[]>;
  /** The agent's pending durable timers, earliest first (ties by key), at most `limit`. */
  timers(id: string, options?: { limit?: number }): Promise<import('./store/Store.js').TimerRecord[]>;
  machineOf(type: string): AnyStateMachine | null;
  logicValue(id: string): unknown;
  stop(): Promise<void>;
}

/** Where agents live when no store is given: `.residency/residency.db` under the working directory. */
export const DEFAULT_DB = './.residency/residency.db';

/** The history each agent keeps when neither the runtime nor its definition says: its last 1,000 turns. */
export const DEFAULT_HISTORY: Retention = Object.freeze({ keepTurns: 1000 });


/**
 * Creates a runtime. Agents already in the store are not loaded: those with pending
 * messages are scheduled (they load as slots allow); turns left in flight by a process
 * that died are recorded `crashed` (or re-run, for definitions with `redeliverCrashed`).
 *
 * @example
 * const runtime = await createRuntime({ agents: [chat], residentCap: 32, runningCap: 8 });
 * await runtime.spawn('chat', { id: 'alice' });
 * await runtime.send('alice', { type: 'user.message', text: 'hi' });
 */
export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  assertOptions(options);
  const ownStore = options.store === undefined;
  const inner = options.store ?? sqliteStore(DEFAULT_DB);
  const clock = options.clock ?? systemClock;
  const emitter = new RuntimeEmitter(() => clock.now());
  const definitions = new Map(options.agents.map((d) => [d.type, d]));

  // One owner per store: another live runtime's store is refused (StoreLockedError).
  let epoch: number;
  try {
    ({ epoch } = await inner.acquire({ pid: process.pid, host: hostname(), since: clock.now() }));
  } catch (err) {
    if (ownStore) await inner.close().catch(() => {});
    throw err;
  }
  // Message ids: unique per store without randomness (the owner epoch grows with every
  // runtime that opens the store), so the same calls give the same ids in tests.
  let counter = 0;
  const idPrefix = epoch.toString(36);
  const newId = () => `${idPrefix}.${(counter++).toString(36)}`;
  let stopped = false;
  let fenced: FencedError | null = null;
  const store = fencedStore(inner, (err) => onFenced(err));

  const host: Host = new Host({
    store,
    clock,
    emitter,
    definitions,
    residentCap: options.residentCap,
    runningCap: options.runningCap,
    idleTimeout: options.idleTimeout ?? null,
    policy: options.policy,
    newId,
    keepAlive: clock === systemClock,
    history: options.history ?? DEFAULT_HISTORY,
  });

  /** Another owner took the store over: drop every agent without writing, refuse every call. */
  function onFenced(err: FencedError): void {
    if (fenced) return;
    fenced = err;
    emitter.emit('error', () => ({ id: err.agentId ?? '*', at: clock.now(), error: err, where: 'store' }));
    host.control.dropAll(err);
    host.supervisor.send({ type: 'stop' });
  }

  if (options.inspect !== undefined) host.inspection.attach(toNext(options.inspect), { stately: true });

  const accepter = new Accepter(store, host.buffer, {
    needsCheck: (id) => !host.entries.has(id),
    refuse: (record) => (definitions.has(record.type) ? undefined : new UnknownAgentTypeError(record.type, [...definitions.keys()], record.id)),
    hold: (id, record) => {
      // On a shared store, an agent of a shard owned by another process gets the mail only
      // (the store wakes its owner).
      if (!host.owns(id)) return false;
      const entry = scheduleRecovered(id) ?? (record ? host.ensureEntry(record) : undefined);
      if (entry) entry.holds++;
      return entry !== undefined;
    },
    accepted: (op, result) => {
      if (result.duplicate) return;
      const entry = host.entries.get(op.request.agentId);
      if (entry) host.accepted(entry, result.seq, result.messageId, op.request.message);
    },
    release: (id) => {
      const entry = host.entries.get(id);
      if (entry) host.release(entry);
    },
  });

  // --- recovery: turns left in flight by a process that died, agents with pending mail ---
  // Their events are emitted once the caller could subscribe (the first turn of the event
  // loop after createRuntime resolves), and agents with mail are scheduled then too.
  const { crashed, recovered } = await recover(store, definitions, clock, emitter);
  const scheduleRecovered = (id: string) => {
    const r = recovered.get(id);
    recovered.delete(id);
    return r && !host.entries.has(id) ? host.withMail(r[0], r[1]) : host.entries.get(id);
  };
  // A shared store: shards taken over later are recovered the same way, mail from other
  // processes is counted, asks are answered across processes (Membership.ts).
  const cluster = store.cluster;
  const membership =
    cluster &&
    new Membership(host, cluster, {
      pollInterval: Math.min(1_000, Math.max(50, Math.floor(cluster.leaseTtl / 10))),
      report: (error) => emitter.emit('error', () => ({ id: '*', at: clock.now(), error: error as Error, where: 'cluster' })),
      recover: async (shards) => {
        const r = await recover(store, definitions, clock, emitter, shards);
        for (const e of r.crashed) emitter.emit('turn.finished', () => e);
        for (const [id, [rec, mailbox]] of r.recovered) {
          if (stopped || !host.owns(id)) continue;
          const entry = host.entries.get(id);
          if (entry) host.syncMail(entry);
          else host.withMail(rec, mailbox); // its count is read again in its chain
        }
        if (!stopped) await host.timers.start();
      },
    });
  membership?.start();
  setImmediate(() => {
    for (const e of crashed) emitter.emit('turn.finished', () => e);
    for (const id of [...recovered.keys()]) if (!stopped) scheduleRecovered(id);
    // Durable timers: deadlines that passed while the process was down fire now.
    if (!stopped) {
      host.timers.start().catch((error: unknown) => emitter.emit('error', () => ({ id: '*', at: clock.now(), error: error as Error, where: 'timer' })));
    }
  });

  // runtime.inspect() observers also get the runtime's events; one throwing does not keep them from the others.
  const taps = new Set<(name: string, payload: unknown) => void>();
  const tapAll = (name: string, payload: unknown) => {
    let failure: { error: unknown } | null = null;
    for (const tap of taps) {
      try {
        tap(name, payload);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error; // the emitter reports it as an 'error' event
  };

  const live = (operation: string) => {
    if (fenced) throw fenced;
    if (stopped) throw new RuntimeStoppedError(operation);
  };

  /** Copies the message once, checks the copy, and queues the copy for the store. */
  const send = (id: string, message: Message, messageId = newId(), replyTo?: string): Promise<AppendResult> => {
    assertAgentId(id);
    const copy = copyMessage(message);
    live(`send to "${id}"`);
    const request: AppendRequest = { agentId: id, messageId, message: copy, at: clock.now(), ...(replyTo ? { replyTo } : {}) };
    return new Promise((resolve, reject) => accepter.push({ kind: 'send', request, resolve, reject }));
  };

  const task = <T>(fn: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) =>
      accepter.push({
        kind: 'task',
        run: () => fn().then(resolve, reject),
      }),
    );

  /** What this runtime knows of an agent in memory (its lifecycle state, pin, last activity). */
  const liveView = (id: string): LiveView | null => {
    const entry = host.entries.get(id);
    if (!entry) return null;
    return { state: host.stateOf(id), pinned: entry.lifecycle.getSnapshot().context.pinned, lastActiveAt: entry.lastActiveAt };
  };
  const isResident = (id: string) => ['loading', 'idle', 'running', 'flushing'].includes(host.stateOf(id));

  const runtime: Runtime = {
    async spawn(type, request) {
      if (typeof type !== 'string') throw new TypeError(`Expected \`type\` to be a string, got ${describeValue(type)}`);
      if (!request || typeof request !== 'object') throw new TypeError(`Expected spawn options { id, input?, parent?, pinned? }, got ${describeValue(request)}`);
      assertAgentId(request.id);
      if (request.parent !== undefined) assertAgentId(request.parent, 'parent');
      if (request.pinned !== undefined && typeof request.pinned !== 'boolean') {
        throw new TypeError(`Expected \`pinned\` to be a boolean, got ${describeValue(request.pinned)}`);
      }
      const input = request.input === undefined ? null : copyJson(request.input, 'input');
      if (!definitions.has(type)) throw new UnknownAgentTypeError(type, [...definitions.keys()]);
      live(`spawn "${request.id}"`);
      const record: AgentRecord = {
        id: request.id,
        type,
        parent: request.parent ?? null,
        pinned: request.pinned === true,
        input,
        createdAt: clock.now(),
      };
      return task(async () => {
        if (record.parent !== null && !(await store.getAgent(record.parent))) throw new AgentNotFoundError(record.parent);
        await host.buffer.write({ op: 'createAgent', record });
        emitter.emit('agent.spawned', () => ({ id: record.id, at: record.createdAt, type, parent: record.parent, pinned: record.pinned }));
        return { id: record.id, type, parent: record.parent, pinned: record.pinned };
      });
    },

    async send(id, message) {
      const r = await send(id, message);
      return { seq: r.seq, messageId: r.messageId };
    },

    async ask(id, message, opts = {}) {
      if (opts === null || typeof opts !== 'object') throw new TypeError(`Expected ask options { timeout? }, got ${describeValue(opts)}`);
      if (opts.timeout !== undefined) assertIntegerAtLeast(opts.timeout, 'timeout', 1);
      assertAgentId(id);
      const copy = copyMessage(message);
      live(`ask "${id}"`);
      // A quarantined agent will not answer until it is repaired: say so at once.
      const failure = host.control.failureOf(id);
      if (failure) throw failure;
      const messageId = newId();
      const result = new Promise<TurnResult>((resolve, reject) => {
        let timer: unknown = null;
        const done = () => {
          if (timer !== null) clock.clearTimeout(timer);
        };
        host.waiters.add(id, messageId, {
          resolve: (r) => (done(), resolve(r)),
          reject: (e) => (done(), reject(e)),
        });
        if (opts.timeout !== undefined) {
          timer = clock.setTimeout(() => {
            host.waiters.take(id, messageId);
            reject(new AskTimeoutError(id, opts.timeout!));
          }, opts.timeout);
        }
      });
      try {
        // On a shared store the turn may run in another process (or move there): it answers
        // through the store, to this process's member id.
        const replyTo = cluster?.memberId ?? undefined;
        const accepted = await send(id, copy, messageId, replyTo);
        if (membership && !accepted.duplicate) membership.expect(id, accepted.seq, messageId);
      } catch (err) {
        // Refused: nothing was accepted, so nothing will answer; leave no waiter or timer.
        host.waiters.take(id, messageId)?.reject(err);
        result.catch(() => {});
        throw err;
      }
      return result;
    },

    async interrupt(id) {
      assertAgentId(id);
      live(`interrupt "${id}"`);
      if (!host.entries.has(id) && !(await store.getAgent(id))) throw new AgentNotFoundError(id);
      host.control.interrupt(id);
    },

    async close(id) {
      assertAgentId(id);
      live(`close "${id}"`);
      await accepter.drained();
      if (!host.entries.has(id) && !(await store.getAgent(id))) throw new AgentNotFoundError(id);
      await host.control.close(id, 'close');
    },

    async destroy(id) {
      assertAgentId(id);
      live(`destroy "${id}"`);
      return task(async () => {
        await host.control.destroy(id);
        if (!(await host.buffer.write<boolean>({ op: 'destroyAgent', id }))) throw new AgentNotFoundError(id);
        host.waiters.rejectAll(id, new AgentNotFoundError(id));
        emitter.emit('agent.destroyed', () => ({ id, at: clock.now() }));
      });
    },

    async get(id) {
      assertAgentId(id);
      live(`get "${id}"`);
      const rec = host.entries.get(id)?.record ?? (await store.getAgent(id));
      if (!rec) throw new AgentNotFoundError(id);
      const { rows, damaged } = await readRows(store, [rec], liveView);
      if (damaged[0]) throw damaged[0].cause;
      return rows[0]!;
    },

    async list(request = {}) {
      if (!request || typeof request !== 'object') throw new TypeError(`Expected list options, got ${describeValue(request)}`);
      const limit = request.limit ?? 100;
      assertIntegerAtLeast(limit, 'limit', 1);
      if (request.resident !== undefined && typeof request.resident !== 'boolean') {
        throw new TypeError(`Expected \`resident\` to be a boolean, got ${describeValue(request.resident)}`);
      }
      for (const key of ['type', 'parent'] as const) {
        if (request[key] !== undefined && typeof request[key] !== 'string') {
          throw new TypeError(`Expected \`${key}\` to be a string, got ${describeValue(request[key])}`);
        }
      }
      if (request.cursor != null && typeof request.cursor !== 'string') {
        throw new TypeError(`Expected \`cursor\` to be a string from a previous list() or null, got ${describeValue(request.cursor)}`);
      }
      live('list agents');
      const report = (damaged: { id: string; error: string; cause: Error }[]) => {
        for (const d of damaged) emitter.emit('error', () => ({ id: d.id, at: clock.now(), error: d.cause, where: 'list' }));
        return damaged.map(({ id, error }) => ({ id, error }));
      };
      if (request.resident === true) {
        const ids = [...host.entries.values()]
          .filter((e) => isResident(e.id))
          .filter((e) => (request.type === undefined || e.record.type === request.type) && (request.parent === undefined || e.record.parent === request.parent))
          .map((e) => e.id)
          .sort()
          .filter((id) => request.cursor == null || id > request.cursor);
        const page = ids.slice(0, limit);
        const { rows, damaged } = await readRows(store, page.map((id) => host.entries.get(id)!.record), liveView);
        const bad = report(damaged);
        const cursor = ids.length > limit ? page.at(-1)! : null;
        return bad.length > 0 ? { agents: rows, cursor, damaged: bad } : { agents: rows, cursor };
      }
      // Filters before paging: a page is full whenever more matches exist (residents are
      // left out here for `resident: false`, so a store page may not be enough).
      const agents: AgentInfo[] = [];
      const bad: { id: string; error: string }[] = [];
      let cursor = request.cursor ?? null;
      let next: string | null = null;
      for (;;) {
        const res = await store.listAgents({ type: request.type, parent: request.parent, limit: limit - agents.length, cursor });
        const records = request.resident === false ? res.agents.filter((r) => !isResident(r.id)) : res.agents;
        const { rows, damaged } = await readRows(store, records, liveView);
        agents.push(...rows);
        bad.push(...report(damaged));
        if (res.cursor === null) break;
        cursor = res.cursor;
        if (agents.length >= limit) {
          next = res.cursor;
          break;
        }
      }
      return bad.length > 0 ? { agents, cursor: next, damaged: bad } : { agents, cursor: next };
    },

    stats() {
      const c = host.supervisor.getSnapshot().context as SupervisorContext;
      return {
        residentCap: c.residentCap,
        runningCap: c.runningCap,
        resident: c.count.resident,
        loading: c.count.loading,
        flushing: c.count.flushing,
        running: c.running.size,
        pinned: c.pinned.size,
        waitingForSlot: c.slotQueue.size,
        waitingForPermit: c.permitQueue.size,
        ...host.counters,
        ...(membership ? { cluster: membership.stats() } : {}),
      };
    },

    on(name, handler) {
      if (!(RUNTIME_EVENT_NAMES as readonly string[]).includes(name)) {
        throw new TypeError(`Expected an event name, one of ${RUNTIME_EVENT_NAMES.map((n) => `'${n}'`).join(', ')}; got ${describeValue(name)}`);
      }
      if (typeof handler !== 'function') throw new TypeError(`Expected the handler of '${String(name)}' to be a function, got ${describeValue(handler)}`);
      return emitter.on(name, handler);
    },

    inspect(observer) {
      if (!isInspectionObserver(observer)) {
        throw new TypeError(`Expected the inspect observer to be a function or an observer { next }, got ${describeValue(observer)}`);
      }
      const next = toNext(observer);
      const detach = host.inspection.attach(next, { stately: false });
      const tap = (name: string, payload: unknown) => next({ type: '@residency.event', name: name as RuntimeEventName, payload });
      taps.add(tap);
      emitter.tap = tapAll;
      return {
        unsubscribe() {
          detach();
          taps.delete(tap);
          if (taps.size === 0) emitter.tap = null;
        },
      };
    },

    async schedule(id, message, opts) {
      assertAgentId(id);
      const timer = timerOf(id, message, opts, clock.now(), () => `t.${newId()}`);
      live(`schedule a message to "${id}"`);
      return task(async () => {
        const rec = host.entries.get(id)?.record ?? (await store.getAgent(id));
        if (!rec) throw new AgentNotFoundError(id);
        if (!definitions.has(rec.type)) throw new UnknownAgentTypeError(rec.type, [...definitions.keys()], id);
        await host.buffer.write({ op: 'schedule', timer });
        host.armTimer(timer.at);
        return { key: timer.key, at: timer.at };
      });
    },

    async cancelSchedule(id, key) {
      assertAgentId(id);
      assertTimerKey(key);
      live(`cancel a timer of "${id}"`);
      return task(async () => {
        if (!host.entries.has(id) && !(await store.getAgent(id))) throw new AgentNotFoundError(id);
        return host.buffer.write<boolean>({ op: 'cancel', agentId: id, key });
      });
    },

    async pin(id) {
      assertAgentId(id);
      live(`pin "${id}"`);
      const rec = host.entries.get(id)?.record ?? (await store.getAgent(id));
      if (!rec) throw new AgentNotFoundError(id);
      host.control.pin(rec);
    },

    async retry(id) {
      assertAgentId(id);
      live(`retry "${id}"`);
      const rec = await store.getAgent(id); // rejects StoreCorruptionError while it is still damaged
      if (!rec) throw new AgentNotFoundError(id);
      return host.control.retry(rec, await store.mailboxSize(id));
    },

    residency(opts = {}) {
      const top = opts.top ?? 20;
      assertIntegerAtLeast(top, 'top', 0);
      const c = host.supervisor.getSnapshot().context as SupervisorContext;
      const take = (it: Iterable<string>) => {
        const out: string[] = [];
        for (const id of it) {
          if (out.length >= top) break;
          out.push(id);
        }
        return out;
      };
      return { policy: c.policy.name, lru: c.policy.order(top), slotQueue: take(c.slotQueue.keys()), permitQueue: take(c.permitQueue.keys()) };
    },

    async mailbox(id, opts = {}) {
      assertAgentId(id);
      if (opts.limit !== undefined) assertIntegerAtLeast(opts.limit, 'limit', 1);
      live(`read the mailbox of "${id}"`);
      return store.pending(id, opts.limit);
    },

    async history(id, opts = {}) {
      assertAgentId(id);
      if (opts.limit !== undefined) assertIntegerAtLeast(opts.limit, 'limit', 1);
      live(`read the history of "${id}"`);
      return store.rollout(id, opts.limit === undefined ? {} : { limit: opts.limit });
    },

    async timers(id, opts = {}) {
      assertAgentId(id);
      if (opts.limit !== undefined) assertIntegerAtLeast(opts.limit, 'limit', 1);
      live(`read the timers of "${id}"`);
      return store.timers(id, opts.limit);
    },

    machineOf(type) {
      const def = definitions.get(type);
      return def && !isTurnLogic(def.logic) ? def.logic : null;
    },

    logicValue(id) {
      const actor = host.entries.get(id)?.actor;
      return actor ? (actor.getSnapshot() as { value?: unknown }).value : undefined;
    },

    stop() {
      stopping ??= stopRuntime();
      return stopping;
    },
  };
  let stopping: Promise<void> | null = null;
  /** stop(): every call gets the same promise. */
  async function stopRuntime(): Promise<void> {
      stopped = true;
      membership?.stop();
      if (fenced) {
        host.stopAll();
        await inner.close();
        return;
      }
      await accepter.drained();
      host.supervisor.send({ type: 'stop' });
      const timeout = options.stopTimeout ?? 10_000;
      const timer = clock.setTimeout(() => {
        for (const id of host.entries.keys()) host.control.interrupt(id);
      }, timeout);
      // A flush that fails keeps its agent resident; stop goes on (the state was committed by its last turn).
      await Promise.allSettled([...host.entries.keys()].map((id) => host.control.close(id, 'stop')));
      clock.clearTimeout(timer);
      for (const e of host.entries.values()) await e.chain;
      host.waiters.rejectAll(null, new RuntimeStoppedError('wait for an answer'));
      host.stopAll();
      await inner.close();
  }
  Object.defineProperty(runtime, INTERNALS, {
    enumerable: false,
    value: (): RuntimeInternals => ({
      agents: () =>
        [...host.entries.values()].map((e) => {
          const snap = e.lifecycle.getSnapshot();
          return { id: e.id, state: host.stateOf(e.id), pinned: snap.context.pinned, mailbox: snap.context.mailbox, inTurn: e.turn !== null && !e.turn.interrupted };
        }),
      books: () => host.supervisor.getSnapshot().context as SupervisorContext,
      chains: async () => {
        await accepter.drained();
        await Promise.all([...host.entries.values()].map((e) => e.chain));
      },
    }),
  });
  return runtime;
}

