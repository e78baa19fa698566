/**
 * TimerHeap (src/store/timerHeap.ts) against a naive model: a map of the pending timers,
 * sorted on every read by the contract's order (rule 13 of Store.ts), written out here
 * rather than imported so a wrong order in the store's code is caught. Random sequences of
 * schedule / replace / cancel / destroy / dueTimers / nextDeadline / per-agent reads, with
 * few agents, keys and deadlines so that ties are common. Set SEED to replay a run.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TimerRecord } from '../../src/store/Store.js';
import { TimerHeap } from '../../src/store/timerHeap.js';

// A 32-bit seed, so the one logged here is the one fast-check reports on a failure.
const seed = Number(process.env.SEED ?? Date.now()) | 0;
console.log(`timerHeap.test.ts: fast-check seed ${seed} (replay with SEED=${seed})`);

/** The contract's order, by hand: earliest `at`, then agentId, then key (plain string order). */
function contractOrder(a: TimerRecord, b: TimerRecord): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  if (a.agentId !== b.agentId) return a.agentId < b.agentId ? -1 : 1;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return 0;
}

class Model {
  private timers = new Map<string, TimerRecord>();
  private id = (agentId: string, key: string) => JSON.stringify([agentId, key]);
  private sorted(): TimerRecord[] {
    return [...this.timers.values()].sort(contractOrder);
  }
  get size(): number {
    return this.timers.size;
  }
  put(timer: TimerRecord): void {
    this.timers.set(this.id(timer.agentId, timer.key), timer);
  }
  get(agentId: string, key: string): TimerRecord | undefined {
    return this.timers.get(this.id(agentId, key));
  }
  delete(agentId: string, key: string): boolean {
    return this.timers.delete(this.id(agentId, key));
  }
  dropAgent(agentId: string): number {
    const mine = this.of(agentId);
    for (const t of mine) this.delete(t.agentId, t.key);
    return mine.length;
  }
  count(agentId: string): number {
    return this.of(agentId).length;
  }
  of(agentId: string): TimerRecord[] {
    return this.sorted().filter((t) => t.agentId === agentId);
  }
  next(): number | null {
    return this.sorted()[0]?.at ?? null;
  }
  due(now: number, limit: number): TimerRecord[] {
    return this.sorted()
      .filter((t) => t.at <= now)
      .slice(0, limit);
  }
}

// Small domains: ties on `at`, on agentId and on key are the common case. The ids include
// prefixes of one another and case differences (string order, not locale order).
const agentIdArb = fc.constantFrom('a', 'b', 'ab', 'B', 'a-1');
const keyArb = fc.constantFrom('k', 'k1', 'k10', 'k2', 'K', '');
const atArb = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom(-1, 2.5, 1e12));

type Op =
  | { op: 'schedule'; agentId: string; key: string; at: number; n: number }
  | { op: 'cancel'; agentId: string; key: string }
  | { op: 'fire'; agentId: string; key: string }
  | { op: 'destroy'; agentId: string }
  | { op: 'due'; now: number; limit: number }
  | { op: 'fireDue'; now: number; limit: number }
  | { op: 'next' }
  | { op: 'of'; agentId: string };

const schedule = fc.record({ op: fc.constant('schedule' as const), agentId: agentIdArb, key: keyArb, at: atArb, n: fc.nat(1000) });
const cancel = fc.record({ op: fc.constant('cancel' as const), agentId: agentIdArb, key: keyArb });
const fire = fc.record({ op: fc.constant('fire' as const), agentId: agentIdArb, key: keyArb });
const destroy = fc.record({ op: fc.constant('destroy' as const), agentId: agentIdArb });
const due = fc.record({ op: fc.constant('due' as const), now: fc.oneof(atArb, fc.constant(Infinity)), limit: fc.integer({ min: 1, max: 8 }) });
const fireDue = fc.record({ op: fc.constant('fireDue' as const), now: fc.oneof(atArb, fc.constant(Infinity)), limit: fc.integer({ min: 1, max: 8 }) });
const next = fc.record({ op: fc.constant('next' as const) });
const of = fc.record({ op: fc.constant('of' as const), agentId: agentIdArb });

/** Reads and writes mixed: reads pop the stale entries that reach the top. */
const mixedOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: schedule },
  { weight: 2, arbitrary: cancel },
  { weight: 2, arbitrary: fire },
  { weight: 1, arbitrary: destroy },
  { weight: 3, arbitrary: due },
  { weight: 2, arbitrary: fireDue },
  { weight: 2, arbitrary: next },
  { weight: 1, arbitrary: of },
);
/** Writes only: stale entries pile up until more than half the heap is stale and it is rebuilt. */
const churnOp: fc.Arbitrary<Op> = fc.oneof({ weight: 6, arbitrary: schedule }, { weight: 3, arbitrary: cancel }, { weight: 1, arbitrary: destroy });
/** Runs of mixed ops and runs of writes only. */
const opsArb: fc.Arbitrary<Op[]> = fc
  .array(fc.oneof(fc.array(mixedOp, { maxLength: 40 }), fc.array(churnOp, { maxLength: 40 })), { maxLength: 10 })
  .map((runs) => runs.flat());

const ids = (timers: readonly TimerRecord[]) => timers.map((t) => `${t.agentId}/${t.key}@${t.at}#${JSON.stringify(t.message)}`);

