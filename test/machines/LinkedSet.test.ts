import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinkedSet } from '../../machines/LinkedSet.js';
import { lru, lruOver } from '../../machines/policy.js';

const seed = process.env.RESIDENCY_SEED ? Number(process.env.RESIDENCY_SEED) : Date.now() % 2 ** 31;

describe('LinkedSet', () => {
  it('keeps insertion order and moves a pushed key to the back', () => {
    const s = new LinkedSet<number>();
    s.push('a', 1);
    s.push('b', 2);
    s.push('c', 3);
    s.push('a', 4);
    expect([...s.keys()]).toEqual(['b', 'c', 'a']);
    expect(s.get('a')).toBe(4);
    expect(s.peek()).toBe('b');
    expect(s.peekValue()).toBe(2);
    expect(s.peekLast()).toBe('a');
    expect(s.unsafeCheckLinks()).toEqual([]);
  });

  it('deletes from the front, middle and back', () => {
    const s = new LinkedSet();
    for (const k of ['a', 'b', 'c', 'd']) s.push(k, undefined);
    expect(s.delete('b')).toBe(true);
    expect(s.delete('a')).toBe(true);
    expect(s.delete('d')).toBe(true);
    expect(s.delete('zz')).toBe(false);
    expect([...s]).toEqual(['c']);
    expect(s.shift()).toBe('c');
    expect(s.shift()).toBeUndefined();
    expect(s.size).toBe(0);
    expect(s.unsafeCheckLinks()).toEqual([]);
  });

  it('its link check notices each kind of broken list', () => {
    const make = () => {
      const s = new LinkedSet();
      for (const k of ['a', 'b', 'c']) s.push(k, undefined);
      return s;
    };
    const prevBroken = make();
    prevBroken.unsafeInternals().nodes.get('c')!.prev = null;
    expect(prevBroken.unsafeCheckLinks().join()).toMatch(/prev link/);

    const cycle = make();
    const { nodes } = cycle.unsafeInternals();
    nodes.get('c')!.next = nodes.get('a')!;
    expect(cycle.unsafeCheckLinks().join()).toMatch(/twice|tail/);

    const lost = make();
    lost.unsafeInternals().nodes.get('a')!.next = null; // b and c fall off the list
    expect(lost.unsafeCheckLinks().join()).toMatch(/list has 1 nodes, map has 3/);

    expect(make().unsafeCheckLinks()).toEqual([]);
  });

  it('matches a reference array and keeps its links sound under random operations', () => {
    console.log(`LinkedSet random operations: seed ${seed}`);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), key: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ kind: fc.constant('shift' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const s = new LinkedSet<number>();
        const ref: string[] = [];
        ops.forEach((o, i) => {
          if (o.kind === 'push') {
            const k = String(o.key);
            s.push(k, i);
            const at = ref.indexOf(k);
            if (at >= 0) ref.splice(at, 1);
            ref.push(k);
          } else if (o.kind === 'delete') {
            const k = String(o.key);
            const at = ref.indexOf(k);
            expect(s.delete(k)).toBe(at >= 0);
            if (at >= 0) ref.splice(at, 1);
          } else {
            expect(s.shift()).toBe(ref.shift());
          }
          expect(s.unsafeCheckLinks()).toEqual([]);
          expect(s.size).toBe(ref.length);
          expect(s.peek()).toBe(ref[0]);
          expect(s.peekLast()).toBe(ref[ref.length - 1]);
        });
        expect([...s.keys()]).toEqual(ref);
      }),
      { seed, numRuns: 300 },
    );
  });
});

describe('LRU policy', () => {
  it('offers the agent that became evictable longest ago', () => {
    const p = lru();
    p.evictable('a', 1);
    p.evictable('b', 2);
    p.evictable('c', 3);
    expect(p.victim()).toBe('a');
    p.evictable('a', 4); // used again: most recent now
    expect(p.victim()).toBe('b');
    p.busy('b');
    expect(p.victim()).toBe('c');
    expect(p.order()).toEqual(['c', 'a']);
    expect(p.order(1)).toEqual(['c']);
    expect(p.size).toBe(2);
    p.busy('c');
    p.busy('a');
    expect(p.victim()).toBeUndefined();
  });

  it('its head is always a valid victim: evictable now, and the least recently used', () => {
    console.log(`LRU random operations: seed ${seed}`);
    const op = fc.record({
      kind: fc.constantFrom('evictable' as const, 'busy' as const, 'evict' as const),
      agent: fc.integer({ min: 0, max: 12 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const list = new LinkedSet<number>();
        const p = lruOver(list);
        const evictableSince = new Map<string, number>();
        ops.forEach((o, t) => {
          const id = `agent-${o.agent}`;
          if (o.kind === 'evictable') {
            p.evictable(id, t);
            evictableSince.set(id, t);
          } else if (o.kind === 'busy') {
            p.busy(id);
            evictableSince.delete(id);
          } else {
            const v = p.victim();
            if (v !== undefined) {
              p.busy(v);
              evictableSince.delete(v);
            }
          }
          const v = p.victim();
          if (evictableSince.size === 0) {
            expect(v).toBeUndefined();
          } else {
            expect(evictableSince.has(v!)).toBe(true);
            const oldest = Math.min(...evictableSince.values());
            expect(evictableSince.get(v!)).toBe(oldest);
          }
          expect(list.unsafeCheckLinks()).toEqual([]);
          expect(p.size).toBe(evictableSince.size);
        });
      }),
      { seed, numRuns: 300 },
    );
  });
});
