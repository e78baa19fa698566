/**
 * Eviction policies: which evictable agent the supervisor evicts next.
 *
 * A policy is pure in the sense that matters here: no I/O, no timers, no knowledge of
 * actors. It only sees agents that are evictable right now (idle, empty mailbox, no
 * permit pending, not pinned), so whatever it returns from `victim()` is a valid victim.
 * The supervisor tells it when an agent becomes evictable and when it stops being so,
 * and carries out its choice.
 *
 * Every operation must cost O(1) (amortised): the cost of one eviction must not grow
 * with the number of residents.
 */
import { LinkedSet } from './LinkedSet.js';

export interface EvictionPolicy {
  /** A short name, shown by the inspector and in stats. */
  readonly name: string;
  /** How many agents the policy holds (all evictable). */
  readonly size: number;
  /**
   * The agent became evictable at time `at`: it was loaded, a turn ended, or a flush
   * failed, and its mailbox is empty. For LRU this makes it the most recent.
   */
  evictable(id: string, at: number): void;
  /** The agent is no longer evictable (it has work, is being evicted, or left). */
  busy(id: string): void;
  has(id: string): boolean;
  /** The agent to evict next, without removing it; `undefined` when none is evictable. */
  victim(): string | undefined;
  /** Agents in eviction order, next victim first, at most `limit` (for inspection). */
  order(limit?: number): string[];
}

/** Makes a fresh policy instance; one per supervisor. */
export type PolicyFactory = () => EvictionPolicy;

/**
 * Least recently used: the agent that became evictable longest ago goes first.
 *
 * @example
 * const p = lru();
 * p.evictable('a', 1); p.evictable('b', 2); p.evictable('a', 3);
 * p.victim(); // => 'b'
 */
export const lru: PolicyFactory = () => lruOver(new LinkedSet<number>());

/**
 * @internal The LRU over a given list, so tests can hold the list and check its links.
 */
export function lruOver(list: LinkedSet<number>): EvictionPolicy {
  return {
    name: 'lru',
    get size() {
      return list.size;
    },
    evictable: (id, at) => list.push(id, at),
    busy: (id) => void list.delete(id),
    has: (id) => list.has(id),
    victim: () => list.peek(),
    order(limit = Infinity) {
      const out: string[] = [];
      for (const id of list.keys()) {
        if (out.length >= limit) break;
        out.push(id);
      }
      return out;
    },
  };
}
