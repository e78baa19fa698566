/**
 * What every store shares: the default page size, the errors the contract names, the
 * checks of an owner and of a batch's ops.
 * (Limits are checked with validate.ts's `assertIntegerAtLeast`.)
 */
import { StoreError } from '../errors.js';
import { assertIntegerAtLeast, assertLimit, describeValue } from '../validate.js';
import type { AgentStats, CommitTurn, ListOptions, Retention, StoreOp, StoreOwner, TimerRecord } from './Store.js';

/** `listAgents` page size when no `limit` is given. */
export const DEFAULT_LIST_LIMIT = 100;

/** The fewest rows of each kind a commit under a retention policy may prune (rule 12 of Store.ts). */
export const PRUNE_BATCH_MIN = 64;

/**
 * How many rollout entries, and how many consumed messages, one commit may prune (rule 12
 * of Store.ts): PRUNE_BATCH_MIN, or twice the rollout entries the commit may write (its
 * outputs and outbox, its turn record, snapshot entry and the next turn's start) when that
 * is more. A commit thus deletes more than it adds while the history is over its bound,
 * and never much more: no commit becomes a long transaction.
 */
export function pruneBatch(commit: Pick<CommitTurn, 'outputs' | 'outbox'>): number {
  return Math.max(PRUNE_BATCH_MIN, 2 * ((commit.outputs?.length ?? 0) + (commit.outbox?.length ?? 0) + 3));
}

/**
 * Checks a commit's retention policy (a `TypeError` when it is neither `'all'` nor
 * `{ keepTurns }` with an integer ≥ 0) and returns how many turns it keeps (`null`: all).
 */
export function keptTurns(retain: Retention | undefined): number | null {
  if (retain === undefined || retain === 'all') return null;
  if (retain === null || typeof retain !== 'object') {
    throw new TypeError(`Expected \`retain\` to be 'all' or { keepTurns }, got ${describeValue(retain)}`);
  }
  assertIntegerAtLeast(retain.keepTurns, 'retain.keepTurns', 0);
  return retain.keepTurns;
}

/** Checks the filters of `listAgents` that have a type the store relies on (`pinned`, `hasMail`). */
export function checkListFilters(options: ListOptions): void {
  for (const key of ['pinned', 'hasMail'] as const) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new TypeError(`Expected \`${key}\` to be a boolean, got ${describeValue(value)}`);
    }
  }
}

/** The StoreError for a turn on a message that is not pending (rule 2 of Store.ts). */
export function notPending(agentId: string, seq: number, action: string): StoreError {
  return new StoreError(
    `Cannot ${action} message #${seq} of agent "${agentId}": it is not pending (already consumed, or never appended)`,
  );
}

/** Checks the argument of `acquire` (a `TypeError` when it is not a StoreOwner) and copies it. */
export function ownerOf(owner: StoreOwner): StoreOwner {
  if (owner === null || typeof owner !== 'object') {
    throw new TypeError(`Expected \`owner\` to be { pid, host, since }, got ${describeValue(owner)}`);
  }
  const { pid, host, since } = owner;
  if (!Number.isSafeInteger(pid) || pid < 0) {
    throw new TypeError(`Expected \`owner.pid\` to be a process id (an integer ≥ 0), got ${describeValue(pid)}`);
  }
  if (typeof host !== 'string') {
    throw new TypeError(`Expected \`owner.host\` to be a string, got ${describeValue(host)}`);
  }
  if (typeof since !== 'number' || !Number.isFinite(since)) {
    throw new TypeError(`Expected \`owner.since\` to be a time in ms since the epoch, got ${describeValue(since)}`);
  }
  return { pid, host, since };
}

/**
 * A page size or limit as SQLite can bind it: a limit beyond what a JavaScript number
 * counts exactly (2^53 - 1) means "all" anyway, and SQLite refuses integers ≥ 2^63.
 */
export function boundedLimit(limit: number): number {
  return Math.min(limit, Number.MAX_SAFE_INTEGER - 1);
}

/** The kinds of StoreOp `batch` runs. */
const OP_KINDS: ReadonlySet<string> = new Set<StoreOp['op']>([
  'createAgent',
  'destroyAgent',
  'append',
  'beginTurn',
  'commitTurn',
  'note',
  'schedule',
  'cancel',
  'fire',
]);

/**
 * Checks the argument of `batch`: an array of objects whose `op` names a store operation.
 * A `TypeError` otherwise (the whole call is refused, nothing is stored). What each op
 * carries is checked by the op itself, as its single method checks it.
 */
export function checkOps(ops: readonly StoreOp[]): void {
  if (!Array.isArray(ops)) {
    throw new TypeError(`Expected \`ops\` to be an array of store operations, got ${describeValue(ops)}`);
  }
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as unknown;
    const kind = op !== null && typeof op === 'object' ? (op as { op?: unknown }).op : undefined;
    if (typeof kind !== 'string' || !OP_KINDS.has(kind)) {
      throw new TypeError(
        `Expected \`ops[${i}]\` to be a store operation ({ op: ${[...OP_KINDS].map((k) => `'${k}'`).join(' | ')}, … }), ` +
          `got ${describeValue(op)}`,
      );
    }
  }
}

