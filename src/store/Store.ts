/**
 * The store contract. Every store (memoryStore, sqliteStore, postgresStore) implements
 * this interface and passes the one conformance suite (test/store/describeStore.ts).
 *
 * What a store keeps, per agent:
 * - the registry record (identity: id, type, parent, pinned, spawn input);
 * - the mailbox: messages accepted and not yet consumed, in acceptance order, each with
 *   a per-agent sequence number (`seq`, 1, 2, 3 …, never reused for that agent) and a
 *   caller-chosen `messageId` that makes appends idempotent;
 * - the latest snapshot of the agent's logic (opaque JSON);
 * - the rollout: an append-only list of entries (accepted messages, turn records,
 *   outputs, lifecycle notes).
 *
 * Rules every store keeps (and the conformance suite checks):
 * 1. `append` is atomic per call: either every message of the batch is stored or none.
 *    It is idempotent by `(agentId, messageId)`: appending a message id that is already
 *    stored (pending or consumed) stores nothing new and returns the original `seq` with
 *    `duplicate: true`. Under a retention policy (rule 12) the id of a message consumed by
 *    a turn older than the retained window may be forgotten: appending it again is then
 *    accepted as a new message. Messages to an agent that does not exist are refused with
 *    `AgentNotFoundError` and nothing of the batch is stored.
 * 2. `commitTurn` is atomic: the turn record, the outputs, the new snapshot (if any), the
 *    consumption of the handled message, the outgoing messages (outbox) and the agents
 *    spawned by the turn are stored together or not at all. Committing a turn for a
 *    message that is already consumed fails with `StoreError` (no double handling).
 * 3. `beginTurn` records that a turn started on a message. A turn that began and was
 *    never committed is "in flight"; `turnsInFlight()` lists them (recovery marks them
 *    `crashed` with `commitTurn({ outcome: 'crashed' })`).
 * 4. Reads return copies: mutating a returned object never changes the store.
 * 5. `destroyAgent` deletes the identity, mailbox, snapshot, rollout and timers; the id may be
 *    spawned again afterwards, with sequence numbers starting again at 1. The agent is gone
 *    for every read and write as soon as the call resolves, and the call never takes time
 *    in proportion to the agent's history: a store may delete a long history afterwards,
 *    in the background, in bounded steps (sqliteStore does; spawning the id again before
 *    those steps end finishes them first, in the spawn's transaction).
 * 6. Ids are opaque strings; a store never uses them as paths.
 * 7. After `close()`, every method rejects with `StoreError`.
 * 8. One owner at a time. `acquire(owner)` makes the caller (a runtime) the store's one
 *    owner, or rejects with `StoreLockedError` (carrying the holder, when known) while
 *    another live owner holds it: another process, or another runtime or store instance
 *    in this process (a second `acquire` on the same instance is refused the same way).
 *    An owner that dies frees the store: at once for an embedded store (the OS drops the
 *    lock), after its lease for a shared one. `close()` releases ownership.
 * 9. Fencing. Each `acquire` bumps the store's owner epoch and returns it. From then on
 *    every write of that store instance (createAgent, destroyAgent, append, beginTurn,
 *    commitTurn, note, batch and its timer ops) checks, inside its transaction, that the stored epoch is still
 *    the one it acquired, and rejects with `FencedError` (writing nothing) when another
 *    owner took over since. A store never acquired may still be used directly (tests,
 *    tools), unfenced; reads are never fenced.
 * 10. Group commit. `batch(ops)` runs write operations (StoreOp: createAgent, destroyAgent,
 *    append, beginTurn, commitTurn, note, schedule, cancel, fire), in order, in one transaction: a durable store
 *    syncs once for all of them. Each op is atomic on its own and behaves exactly as its
 *    single method would: an op that fails (AgentNotFoundError, AgentExistsError, a turn
 *    on a message that is not pending, a value that is not JSON…) changes nothing and gets
 *    its error in its slot of the results, and the ops after it still run and see what
 *    the ops before it wrote. The call itself rejects, with nothing of the batch stored,
 *    only when the transaction as a whole fails: an I/O error, `FencedError` (checked
 *    once per transaction), a busy database (`StoreError` with `retryable: true`). An
 *    argument that is not an array of ops rejects with a `TypeError`, storing nothing.
 *    The single write methods are batches of one: they reject with their op's error.
 * 11. Counters. Each agent has counters (AgentStats: turns finished and how many of them
 *    failed, crashed or were interrupted, the mailbox size, the pending timers, the time of
 *    its last activity),
 *    kept by the very transactions that change them, never recomputed from the rollout:
 *    they stay exact when retention prunes the rollout. `agentStats(ids)` reads them in
 *    O(ids) and `mailboxSize` in O(1), whatever the length of the history.
 * 12. History retention. `commitTurn` carries the agent's policy (`CommitTurn.retain`,
 *    `'all'` when absent). With `{ keepTurns: k }` the retained window is what the rollout
 *    received after the turn k turns before the last one finished: the records of the last
 *    k turns and everything else written since. The commit deletes, in its own
 *    transaction, oldest first, a bounded batch (`pruneBatch` in common.ts: 64 of each, or
 *    twice the entries the commit may write when that is more) of the rollout entries
 *    older than the window and of the messages consumed by turns older than the window
 *    (their ids are then forgotten, rule 1). So no commit becomes a long transaction, and
 *    over the next commits the history converges to the window. Retention never deletes a
 *    pending message (in flight or not), the latest snapshot, or anything a counter says
 *    (rule 11). An entry older than the window goes even when it is the `accepted` entry
 *    of a message still pending (a backlog longer than the window): the message itself
 *    stays in the mailbox. Retention changes what `rollout` returns and which old message
 *    ids are remembered; no other read.
 * 13. Durable timers. A timer (TimerRecord) is keyed by `(agentId, key)`: `schedule` (a
 *    batch op, or `CommitTurn.timers`) upserts it, a second schedule with the same key
 *    replacing the first (its deadline and message); `cancel` deletes it. When its deadline
 *    comes, the runtime `fire`s it with the `at` it read: atomically, the timer is deleted
 *    and its message appended to the agent's mailbox as an `append` would store it (the
 *    fire's `messageId` and acceptance time `firedAt`, the agent's next seq, an `accepted`
 *    rollout entry, the counters), and the op returns its AppendResult. A fire whose timer
 *    is gone or carries another deadline (cancelled, replaced, already fired, its agent
 *    destroyed) stores nothing and returns `null`: a timer's message enters the mailbox
 *    once, however often it is fired. `dueTimers(now, limit)` and `nextDeadline()` read the
 *    timers of all agents by deadline through an index: O(limit · log n) at most and O(1) (amortized),
 *    never a walk of every timer. Timers are not history: retention never touches them;
 *    `destroyAgent` drops them at once (rule 5); the count of an agent's pending timers is
 *    a counter (AgentStats.timers, rule 11). A timer's message must be JSON (StoreError
 *    otherwise), its key a string and its deadline a finite number (TypeError otherwise).
 *
 * All methods are async; a store may batch them (group commit) as long as each call
 * resolves only after what it wrote is durable (for durable stores).
 */

