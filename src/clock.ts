/**
 * Time, injected. The runtime reads time and sets timers only through a `Clock`, so
 * tests drive it with `manualClock()` and never sleep.
 */
import { describeValue } from './validate.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock: `Date.now()` and the host's timers (unref'd: they never keep the process alive). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface ManualClock extends Clock {
  /**
   * Moves time forward by `ms` (a finite number ≥ 0), firing due timers in time order,
   * timers due at the same instant in the order they were set (timers set by timers fire
   * too, when due before the new time).
   */
  advance(ms: number): void;
  /** Timers not yet fired (nor cleared). */
  pending(): number;
}

/** Throws unless `ms` is a finite number ≥ 0. */
function assertAdvance(ms: unknown): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new TypeError(`Expected \`ms\` to be a finite number ≥ 0, got ${describeValue(ms)}`);
  }
}

interface Timer {
  at: number;
  /** Order of creation: breaks ties between timers due at the same instant. */
  seq: number;
  fn: () => void;
  /** Position in the heap. */
  index: number;
}

const before = (a: Timer, b: Timer) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/**
 * A simulated clock for tests. Its timers sit in a binary heap ordered by (due time,
 * creation order): setting, clearing and firing one costs O(log n).
 *
 * @example
 * const clock = manualClock();
 * clock.setTimeout(() => console.log('later'), 100);
 * clock.advance(100); // logs 'later'
 */
export function manualClock(start = 0): ManualClock {
  if (typeof start !== 'number' || !Number.isFinite(start)) {
    throw new TypeError(`Expected \`start\` to be a finite number, got ${describeValue(start)}`);
  }
  let now = start;
  let seq = 0;
  const heap: Timer[] = [];
  const byHandle = new Map<number, Timer>();

  const place = (t: Timer, i: number) => {
    heap[i] = t;
    t.index = i;
  };
  const up = (i: number) => {
    const t = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(t, heap[parent]!)) break;
      place(heap[parent]!, i);
      i = parent;
    }
    place(t, i);
  };
  const down = (i: number) => {
    const t = heap[i]!;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, t)) break;
      place(heap[child]!, i);
      i = child;
    }
    place(t, i);
  };
  const remove = (t: Timer) => {
    const last = heap.pop()!;
    if (last === t) return;
    place(last, t.index);
    up(last.index);
    down(last.index);
  };

  return {
    now: () => now,
    setTimeout(fn, ms) {
      const handle = ++seq;
      // As host timers do, a negative or NaN delay means "as soon as possible".
      const delay = typeof ms === 'number' && ms > 0 ? ms : 0;
      const t: Timer = { at: now + delay, seq: handle, fn, index: heap.length };
      heap.push(t);
      up(t.index);
      byHandle.set(handle, t);
      return handle;
    },
    clearTimeout(h) {
      const t = byHandle.get(h as number);
      if (!t) return;
      byHandle.delete(h as number);
      remove(t);
    },
    advance(ms) {
      assertAdvance(ms);
      const until = now + ms;
      while (heap.length > 0 && heap[0]!.at <= until) {
        const t = heap[0]!;
        remove(t);
        byHandle.delete(t.seq);
        now = Math.max(now, t.at); // a timer that advanced the clock itself does not send time back
        t.fn();
      }
      now = Math.max(now, until);
    },
    pending: () => heap.length,
  };
}