/** Checks a string argument of a timer op (a `TypeError` otherwise). */
function assertString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`Expected \`${name}\` to be a string, got ${describeValue(value)}`);
}

/** Checks a time of a timer op: a finite number of ms (a `TypeError` otherwise). */
function assertTime(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`Expected \`${name}\` to be a finite time in ms, got ${describeValue(value)}`);
  }
}

/**
 * Checks a timer (rule 13 of Store.ts) as a store needs it: `{ agentId, key, at, message }`
 * with string ids and a finite deadline; a `TypeError` otherwise. Whether its message is
 * JSON is the store's check (a `StoreError`, as for `append`).
 */
export function checkTimer(timer: TimerRecord, name = 'timer'): void {
  if (timer === null || typeof timer !== 'object') {
    throw new TypeError(`Expected \`${name}\` to be a timer { agentId, key, at, message }, got ${describeValue(timer)}`);
  }
  assertString(timer.agentId, `${name}.agentId`);
  assertString(timer.key, `${name}.key`);
  assertTime(timer.at, `${name}.at`);
}

/** Checks the arguments of a `cancel` op (a `TypeError` otherwise). */
export function checkCancel(agentId: string, key: string): void {
  assertString(agentId, 'agentId');
  assertString(key, 'key');
}

/** Checks the arguments of a `fire` op (a `TypeError` otherwise). */
export function checkFire(op: Extract<StoreOp, { op: 'fire' }>): void {
  assertString(op.agentId, 'agentId');
  assertString(op.key, 'key');
  assertTime(op.at, 'at');
  assertString(op.messageId, 'messageId');
  assertTime(op.firedAt, 'firedAt');
}

/**
 * Checks a commit's timers (`CommitTurn.timers`): schedules of the committing agent and
 * cancelled keys; a `TypeError` otherwise (the commit stores nothing). Returns them, the
 * lists empty when absent.
 */
export function commitTimers(commit: CommitTurn): { schedule: TimerRecord[]; cancel: string[] } {
  const timers = commit.timers;
  if (timers === undefined) return { schedule: [], cancel: [] };
  if (timers === null || typeof timers !== 'object') {
    throw new TypeError(`Expected \`timers\` to be { schedule?, cancel? }, got ${describeValue(timers)}`);
  }
  const { schedule = [], cancel = [] } = timers;
  if (!Array.isArray(schedule)) {
    throw new TypeError(`Expected \`timers.schedule\` to be an array of timers, got ${describeValue(schedule)}`);
  }
  if (!Array.isArray(cancel)) {
    throw new TypeError(`Expected \`timers.cancel\` to be an array of keys, got ${describeValue(cancel)}`);
  }
  schedule.forEach((timer, i) => {
    checkTimer(timer, `timers.schedule[${i}]`);
    if (timer.agentId !== commit.agentId) {
      throw new TypeError(
        `Expected \`timers.schedule[${i}].agentId\` to be the committing agent "${commit.agentId}", got ${describeValue(timer.agentId)}: ` +
          "a turn schedules its own agent's timers",
      );
    }
  });
  cancel.forEach((key, i) => assertString(key, `timers.cancel[${i}]`));
  return { schedule, cancel };
}

/** Checks the arguments of `dueTimers` (a `TypeError` otherwise). */
export function checkDue(now: number, limit: number): void {
  if (typeof now !== 'number' || Number.isNaN(now)) {
    throw new TypeError(`Expected \`now\` to be a time in ms, got ${describeValue(now)}`);
  }
  assertLimit(limit, 'limit');
}

/** The order of timers (rule 13 of Store.ts): by deadline, then agent id, then key. */
export function compareTimers(a: Pick<TimerRecord, 'at' | 'agentId' | 'key'>, b: Pick<TimerRecord, 'at' | 'agentId' | 'key'>): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  if (a.agentId !== b.agentId) return a.agentId < b.agentId ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** An agent's counters row as the SQL stores read it (rule 11; snake_case time). */
export interface CountersRow {
  turns: number;
  failed: number;
  crashed: number;
  interrupted: number;
  mailbox: number;
  timers: number;
  last_active_at: unknown;
}

/** A counters row as AgentStats (rule 11). */
export function statsOfRow(row: CountersRow): AgentStats {
  return {
    turns: row.turns,
    failed: row.failed,
    crashed: row.crashed,
    interrupted: row.interrupted,
    mailbox: row.mailbox,
    timers: row.timers,
    lastActiveAt: typeof row.last_active_at === 'number' ? row.last_active_at : null,
  };
}
