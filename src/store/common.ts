/**
 * What every store shares: the default page size and the errors the contract names.
 * (Limits are checked with validate.ts's `assertIntegerAtLeast`.)
 */
import { StoreError } from '../errors.js';

/** `listAgents` page size when no `limit` is given. */
export const DEFAULT_LIST_LIMIT = 100;

/** The StoreError for a turn on a message that is not pending (rule 2 of Store.ts). */
export function notPending(agentId: string, seq: number, action: string): StoreError {
  return new StoreError(
    `Cannot ${action} message #${seq} of agent "${agentId}": it is not pending (already consumed, or never appended)`,
  );
}
