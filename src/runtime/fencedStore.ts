import { FencedError } from '../errors.js';
import type { Store } from '../store/Store.js';
import { STORE_METHODS } from './options.js';

/**
 * The store as the runtime uses it: once a write was refused because another owner took
 * the store over (FencedError), `onFenced` runs and every later call rejects with that
 * error without reaching the store.
 */
export function fencedStore(store: Store, onFenced: (err: FencedError) => void): Store {
  let fenced: FencedError | null = null;
  // What the runtime reads besides the methods: a shared store's cluster, a pipelined writer.
  const out: Record<string, unknown> = { kind: store.kind, cluster: store.cluster, pipelined: store.pipelined };
  for (const key of STORE_METHODS) {
    const method = ((store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[key]!).bind(store);
    out[key] = async (...args: unknown[]) => {
      if (fenced) throw fenced;
      try {
        return await method(...args);
      } catch (err) {
        // A shared store fences per shard (Membership drops that shard's agents), not the whole store.
        if (err instanceof FencedError && !fenced && store.cluster === undefined) {
          fenced = err;
          onFenced(err);
        }
        throw err;
      }
    };
  }
  return out as unknown as Store;
}