import type { StoreCluster, StoredReply } from './Cluster.js';

/** A message: a plain JSON object with a string `type`. */
export interface Message {
  type: string;
  [key: string]: unknown;
}

/** JSON-serializable data. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface AgentRecord {
  id: string;
  type: string;
  parent: string | null;
  pinned: boolean;
  /** The spawn input, as given (JSON). */
  input: unknown;
  /** When it was spawned (ms since epoch, from the runtime's clock). */
  createdAt: number;
}

export interface AppendRequest {
  agentId: string;
  /** Idempotency key, unique per agent. */
  messageId: string;
  message: Message;
  /** Acceptance time (ms). */
  at: number;
  /**
   * A remote ask (a shared store, see Cluster.ts): the member waiting for this message's turn.
   * Stored with the message and returned by `pending`; its turn's commit carries the reply
   * (`CommitTurn.reply`). A store without a cluster ignores it.
   */
  replyTo?: string;
}

/** A durable timer (rule 13): when `at` comes, `message` enters the agent's mailbox (once). */
export interface TimerRecord {
  agentId: string;
  /** Names the timer among the agent's: a second schedule with the same key replaces the first. */
  key: string;
  /** The deadline (ms since the epoch, on the runtime's clock). */
  at: number;
  message: Message;
}

export interface AppendResult {
  agentId: string;
  messageId: string;
  seq: number;
  /** True when this message id was already stored: nothing new was written. */
  duplicate: boolean;
}

