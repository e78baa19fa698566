/**
 * TimerHeap: memoryStore's index of the durable timers of all agents (rule 13 of Store.ts),
 * by key per agent and by deadline across agents.
 *
 * The order across agents is a binary min-heap of entries under the contract's order
 * (`compareTimers`: earliest `at` first, ties by agentId, then key), with lazy deletion: a
 * replaced, cancelled or fired timer, or one of a destroyed agent, is only dropped from the
 * per-agent map, and its heap entry goes stale. An entry is current while the per-agent map
 * still holds that very entry object (the object is its generation stamp: a timer scheduled
 * again under the same key gets a new entry, even with the same record). Stale entries are
 * discarded when they reach the top, and the heap is rebuilt from the current entries when
 * more than half of it is stale, so memory stays bounded by twice the pending timers and a
 * rebuild costs O(1) amortized per entry that went stale.
 *
 * Costs, n the entries in the heap: `put` O(log n); `delete` and `dropAgent` O(1) per timer
 * dropped (amortized, with the rebuilds); `next` O(1) amortized (the stale entries it pops
 * went stale once); `due(now, limit)` O((limit + stale popped) · log n): it pops the due
 * timers off the top, then pushes them back, never a walk of the heap. Reads never return a
 * stale entry.
 */
import { compareTimers } from './common.js';
import type { TimerRecord } from './Store.js';

/** A timer in the heap; current while its agent's map holds this object under its key. */
class Entry {
  constructor(
    readonly at: number,
    readonly agentId: string,
    readonly key: string,
    readonly timer: TimerRecord,
  ) {}
}

/** `a` comes strictly before `b` in the contract's order. */
function before(a: Entry, b: Entry): boolean {
  return compareTimers(a, b) < 0;
}

export class TimerHeap {
  /** The heap (current and stale entries): `heap[0]` is the least; `heap[i]` is not after its children `2i+1`, `2i+2`. */
  private heap: Entry[] = [];
  /** The current entry of each pending timer, by agent then key. */
  private byAgent = new Map<string, Map<string, Entry>>();
  /** The pending timers (the current entries): the rest of the heap is stale. */
  private live = 0;

  /** The pending timers of all agents. */
  get size(): number {
    return this.live;
  }

  /** The entries in the heap, stale ones included (at most about twice `size`). */
  get entries(): number {
    return this.heap.length;
  }

  /** Upserts a timer under (agentId, key): a timer with the same key is replaced. The record is kept as given (not copied). */
  put(timer: TimerRecord): void {
    let timers = this.byAgent.get(timer.agentId);
    if (timers === undefined) this.byAgent.set(timer.agentId, (timers = new Map()));
    const entry = new Entry(timer.at, timer.agentId, timer.key, timer);
    if (timers.has(timer.key)) this.live--; // the old entry goes stale
    timers.set(timer.key, entry);
    this.live++;
    this.push(entry);
    this.maybeRebuild();
  }

  /** The pending timer (agentId, key). */
  get(agentId: string, key: string): TimerRecord | undefined {
    return this.byAgent.get(agentId)?.get(key)?.timer;
  }

  /** Deletes the timer (agentId, key); whether there was one. */
  delete(agentId: string, key: string): boolean {
    const timers = this.byAgent.get(agentId);
    if (timers === undefined || !timers.delete(key)) return false;
    if (timers.size === 0) this.byAgent.delete(agentId);
    this.live--;
    this.maybeRebuild();
    return true;
  }

  /** Deletes every timer of the agent (it was destroyed); how many there were. */
  dropAgent(agentId: string): number {
    const timers = this.byAgent.get(agentId);
    if (timers === undefined) return 0;
    this.byAgent.delete(agentId);
    this.live -= timers.size;
    this.maybeRebuild();
    return timers.size;
  }

  /** How many timers the agent has pending. */
  count(agentId: string): number {
    return this.byAgent.get(agentId)?.size ?? 0;
  }

  /** The agent's pending timers, earliest first (ties by key). */
  of(agentId: string): TimerRecord[] {
    const timers = this.byAgent.get(agentId);
    if (timers === undefined) return [];
    return [...timers.values()].sort(compareTimers).map((entry) => entry.timer);
  }

  /** The earliest deadline of all pending timers; null when there is none. */
  next(): number | null {
    return this.top()?.at ?? null;
  }

  /** The first pending timers due at or before `now`, in order, at most `limit`. Leaves them pending. */
  due(now: number, limit: number): TimerRecord[] {
    const taken: Entry[] = [];
    for (let entry = this.top(); entry !== undefined && entry.at <= now && taken.length < limit; entry = this.top()) {
      taken.push(this.pop());
    }
    for (const entry of taken) this.push(entry);
    return taken.map((entry) => entry.timer);
  }

  /** Forgets every timer. */
  clear(): void {
    this.heap = [];
    this.byAgent = new Map();
    this.live = 0;
  }

  private isCurrent(entry: Entry): boolean {
    return this.byAgent.get(entry.agentId)?.get(entry.key) === entry;
  }

  /** The least current entry, after discarding the stale entries above it. */
  private top(): Entry | undefined {
    const heap = this.heap;
    while (heap.length > 0 && !this.isCurrent(heap[0]!)) this.pop();
    return heap[0];
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      if (!before(entry, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  /** Removes and returns the least entry (current or stale); the heap is not empty. */
  private pop(): Entry {
    const heap = this.heap;
    const least = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) this.siftDown(0, last);
    return least;
  }

  /** Places `entry` at index `i` or below, moving the lesser children up. */
  private siftDown(i: number, entry: Entry): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(heap[child + 1]!, heap[child]!)) child++;
      if (!before(heap[child]!, entry)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = entry;
  }

  /** Rebuilds the heap from the current entries once more than half of it is stale (O(n), Floyd's heapify). */
  private maybeRebuild(): void {
    const heap = this.heap;
    if ((heap.length - this.live) * 2 <= heap.length) return;
    const kept: Entry[] = [];
    for (const entry of heap) if (this.isCurrent(entry)) kept.push(entry);
    this.heap = kept;
    for (let i = (kept.length >>> 1) - 1; i >= 0; i--) this.siftDown(i, kept[i]!);
  }
}
