/**
 * The write buffer (src/runtime/WriteBuffer.ts): one batch in flight for a store that writes
 * where it is called; up to PIPELINE_DEPTH for a `pipelined` store (a writer thread that
 * keeps their order), answers handed out in batch order either way.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { PIPELINE_DEPTH, WriteBuffer } from '../../src/runtime/WriteBuffer.js';
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
const ids = (calls: { ops: readonly StoreOp[] }[]) => calls.map((x) => x.ops.map((o) => (o as { id: string }).id).join(','));

describe('WriteBuffer', () => {
  for (const pipelined of [false, true]) {
    const depth = pipelined ? PIPELINE_DEPTH : 1;
    it(`${pipelined ? `a pipelined store: up to ${PIPELINE_DEPTH} batches in flight` : 'a store on the calling thread: one batch at a time'}; answers in batch order`, async () => {
      expect(PIPELINE_DEPTH).toBeGreaterThan(1);
      const { store, calls } = heldStore(pipelined);
      const buffer = new WriteBuffer(store, systemClock);
      const order: string[] = [];
      const written: Promise<unknown>[] = [];
      // One write per turn of the event loop, more than the depth.
      for (let i = 0; i < depth + 2; i++) {
        written.push(buffer.write<string>(op(`w${i}`)).then((v) => order.push(v)));
        await turnOfLoop();
        await turnOfLoop();
      }
      expect(calls.length).toBe(depth);
      expect(buffer.pending).toBe(2);
      // The first one settles: the two waiting go in one batch.
      calls[0]!.settle();
      await written[0];
      await turnOfLoop();
      await turnOfLoop();
      expect(calls.length).toBe(depth + 1);
      expect(ids(calls).at(-1)).toBe(`w${depth},w${depth + 1}`);
      // Settled out of order, answered in order.
      for (const call of calls.slice(1).reverse()) call.settle();
      await Promise.all(written);
      expect(order).toEqual(Array.from({ length: depth + 2 }, (_, i) => `w${i}`));
      expect(buffer.pending).toBe(0);
    });
  }
});
