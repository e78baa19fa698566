/**
 * What every store shares: the default page size, the errors the contract names, the
 * check of an owner.
 * (Limits are checked with validate.ts's `assertIntegerAtLeast`.)
 */
import { StoreError } from '../errors.js';
import { describeValue } from '../validate.js';
import type { StoreOwner } from './Store.js';

/** `listAgents` page size when no `limit` is given. */
export const DEFAULT_LIST_LIMIT = 100;

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
