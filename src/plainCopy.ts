/**
 * Copies of plain JSON-shaped data (objects, arrays, primitives): what the runtime and its
 * stores hold (states, messages, snapshots, records — each checked to be JSON on its way
 * in). A walk of its own is about 20 times faster than `structuredClone` for the small
 * values of a turn (0.05 µs against 1 µs for `{ n: 5 }` on the benchmark machine); anything
 * else (a cycle, a Date, a Map…) goes through `structuredClone` as before.
 */

export const NOT_PLAIN = Symbol('not plain');

/** A copy of plain JSON-shaped data, or NOT_PLAIN. */
export function plainCopy(v: unknown, depth = 0): unknown {
  if (typeof v !== 'object' || v === null) {
    return typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint' ? NOT_PLAIN : v;
  }
  if (depth > 64) return NOT_PLAIN; // deep (or a cycle): structuredClone decides
  if (Array.isArray(v)) {
    if (Object.getPrototypeOf(v) !== Array.prototype) return NOT_PLAIN;
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = plainCopy(v[i], depth + 1);
      if (c === NOT_PLAIN) return NOT_PLAIN;
      out[i] = c;
    }
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(v)) {
    if (key === '__proto__') return NOT_PLAIN;
    const c = plainCopy((v as Record<string, unknown>)[key], depth + 1);
    if (c === NOT_PLAIN) return NOT_PLAIN;
    out[key] = c;
  }
  return out;
}

/** A deep copy: plain data by the walk above, anything else by `structuredClone` (which throws what it cannot copy). */
export function copyPlain<T>(value: T): T {
  const fast = plainCopy(value);
  return fast === NOT_PLAIN ? structuredClone(value) : (fast as T);
}
