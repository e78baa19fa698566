/**
 * The write buffer (src/runtime/WriteBuffer.ts): one batch in flight for a store that writes
 * where it is called; two for a `pipelined` store (a writer thread that keeps their order),
 * answers handed out in batch order either way.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { WriteBuffer } from '../../src/runtime/WriteBuffer.js';
import type { Store, StoreOp, StoreOpResult } from '../../src/store/Store.js';

/** A store whose batches settle only when the test says so. */
function heldStore(pipelined: boolean) {
  const calls: { ops: readonly StoreOp[]; settle: () => void }[] = [];
  const store = {
    kind: 'held',
    pipelined,
    batch(ops: readonly StoreOp[]): Promise<StoreOpResult[]> {
      return new Promise((resolve) => {
        calls.push({ ops, settle: () => resolve(ops.map((op) => ({ ok: true, value: (op as { id: string }).id }))) });
      });
    },
  } as unknown as Store;
  return { store, calls };
}

const op = (id: string): StoreOp => ({ op: 'destroyAgent', id });
const turnOfLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('WriteBuffer', () => {
  for (const pipelined of [false, true]) {
    it(`${pipelined ? 'a pipelined store: the next batch goes while one is written' : 'a store on the calling thread: one batch at a time'}; answers in batch order`, async () => {
      const { store, calls } = heldStore(pipelined);
      const buffer = new WriteBuffer(store, systemClock);
      const order: string[] = [];
      const a = buffer.write<string>(op('a')).then((v) => order.push(v));
      await turnOfLoop();
      const b = buffer.write<string>(op('b')).then((v) => order.push(v));
      await turnOfLoop();
      await turnOfLoop();
      expect(calls.length).toBe(pipelined ? 2 : 1);
      const c = buffer.write<string>(op('c')).then((v) => order.push(v));
      await turnOfLoop();
      await turnOfLoop();
      // Never more than two in flight.
      expect(calls.length).toBe(pipelined ? 2 : 1);
      calls[0]!.settle();
      await a;
      await turnOfLoop();
      await turnOfLoop();
      expect(calls.length).toBe(pipelined ? 3 : 2);
      expect(calls.map((x) => x.ops.map((o) => (o as { id: string }).id).join(''))).toEqual(pipelined ? ['a', 'b', 'c'] : ['a', 'bc']);
      for (const call of calls.slice(1)) call.settle();
      await Promise.all([b, c]);
      expect(order).toEqual(['a', 'b', 'c']);
      expect(buffer.pending).toBe(0);
    });
  }
});
