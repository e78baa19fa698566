/**
 * The runtime's share of the event loop: work runs in slices of at most SLICE_MS, then
 * yields (a macrotask: `setImmediate`) so the host application's timers and I/O run in
 * between. Parts of the core ask `spent()` before starting more work and `next()` to wait
 * for the next slice.
 */

/** The most work (ms) between two turns of the event loop. */
export const SLICE_MS = 2;

let start = performance.now();
let waiting: Promise<void> | null = null;

/** The current slice is used up: yield before starting more work. */
export function spent(): boolean {
  return performance.now() - start >= SLICE_MS;
}

/** Resolves at the start of the next slice (after a turn of the event loop). */
export function next(): Promise<void> {
  waiting ??= new Promise<void>((resolve) =>
    setImmediate(() => {
      waiting = null;
      begin();
      resolve();
    }),
  );
  return waiting;
}

/**
 * Waits until the current slice has time left. Everyone waiting resumes in the same turn of
 * the event loop, so each checks again: the first ones use the new slice, the rest wait for
 * the one after (without the check, 64 agents' turns resumed together ran ~4 ms in one go).
 */
export async function room(): Promise<void> {
  while (spent()) await next();
}

/** A new slice starts now (called when the runtime resumes from a turn of the event loop). */
export function begin(): void {
  start = performance.now();
}
