/**
 * The lifecycle transitions that the runtime drives on purpose (none of them is dead code):
 * `pin` (runtime.pin), `failed → retry` (runtime.retry after a repair), `flush.failed` (an
 * eviction whose note cannot be written keeps the agent resident) and `reportError`.
 */
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { manualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import type { Store } from '../../src/store/Store.js';
import { StoreCorruptionError, StoreError } from '../../src/errors.js';
import { counterAgent, flush, record, until, wrapStore, type Handled } from './helpers.js';

describe('runtime.pin', () => {
  it('a pinned agent is never evicted and does not count against the cap', async () => {
    const handled: Handled = new Map();
    const runtime = await createRuntime({ agents: [counterAgent(handled)], residentCap: 1, runningCap: 1, store: memoryStore(), clock: manualClock(0) });
    for (const id of ['a', 'b', 'c']) await runtime.spawn('counter', { id });
    await runtime.pin('a');
    await runtime.ask('a', { type: 'inc', n: 1 });
    await runtime.ask('b', { type: 'inc', n: 1 });
    await runtime.ask('c', { type: 'inc', n: 1 }); // evicts b, never a
    expect((await runtime.get('a')).state).toBe('idle');
    expect((await runtime.get('a')).pinned).toBe(true);
    expect((await runtime.get('b')).state).toBe('unloaded');
    expect(runtime.stats().pinned).toBe(1);
    await expect(runtime.pin('nobody')).rejects.toThrow(/does not exist/);
    await runtime.stop();
  });
});

describe('runtime.retry', () => {
  it('takes a quarantined agent out of quarantine once the definition that restores it is deployed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'residency-retry-'));
    try {
      const path = join(dir, 'r.db');
      const v1 = createMachine({ id: 'm', initial: 'a', states: { a: { on: { go: 'b' } }, b: { on: { go: 'a' } } } });
      const r1 = await createRuntime({ agents: [defineAgent({ type: 'm', logic: v1 })], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
      await r1.spawn('m', { id: 'x' });
      await r1.ask('x', { type: 'go' }); // stored in 'b'
      await r1.stop();
      // v2 lost state 'b', and knows it only through a repair: the agent is quarantined…
      let known = false;
      const v2 = createMachine({ id: 'm', initial: 'a', states: { a: { on: { go: 'b' } }, b: { on: { go: 'a' } } } });
      const store = sqliteStore(path);
      const guarded = wrapStore(store, {
        loadSnapshot: async (id) => {
          if (!known) throw new StoreCorruptionError(id, 'its snapshot cannot be read (until repaired)');
          return store.loadSnapshot(id);
        },
      });
      const r2 = await createRuntime({ agents: [defineAgent({ type: 'm', logic: v2 })], residentCap: 2, runningCap: 1, store: guarded, clock: manualClock(0) });
      const failed = record(r2, 'agent.failed');
      await r2.send('x', { type: 'go' });
      await until(() => failed.length === 1, 'the quarantine');
      expect((await r2.get('x')).state).toBe('failed');
      expect(await r2.retry('x')).toBe(true); // still damaged: it loads and is quarantined again
      await until(() => failed.length === 2, 'the second quarantine');
      // …repaired: retry loads it and its kept message runs.
      known = true;
      // Its kept message's turn, over once committed (on the store's writer thread: real time, not turns of the loop).
      const ran = new Promise<void>((resolve) => r2.on('turn.finished', (e) => e.id === 'x' && resolve()));
      expect(await r2.retry('x')).toBe(true);
      await ran;
      expect((await r2.get('x')).mailbox).toBe(0);
      expect((await r2.get('x')).state).toBe('idle');
      expect(await r2.retry('x')).toBe(false); // not quarantined any more
      await r2.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a flush that fails', () => {
  it('keeps the agent resident, reports the error, and the agent is evicted later once the store works', async () => {
    const inner = memoryStore();
    let broken = false;
    const fail = () => {
      throw new StoreError('disk I/O error');
    };
    const store = wrapStore(inner, {
      batch: async (ops) => {
        if (broken && ops.some((o) => o.op === 'note' && o.entry.note === 'evicted')) fail();
        return inner.batch(ops);
      },
      note: async (id, e) => {
        if (broken && e.note === 'evicted') fail();
        return inner.note(id, e);
      },
    });
    const handled: Handled = new Map();
    const runtime = await createRuntime({ agents: [counterAgent(handled)], residentCap: 2, runningCap: 1, store, clock: manualClock(0) });
    const errors = record(runtime, 'error');
    await runtime.spawn('counter', { id: 'a' });
    await runtime.ask('a', { type: 'inc', n: 1 });
    broken = true;
    await expect(runtime.close('a')).rejects.toThrow(/disk I\/O error/);
    expect(errors.some((e) => e.where === 'flush')).toBe(true);
    await flush();
    expect((await runtime.get('a')).state).toBe('idle'); // still resident, still answering
    expect((await runtime.ask('a', { type: 'inc', n: 2 })).state).toEqual({ count: 2, seen: [1, 2] });
    broken = false;
    await runtime.close('a');
    expect((await runtime.get('a')).state).toBe('unloaded');
    await runtime.stop();
  });
});