/** Runs `ops` on a heap and on the model, comparing every answer and the state after each op. */
function check(ops: readonly Op[]): void {
  const heap = new TimerHeap();
  const model = new Model();
  for (const [i, op] of ops.entries()) {
    const where = `op ${i}: ${JSON.stringify(op)}`;
    switch (op.op) {
      case 'schedule': {
        const timer: TimerRecord = { agentId: op.agentId, key: op.key, at: op.at, message: { type: 't', n: op.n } };
        heap.put(timer);
        model.put(timer);
        break;
      }
      case 'cancel':
        expect(heap.delete(op.agentId, op.key), where).toBe(model.delete(op.agentId, op.key));
        break;
      case 'fire': {
        // What memoryStore's fire does: read the timer, then delete it.
        const timer = model.get(op.agentId, op.key);
        expect(heap.get(op.agentId, op.key), where).toBe(timer);
        if (timer !== undefined) expect(heap.delete(op.agentId, op.key), where).toBe(model.delete(op.agentId, op.key));
        break;
      }
      case 'destroy':
        expect(heap.dropAgent(op.agentId), where).toBe(model.dropAgent(op.agentId));
        break;
      case 'due':
        expect(ids(heap.due(op.now, op.limit)), where).toEqual(ids(model.due(op.now, op.limit)));
        break;
      case 'fireDue': {
        // What the runtime does: read the due timers, then fire each.
        const due = model.due(op.now, op.limit);
        expect(ids(heap.due(op.now, op.limit)), where).toEqual(ids(due));
        for (const t of due) expect(heap.delete(t.agentId, t.key), where).toBe(model.delete(t.agentId, t.key));
        break;
      }
      case 'next':
        expect(heap.next(), where).toBe(model.next());
        break;
      case 'of':
        expect(ids(heap.of(op.agentId)), where).toEqual(ids(model.of(op.agentId)));
        expect(heap.count(op.agentId), where).toBe(model.count(op.agentId));
        break;
    }
    expect(heap.size, where).toBe(model.size);
    // Lazy deletion stays bounded: the rebuild keeps stale entries to at most half of the heap.
    expect(heap.entries, where).toBeLessThanOrEqual(2 * heap.size);
  }
  // At the end, everything in order, and the reads changed nothing.
  expect(ids(heap.due(Infinity, Number.MAX_SAFE_INTEGER))).toEqual(ids(model.due(Infinity, Number.MAX_SAFE_INTEGER)));
  expect(heap.next()).toBe(model.next());
}

describe('TimerHeap', () => {
  it('agrees with a sorted-array model over random schedule/replace/cancel/fire/destroy/due/next sequences, rebuilds included', () => {
    fc.assert(
      fc.property(opsArb, (ops) => check(ops)),
      { seed, verbose: true, numRuns: 300 },
    );
  });

  it('orders ties by agentId, then key', () => {
    const heap = new TimerHeap();
    for (const [agentId, key] of [['b', 'a'], ['a', 'z'], ['a', 'b'], ['ab', 'a'], ['B', 'c']] as const) {
      heap.put({ agentId, key, at: 5, message: { type: 't' } });
    }
    heap.put({ agentId: 'z', key: 'z', at: 4, message: { type: 't' } });
    expect(heap.due(5, 100).map((t) => `${t.agentId}/${t.key}`)).toEqual(['z/z', 'B/c', 'a/b', 'a/z', 'ab/a', 'b/a']);
    expect(heap.due(4, 100).map((t) => `${t.agentId}/${t.key}`)).toEqual(['z/z']);
    expect(heap.next()).toBe(4);
  });

  it('a record scheduled again after its cancel is listed once', () => {
    const heap = new TimerHeap();
    const timer: TimerRecord = { agentId: 'a', key: 'k', at: 1, message: { type: 't' } };
    heap.put(timer);
    heap.put({ agentId: 'a', key: 'x', at: 2, message: { type: 't' } });
    heap.delete('a', 'k');
    heap.put(timer);
    expect(heap.due(10, 10).map((t) => t.key)).toEqual(['k', 'x']);
  });

  it('reclaims the entries of destroyed agents and fired timers, and reads stay O(limit)', () => {
    const heap = new TimerHeap();
    const N = 20_000;
    for (let i = 0; i < N; i++) heap.put({ agentId: `agent-${i % 100}`, key: `k${i}`, at: 1_000, message: { type: 't' } });
    expect(heap.size).toBe(N);
    for (let a = 0; a < 50; a++) heap.dropAgent(`agent-${a}`);
    expect(heap.size).toBe(N / 2);
    expect(heap.entries).toBeLessThanOrEqual(N);
    heap.dropAgent('agent-50');
    expect(heap.entries).toBeLessThanOrEqual(2 * heap.size);
    // Fire them all, 256 at a time, as the runtime does.
    let fired = 0;
    for (let due = heap.due(1_000, 256); due.length > 0; due = heap.due(1_000, 256)) {
      expect(due[0]!.agentId >= 'agent-51').toBe(true);
      for (const t of due) expect(heap.delete(t.agentId, t.key)).toBe(true);
      fired += due.length;
      expect(heap.entries).toBeLessThanOrEqual(2 * heap.size + 256);
    }
    expect(fired).toBe(N / 2 - N / 100);
    expect(heap.size).toBe(0);
    expect(heap.next()).toBeNull();
    expect(heap.entries).toBe(0);
  });
});