export interface StoredMessage {
  agentId: string;
  seq: number;
  messageId: string;
  message: Message;
  at: number;
  /** The member waiting for this message's turn (a remote ask, shared stores only). */
  replyTo?: string;
}

export type TurnOutcome = 'done' | 'failed' | 'interrupted' | 'crashed';

export interface CommitTurn {
  agentId: string;
  /** The message the turn handled; it is consumed by the commit. */
  seq: number;
  outcome: TurnOutcome;
  /** The logic's snapshot after the turn; `undefined` keeps the previous one. */
  snapshot?: unknown;
  /**
   * The state value of the agent's own statechart after the turn (machine logic only),
   * repeated in the rollout's `snapshot` entry so a timeline can show the state after each
   * turn. Ignored without a `snapshot`.
   */
  value?: Json;
  /** What the turn emitted as outputs, in order. */
  outputs?: unknown[];
  /** Messages the turn sent to other agents (or itself), appended atomically with the commit. */
  outbox?: AppendRequest[];
  /** Agents the turn spawned, created atomically with the commit (before the outbox). */
  spawned?: AgentRecord[];
  /** Error text for a failed turn. */
  error?: string;
  /**
   * The agent's history retention policy (rule 12): `{ keepTurns }` (an integer ≥ 0) keeps
   * the last `keepTurns` turns of the rollout and prunes older entries, a small batch per
   * commit; `'all'` (the default when absent) keeps everything. A bad value is refused
   * with a `TypeError` (the commit stores nothing).
   */
  retain?: Retention;
  /**
   * Begins the agent's next turn, on message `next.seq`, in the same transaction, after
   * this commit (as `beginTurn` would): the dequeue of the next message rides with this
   * commit. The whole commit fails if that message is not pending.
   */
  next?: { seq: number; at: number };
  /**
   * The durable timers the turn schedules and cancels (rule 13), applied atomically with the
   * commit: a commit that fails schedules and cancels nothing. Both concern the committing
   * agent only (a `schedule` entry naming another agent is refused with a `TypeError`, the
   * commit storing nothing). The cancels apply first, then the schedules (each an upsert by
   * key), so a key in both lists ends up scheduled: pass the net effect of the turn.
   */
  timers?: { schedule?: TimerRecord[]; cancel?: string[] };
  /**
   * The answer for a remote ask (the handled message's `replyTo`, shared stores only): stored
   * with the commit for that member to take (`StoreCluster.takeReply`). A store without a
   * cluster ignores it.
   */
  reply?: StoredReply;
  at: number;
  durationMs: number;
}

/** How much of an agent's history a commit keeps (rule 12). */
export type Retention = { keepTurns: number } | 'all';

export interface CommitResult {
  /** Sequence numbers given to the outbox messages, in order. */
  outbox: AppendResult[];
}

export type RolloutEntry =
  | { kind: 'accepted'; seq: number; messageId: string; message: Message; at: number }
  | { kind: 'turn.started'; seq: number; at: number }
  | { kind: 'turn.finished'; seq: number; outcome: TurnOutcome; at: number; durationMs: number; error?: string }
  | { kind: 'output'; seq: number; output: unknown; at: number }
  | { kind: 'snapshot'; seq: number; at: number; value?: Json }
  | { kind: 'note'; note: 'loaded' | 'evicted' | 'spawned'; reason?: string; at: number };

/**
 * An agent's counters (rule 11), kept with the writes that change them. They count what
 * happened since the agent was created (or spawned again after a destroy), whatever the
 * retention policy pruned since.
 */
export interface AgentStats {
  /** Turns finished, of any outcome (done, failed, interrupted, crashed). */
  turns: number;
  /** Of those, turns that failed. */
  failed: number;
  /** Of those, turns recorded `crashed` (in flight when the process died). */
  crashed: number;
  /** Of those, turns that were interrupted. */
  interrupted: number;
  /** Messages accepted and not yet consumed (what `mailboxSize` says). */
  mailbox: number;
  /** Durable timers pending (scheduled, not yet fired or cancelled: what `timers` lists). */
  timers: number;
  /**
   * The `at` of the agent's last accepted message, turn record (turn started or finished)
   * or note, in the order they were written; `null` before the first one.
   */
  lastActiveAt: number | null;
}

