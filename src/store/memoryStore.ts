/**
 * memoryStore: the store kept in this process's memory, for tests and for embedding
 * residency where durability is not wanted. It keeps nothing across processes: when the
 * process ends, every agent, message, snapshot and rollout entry is gone.
 *
 * It keeps every rule of the store contract (Store.ts) and passes the conformance suite
 * (test/store/describeStore.ts). Each write makes all its checks before its first change
 * and never awaits in between, so a call that rejects has changed nothing and two calls
 * never interleave. A `batch` runs its ops one after the other in the same way: an op that
 * fails has changed nothing, and the ops after it see what the ops before it wrote; the
 * whole batch fails only on a closed store (a memory store is never fenced). Whatever goes in or comes out is copied (validate.ts copyPlain), so no
 * caller ever shares an object with the store.
 *
 * It remembers every message id an agent ever received (idempotency holds for consumed
 * messages too) and the whole rollout, until the agent is destroyed, unless a commit
 * carries a retention policy (rule 12 of Store.ts): then each such commit drops, in a
 * bounded batch, the oldest rollout entries before the retained window and the ids of the
 * messages consumed by turns before it, so memory stays bounded by the window too. The
 * counters (rule 11) are fields kept with each write; the mailbox size is the mailbox's
 * own count. Destroying an agent drops its state at once (the garbage collector frees it).
 *
 * Durable timers (rule 13 of Store.ts) live in a TimerHeap (timerHeap.ts): a map by key
 * per agent and a min-heap of all agents' timers by (at, agentId, key) with lazy deletion.
 * So a schedule is O(log n), a cancel, fire or destroy O(1) per timer (amortized),
 * `dueTimers` O(limit · log n) and `nextDeadline` O(1) (amortized); `timers` sorts one
 * agent's own timers.
 *
 * Ownership (rules 8 and 9 of Store.ts): a memory store is its own instance, so its one
 * owner is whoever acquired that instance; a second `acquire` on it while it is open
 * rejects with `StoreLockedError` naming the first owner. The epoch counts the acquires
 * of the instance (1, 2, …). Nothing else can write to the instance, so a write is never
 * fenced.
 */

import { AgentExistsError, AgentNotFoundError, StoreError, StoreLockedError } from '../errors.js';
import { assertLimit, copyPlain } from '../validate.js';
import {
  checkCancel,
  checkDue,
  checkFire,
  checkListFilters,
  checkOps,
  checkTimer,
  commitTimers,
  DEFAULT_LIST_LIMIT,
  keptTurns,
  notPending,
  ownerOf,
  pruneBatch,
} from './common.js';
import type {
  AgentRecord,
  AgentStats,
  AppendRequest,
  AppendResult,
  CommitResult,
  CommitTurn,
  ListOptions,
  ListResult,
  RolloutEntry,
  Store,
  StoredMessage,
  StoreOp,
  StoreOpResult,
  StoreOwner,
  TimerRecord,
} from './Store.js';
import { TimerHeap } from './timerHeap.js';

/** Consumed slots at the head of a mailbox are dropped once there are this many (and they are half of it). */
const COMPACT_AT = 1024;

/**
 * The unconsumed messages of one agent. Slot `i` holds the message with seq `base + i`;
 * a consumed slot becomes a hole and `head` skips the holes at the front, so taking the
 * oldest message is O(1) and taking any other seq is O(1) too.
 */
class Mailbox {
  private slots: (StoredMessage | undefined)[] = [];
  private base = 1;
  private head = 0;
  size = 0;

  /** The seq the next message gets: seqs are never reused, even after consumption. */
  get nextSeq(): number {
    return this.base + this.slots.length;
  }

  push(message: StoredMessage): void {
    this.slots.push(message);
    this.size++;
  }

  has(seq: number): boolean {
    const i = seq - this.base;
    return i >= this.head && this.slots[i] !== undefined;
  }

  /** The message id of pending message `seq`. */
  messageIdOf(seq: number): string | undefined {
    const i = seq - this.base;
    return i >= this.head ? this.slots[i]?.messageId : undefined;
  }

