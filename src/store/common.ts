/**
 * What every store shares: the default page size, the errors the contract names, the
 * checks of an owner and of a batch's ops.
 * (Limits are checked with validate.ts's `assertIntegerAtLeast`.)
 */
import { StoreError } from '../errors.js';
import { assertIntegerAtLeast, describeValue } from '../validate.js';
import type { CommitTurn, ListOptions, Retention, StoreOp, StoreOwner } from './Store.js';

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