/**
 * The filters of `listAgents`: each one given must hold. The store applies them before
 * paging, so a page is full (`limit` agents) whenever more matches exist.
 */
export interface ListOptions {
  type?: string;
  parent?: string;
  /** Only agents spawned pinned (`true`) or not pinned (`false`). */
  pinned?: boolean;
  /** Only agents with pending messages (`true`), or with an empty mailbox (`false`). */
  hasMail?: boolean;
  /** At most this many (default 100). */
  limit?: number;
  /** From `list()`'s previous `cursor`. */
  cursor?: string | null;
}

export interface ListResult {
  agents: AgentRecord[];
  /** Pass to the next call for the next page; `null` at the end. */
  cursor: string | null;
}

/** One write of a `batch` (rule 10): the arguments of the single method of the same name. */
export type StoreOp =
  | { op: 'createAgent'; record: AgentRecord }
  | { op: 'destroyAgent'; id: string }
  | { op: 'append'; request: AppendRequest }
  | { op: 'beginTurn'; agentId: string; seq: number; at: number }
  | { op: 'commitTurn'; commit: CommitTurn }
  | { op: 'note'; agentId: string; entry: Extract<RolloutEntry, { kind: 'note' }> }
  /** Upserts the timer by (agentId, key) (rule 13); `AgentNotFoundError` for a missing agent. */
  | { op: 'schedule'; timer: TimerRecord }
  /** Deletes the agent's timer `key`: true when there was one (false also for a missing agent). */
  | { op: 'cancel'; agentId: string; key: string }
  /**
   * Fires the timer (agentId, key) if it still has deadline `at`: deletes it and appends its
   * message (id `messageId`, accepted at `firedAt`) to the agent's mailbox, returning the
   * AppendResult; otherwise stores nothing and returns `null` (rule 13). Give each fire a
   * fresh `messageId`: one the agent already remembers makes the accept a duplicate (the
   * timer is deleted, nothing new is stored, `duplicate: true`), as `append` would.
   */
  | { op: 'fire'; agentId: string; key: string; at: number; messageId: string; firedAt: number };

/**
 * What one op of a `batch` did. `value` is what the op resolves to on its own:
 * createAgent, beginTurn, note and schedule → `undefined`; destroyAgent → a boolean (false
 * when the agent was absent); append → its `AppendResult`; commitTurn → its `CommitResult`;
 * cancel → a boolean (true when a timer was deleted); fire → its `AppendResult`, or `null`
 * when the timer was gone or had another deadline.
 * `error` is what the single method would have rejected with; the op changed nothing.
 */
export type StoreOpResult = { ok: true; value: unknown } | { ok: false; error: Error };

/** Who owns a store: a runtime, named for error messages and `residency` tools. */
export interface StoreOwner {
  /** The owner's process id. */
  pid: number;
  /** The host the owner runs on (`os.hostname()`). */
  host: string;
  /** When it took ownership (ms since epoch). */
  since: number;
}

export interface Store {
  /** A short name for messages and stats ("memory", "sqlite", …). */
  readonly kind: string;
  // --- registry ---
  /** Creates the agent. Rejects with `AgentExistsError` when the id is taken. */
  createAgent(record: AgentRecord): Promise<void>;
  getAgent(id: string): Promise<AgentRecord | null>;
  /** The records of those ids that exist (in no particular order). */
  getAgents(ids: readonly string[]): Promise<AgentRecord[]>;
  /**
   * Agents ordered by id, filtered before paging (see ListOptions), paged with an opaque
   * cursor. A filter that is not of its type is refused with a `TypeError`.
   */
  listAgents(options?: ListOptions): Promise<ListResult>;
  /**
   * The counters (rule 11) of those ids that exist, keyed by id; costs O(ids), never
   * O(history). Ids that do not exist are absent from the map.
   */
  agentStats(ids: readonly string[]): Promise<Map<string, AgentStats>>;
  /**
   * Deletes identity, mailbox, snapshot, rollout and timers (rule 5: at once for every read and
   * write, its rows possibly in the background). Resolves `false` when absent.
   */
  destroyAgent(id: string): Promise<boolean>;