  /** Consumes message `seq`; the caller checked `has(seq)`. */
  take(seq: number): void {
    this.slots[seq - this.base] = undefined;
    this.size--;
    while (this.head < this.slots.length && this.slots[this.head] === undefined) this.head++;
    if (this.head >= COMPACT_AT && this.head * 2 >= this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }

  first(limit: number): StoredMessage[] {
    const out: StoredMessage[] = [];
    for (let i = this.head; i < this.slots.length && out.length < limit; i++) {
      const message = this.slots[i];
      if (message !== undefined) out.push(message);
    }
    return out;
  }
}

/**
 * A first-in first-out list that drops from its head in O(1) (amortized), and counts what
 * it dropped: the item at index `i` is the `dropped + i`-th ever pushed (from 0).
 */
class Queue<T> {
  private items: T[] = [];
  private head = 0;
  /** How many items were shifted out since the queue was created. */
  dropped = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The item at index `i` (0 is the oldest kept). */
  at(i: number): T | undefined {
    return i < 0 ? undefined : this.items[this.head + i];
  }

  /** Drops the `n` oldest items (at most all of them); returns them. */
  shift(n: number): T[] {
    const out = this.items.slice(this.head, this.head + n);
    this.head += out.length;
    this.dropped += out.length;
    if (this.head >= COMPACT_AT && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** The last `n` items (all of them when `n` is undefined), oldest first. */
  last(n?: number): T[] {
    return this.items.slice(n === undefined ? this.head : Math.max(this.head, this.items.length - n));
  }
}

interface AgentState {
  record: AgentRecord;
  mailbox: Mailbox;
  /**
   * The message ids the agent remembers (rule 1): pending ones and consumed ones that
   * retention did not forget, each with its seq.
   */
  seqByMessageId: Map<string, number>;
  /** The ids of the consumed messages still remembered: item i was consumed by turn `dropped + i + 1`. */
  consumed: Queue<string>;
  snapshot: unknown;
  /** The rollout entries still kept: item i is entry number `dropped + i` of the agent (from 0). */
  rollout: Queue<RolloutEntry>;
  /** The entry numbers of the turn.finished entries still kept: item i is turn `dropped + i + 1`'s. */
  finishes: Queue<number>;
  /** Seqs of turns begun and not committed. */
  inFlight: Set<number>;
  /** The counters of rule 11, but the mailbox and the timers (their own counts; the timers are in the store's TimerHeap). */
  stats: Omit<AgentStats, 'mailbox' | 'timers'>;
}

/**
 * Creates an empty in-memory store.
 *
 * @example
 * const store = memoryStore();
 * await store.createAgent({ id: 'alice', type: 'chat', parent: null, pinned: false, input: {}, createdAt: 0 });
 * await store.append([{ agentId: 'alice', messageId: 'm1', message: { type: 'hi' }, at: 0 }]);
 * // => [{ agentId: 'alice', messageId: 'm1', seq: 1, duplicate: false }]
 */
export function memoryStore(): Store {
  const agents = new Map<string, AgentState>();
  /** Agent ids in order, built when a listing needs it and dropped when the set of agents changes. */
  let sortedIds: string[] | null = null;
  const withPending = new Set<string>();
  const withInFlight = new Set<string>();
  const timers = new TimerHeap();
  let closed = false;
  let owner: StoreOwner | null = null;
  let epoch = 0;

  function checkOpen(): void {
    if (closed) throw new StoreError('The memory store is closed: create a new one with memoryStore()');
  }

  function agentOf(id: string): AgentState {
    const agent = agents.get(id);
    if (agent === undefined) throw new AgentNotFoundError(id);
    return agent;
  }

  function addAgent(record: AgentRecord): void {
    agents.set(record.id, {
      record,
      mailbox: new Mailbox(),
      seqByMessageId: new Map(),
      consumed: new Queue(),
      snapshot: null,
      rollout: new Queue(),
      finishes: new Queue(),
      inFlight: new Set(),
      stats: { turns: 0, failed: 0, crashed: 0, interrupted: 0, lastActiveAt: null },
    });
    sortedIds = null;
  }

  /** Stores an appended message (already copied); the target exists. */
  function accept(request: AppendRequest): AppendResult {
    const { agentId, messageId, message, at } = request;
    const agent = agents.get(agentId)!;
    const original = agent.seqByMessageId.get(messageId);
    if (original !== undefined) return { agentId, messageId, seq: original, duplicate: true };
    const seq = agent.mailbox.nextSeq;
    agent.mailbox.push({ agentId, seq, messageId, message, at });
    agent.seqByMessageId.set(messageId, seq);
    agent.rollout.push({ kind: 'accepted', seq, messageId, message, at });
    agent.stats.lastActiveAt = at;
    withPending.add(agentId);
    return { agentId, messageId, seq, duplicate: false };
  }

  // The writes, shared by the single methods and `batch`: each checks everything before its
  // first change, so one that throws has changed nothing.

  function createAgentNow(record: AgentRecord): void {
    if (agents.has(record.id)) throw new AgentExistsError(record.id);
    addAgent(copyIn(record, `the record of agent "${record.id}"`));
  }

  function destroyAgentNow(id: string): boolean {
    const agent = agents.get(id);
    if (agent === undefined) return false;
    timers.dropAgent(id);
    agents.delete(id);
    sortedIds = null;
    withPending.delete(id);
    withInFlight.delete(id);
    return true;
  }

  function appendNow(batch: readonly AppendRequest[]): AppendResult[] {
    for (const request of batch) agentOf(request.agentId);
    const copies = batch.map((request) => copyIn(request, `message "${request.messageId}" to agent "${request.agentId}"`));
    return copies.map(accept);
  }

  function beginTurnNow(agentId: string, seq: number, at: number): void {
    const agent = agentOf(agentId);
    if (!agent.mailbox.has(seq)) throw notPending(agentId, seq, 'begin a turn on');
    agent.inFlight.add(seq);
    withInFlight.add(agentId);
    agent.rollout.push({ kind: 'turn.started', seq, at });
    agent.stats.lastActiveAt = at;
  }

  function commitTurnNow(commit: CommitTurn): CommitResult {
    const { agentId, seq, outcome, at, durationMs, error } = commit;
    const agent = agentOf(agentId);
    if (!agent.mailbox.has(seq)) throw notPending(agentId, seq, 'commit a turn for');
    if (commit.next !== undefined && (commit.next.seq === seq || !agent.mailbox.has(commit.next.seq))) {
      throw notPending(agentId, commit.next.seq, 'begin the next turn on');
    }
    const spawnedIds = new Set<string>();
    for (const record of commit.spawned ?? []) {
      if (agents.has(record.id) || spawnedIds.has(record.id)) throw new AgentExistsError(record.id);
      spawnedIds.add(record.id);
    }
    for (const request of commit.outbox ?? []) {
      if (!agents.has(request.agentId) && !spawnedIds.has(request.agentId)) {
        throw new AgentNotFoundError(request.agentId);
      }
    }
    const keep = keptTurns(commit.retain);
    const what = `the turn of agent "${agentId}" on message #${seq}`;
    const snapshot = commit.snapshot === undefined ? undefined : copyIn(commit.snapshot, `the snapshot of ${what}`);
    const value = snapshot === undefined || commit.value === undefined ? undefined : copyIn(commit.value, `the state value of ${what}`);
    const outputs = copyIn(commit.outputs ?? [], `the outputs of ${what}`);
    const spawned = copyIn(commit.spawned ?? [], `the agents spawned by ${what}`);
    const outbox = copyIn(commit.outbox ?? [], `the outbox of ${what}`);
    const timerOps = commitTimers(commit);
    const schedule = timerOps.schedule.map((timer) => copyTimer(timer));

    // Every check passed: from here on nothing throws.
    for (const output of outputs) agent.rollout.push({ kind: 'output', seq, output, at });
    if (snapshot !== undefined) {
      agent.snapshot = snapshot;
      agent.rollout.push(value === undefined ? { kind: 'snapshot', seq, at } : { kind: 'snapshot', seq, at, value });
    }
    agent.finishes.push(agent.rollout.dropped + agent.rollout.length);
    agent.rollout.push({
      kind: 'turn.finished',
      seq,
      outcome,
      at,
      durationMs,
      ...(error === undefined ? {} : { error }),
    });
    const stats = agent.stats;
    stats.turns++;
    if (outcome === 'failed') stats.failed++;
    else if (outcome === 'crashed') stats.crashed++;
    else if (outcome === 'interrupted') stats.interrupted++;
    stats.lastActiveAt = at;
    agent.consumed.push(agent.mailbox.messageIdOf(seq)!);
    agent.mailbox.take(seq);
    if (agent.mailbox.size === 0) withPending.delete(agentId);
    agent.inFlight.delete(seq);
    if (agent.inFlight.size === 0) withInFlight.delete(agentId);
    for (const record of spawned) addAgent(record);
    const result = { outbox: outbox.map(accept) };
    if (commit.next !== undefined) beginTurnNow(agentId, commit.next.seq, commit.next.at);
    for (const key of timerOps.cancel) timers.delete(agentId, key);
    for (const timer of schedule) timers.put(timer);
    if (keep !== null) prune(agent, stats.turns - keep, pruneBatch(commit));
    return result;
  }

  /**
   * Drops, oldest first and at most `limit` of each, the rollout entries up to the
   * turn.finished of turn `last` and the ids of the messages consumed by turns up to
   * `last` (rule 12 of Store.ts).
   */
  function prune(agent: AgentState, last: number, limit: number): void {
    if (last < 1) return;
    // The entry number of turn `last`'s turn.finished; gone (undefined) when everything up to it is.
    const end = agent.finishes.at(last - agent.finishes.dropped - 1);
    if (end !== undefined) {
      agent.rollout.shift(Math.min(limit, end - agent.rollout.dropped + 1));
      let finished = 0;
      while (finished < agent.finishes.length && agent.finishes.at(finished)! < agent.rollout.dropped) finished++;
      agent.finishes.shift(finished);
    }
    for (const messageId of agent.consumed.shift(Math.min(limit, last - agent.consumed.dropped))) {
      agent.seqByMessageId.delete(messageId);
    }
  }

  function noteNow(agentId: string, entry: Extract<RolloutEntry, { kind: 'note' }>): void {
    const agent = agentOf(agentId);
    const note = copyIn(entry, `a note for agent "${agentId}"`);
    agent.rollout.push(note);
    if (typeof note.at === 'number') agent.stats.lastActiveAt = note.at;
  }

  /** A copy of a timer on its way in; a message that cannot be copied is refused (`StoreError`). */
  function copyTimer(timer: TimerRecord): TimerRecord {
    const { agentId, key, at } = timer;
    return { agentId, key, at, message: copyIn(timer.message, `the message of timer "${key}" of agent "${agentId}"`) };
  }

  function scheduleNow(timer: TimerRecord): void {
    checkTimer(timer);
    agentOf(timer.agentId);
    timers.put(copyTimer(timer));
  }

  function cancelNow(agentId: string, key: string): boolean {
    checkCancel(agentId, key);
    return timers.delete(agentId, key);
  }

  function fireNow(op: Extract<StoreOp, { op: 'fire' }>): AppendResult | null {
    checkFire(op);
    const { agentId, key, at, messageId, firedAt } = op;
    const timer = timers.get(agentId, key);
    if (timer === undefined || timer.at !== at) return null;
    timers.delete(agentId, key);
    return accept({ agentId, messageId, message: timer.message, at: firedAt });
  }

  /** One op of a batch, as its single method runs it. */
  function apply(op: StoreOp): unknown {
    switch (op.op) {
      case 'createAgent':
        return createAgentNow(op.record);
      case 'destroyAgent':
        return destroyAgentNow(op.id);
      case 'append':
        return appendNow([op.request])[0];
      case 'beginTurn':
        return beginTurnNow(op.agentId, op.seq, op.at);
      case 'commitTurn':
        return commitTurnNow(op.commit);
      case 'note':
        return noteNow(op.agentId, op.entry);
      case 'schedule':
        return scheduleNow(op.timer);
      case 'cancel':
        return cancelNow(op.agentId, op.key);
      case 'fire':
        return fireNow(op);
    }
  }

  return {
    kind: 'memory',

    async createAgent(record) {
      checkOpen();
      createAgentNow(record);
    },

    async getAgent(id) {
      checkOpen();
      const agent = agents.get(id);
      return agent === undefined ? null : copyPlain(agent.record);
    },

    async getAgents(ids) {
      checkOpen();
      const out: AgentRecord[] = [];
      for (const id of new Set(ids)) {
        const agent = agents.get(id);
        if (agent !== undefined) out.push(copyPlain(agent.record));
      }
      return out;
    },

    async listAgents(options: ListOptions = {}): Promise<ListResult> {
      checkOpen();
      const { type, parent, pinned, hasMail, limit = DEFAULT_LIST_LIMIT, cursor = null } = options;
      assertLimit(limit, 'limit');
      checkListFilters(options);
      sortedIds ??= [...agents.keys()].sort();
      const ids = sortedIds;
      const out: AgentRecord[] = [];
      let next: string | null = null;
      for (let i = cursor === null ? 0 : firstAfter(ids, cursor); i < ids.length; i++) {
        const { record, mailbox } = agents.get(ids[i]!)!;
        if (type !== undefined && record.type !== type) continue;
        if (parent !== undefined && record.parent !== parent) continue;
        if (pinned !== undefined && record.pinned !== pinned) continue;
        if (hasMail !== undefined && mailbox.size > 0 !== hasMail) continue;
        if (out.length === limit) {
          // One more match exists: the cursor resumes after the last record returned.
          next = out[out.length - 1]!.id;
          break;
        }
        out.push(copyPlain(record));
      }
      return { agents: out, cursor: next };
    },

    async agentStats(ids) {
      checkOpen();
      const out = new Map<string, AgentStats>();
      for (const id of ids) {
        const agent = agents.get(id);
        if (agent !== undefined) out.set(id, { ...agent.stats, mailbox: agent.mailbox.size, timers: timers.count(id) });
      }
      return out;
    },

    async destroyAgent(id) {
      checkOpen();
      return destroyAgentNow(id);
    },

    async append(batch) {
      checkOpen();
      return appendNow(batch);
    },

    async pending(agentId, limit = Number.POSITIVE_INFINITY) {
      checkOpen();
      if (limit !== Number.POSITIVE_INFINITY) assertLimit(limit, 'limit');
      const agent = agents.get(agentId);
      return agent === undefined ? [] : copyPlain(agent.mailbox.first(limit));
    },

    async mailboxSize(agentId) {
      checkOpen();
      return agents.get(agentId)?.mailbox.size ?? 0;
    },

    async beginTurn(agentId, seq, at) {
      checkOpen();
      beginTurnNow(agentId, seq, at);
    },

    async commitTurn(commit: CommitTurn): Promise<CommitResult> {
      checkOpen();
      return commitTurnNow(commit);
    },

    async loadSnapshot(agentId) {
      checkOpen();
      const agent = agents.get(agentId);
      return agent === undefined ? null : copyPlain(agent.snapshot);
    },

    async note(agentId, entry) {
      checkOpen();
      noteNow(agentId, entry);
    },

    async rollout(agentId, options = {}) {
      checkOpen();
      const { limit } = options;
      if (limit !== undefined) assertLimit(limit, 'limit');
      const entries = agents.get(agentId)?.rollout.last(limit) ?? [];
      return copyPlain(entries);
    },

    async agentsWithPending() {
      checkOpen();
      return [...withPending];
    },

    async turnsInFlight() {
      checkOpen();
      const out: { agentId: string; seq: number }[] = [];
      for (const agentId of withInFlight) {
        for (const seq of agents.get(agentId)!.inFlight) out.push({ agentId, seq });
      }
      return out;
    },

    async dueTimers(now, limit) {
      checkOpen();
      checkDue(now, limit);
      return copyPlain(timers.due(now, limit));
    },

    async nextDeadline() {
      checkOpen();
      return timers.next();
    },

    async timers(agentId, limit = Number.POSITIVE_INFINITY) {
      checkOpen();
      if (limit !== Number.POSITIVE_INFINITY) assertLimit(limit, 'limit');
      return copyPlain(timers.of(agentId).slice(0, limit));
    },

    async batch(ops) {
      checkOpen();
      checkOps(ops);
      return ops.map((op): StoreOpResult => {
        try {
          return { ok: true, value: apply(op) };
        } catch (error) {
          return { ok: false, error: error instanceof Error ? error : new StoreError(String(error)) };
        }
      });
    },

    async acquire(who) {
      checkOpen();
      const next = ownerOf(who);
      if (owner !== null) throw new StoreLockedError('This memory store', { ...owner });
      owner = next;
      epoch++;
      return { epoch };
    },

    async close() {
      checkOpen();
      closed = true;
      owner = null;
      agents.clear();
      sortedIds = null;
      withPending.clear();
      withInFlight.clear();
      timers.clear();
    },
  };
}

/** Copies a value on its way in (copyPlain); a value that cannot be copied (a function, …) is refused. */
function copyIn<T>(value: T, what: string): T {
  try {
    return copyPlain(value);
  } catch (cause) {
    throw new StoreError(
      `Cannot store ${what}: it is not plain data (${cause instanceof Error ? cause.message : String(cause)}). ` +
        'Store JSON values only',
      { cause },
    );
  }
}

/** The index of the first id greater than `cursor` in sorted `ids`. */
function firstAfter(ids: readonly string[], cursor: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= cursor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