  // --- mailbox ---
  /** Appends a batch atomically; idempotent by (agentId, messageId). Results in request order. */
  append(batch: readonly AppendRequest[]): Promise<AppendResult[]>;
  /** Unconsumed messages of the agent, oldest first, at most `limit`. */
  pending(agentId: string, limit?: number): Promise<StoredMessage[]>;
  /** How many unconsumed messages the agent has: O(1), a counter (rule 11). */
  mailboxSize(agentId: string): Promise<number>;

  // --- turns and state ---
  /** Records that a turn started on message `seq` (for crash recovery). */
  beginTurn(agentId: string, seq: number, at: number): Promise<void>;
  /** Commits a turn atomically (see rule 2), pruning by its retention policy (rule 12). */
  commitTurn(commit: CommitTurn): Promise<CommitResult>;
  /** The latest snapshot, or `null` when the agent never committed one. */
  loadSnapshot(agentId: string): Promise<unknown | null>;
  /** Appends a lifecycle note (loaded, evicted, …) to the rollout. Not transactional with anything. */
  note(agentId: string, entry: Extract<RolloutEntry, { kind: 'note' }>): Promise<void>;
  /**
   * The rollout, oldest first: the last `limit` entries when `limit` is given. What
   * retention pruned (rule 12) is gone from it.
   */
  rollout(agentId: string, options?: { limit?: number }): Promise<RolloutEntry[]>;

  // --- recovery ---
  /** Ids of agents with unconsumed messages. */
  agentsWithPending(): Promise<string[]>;
  /** Turns begun and never committed: `{ agentId, seq }`. */
  turnsInFlight(): Promise<{ agentId: string; seq: number }[]>;

  // --- durable timers (rule 13; written by the batch ops schedule, cancel and fire) ---
  /**
   * Timers due at or before `now`, earliest first (ties by agentId, then key), at most
   * `limit`: read through the deadline index, O(limit · log n) at most, never O(timers).
   */
  dueTimers(now: number, limit: number): Promise<TimerRecord[]>;
  /** The earliest deadline of all timers, or `null` when there is none: O(1) or O(log n). */
  nextDeadline(): Promise<number | null>;
  /** The pending timers of one agent, earliest first (ties by key), at most `limit` (for inspection). */
  timers(agentId: string, limit?: number): Promise<TimerRecord[]>;

  // --- group commit ---
  /**
   * Runs the ops, in order, in ONE transaction: one fsync for all of them (group commit).
   * Each op is atomic on its own and behaves exactly as the single method would: an op that
   * fails (AgentNotFoundError, AgentExistsError, a commit of a message not pending, a value
   * that is not JSON…) changes nothing and gets its error in its result slot; later ops
   * still run and see what earlier ones wrote. The call rejects, and nothing of the batch is
   * stored, only when the transaction as a whole fails (I/O error, FencedError — checked once
   * per transaction —, a busy database: StoreError with retryable true). Results are in op
   * order. An empty batch resolves to `[]` and writes nothing (rule 10).
   */
  batch(ops: readonly StoreOp[]): Promise<StoreOpResult[]>;

  // --- ownership ---
  /**
   * Makes the caller (a runtime) the store's one owner (rules 8 and 9). Rejects with
   * `StoreLockedError` when another live owner holds it (another process, or another
   * runtime or store instance in this process). Bumps and returns the owner epoch (the
   * fencing token): from then on every write transaction of this store checks that epoch
   * inside the transaction, and rejects with `FencedError` (writing nothing) when another
   * owner has taken over since. `close()` releases ownership.
   */
  acquire(owner: StoreOwner): Promise<{ epoch: number }>;

  /**
   * Present on a store several runtimes share (postgresStore): ownership per shard, wake-up
   * hints and remote replies (src/store/Cluster.ts). Absent on an embedded store.
   */
  readonly cluster?: StoreCluster;

  /**
   * The store applies `batch` calls in the order they were made, each in its transaction,
   * even while earlier ones are still being written (a writer thread's queue), and retries
   * a busy database itself before answering: so a caller may have a second batch in flight
   * before the first is durable, and a later batch never commits ahead of an earlier one.
   * The runtime's write buffer then keeps two group commits in flight. Absent: one at a time.
   */
  readonly pipelined?: boolean;

  /** Releases resources (and ownership). Further calls reject with `StoreError`. */
  close(): Promise<void>;
}
