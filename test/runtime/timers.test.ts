/**
 * Durable timers, on the manual clock: a turn's `schedule` and `runtime.schedule` survive
 * eviction and restarts, fire exactly once through the normal path (a turn, loading the
 * agent if needed), in deadline order; same key replaces; cancel works; a destroyed
 * agent's timers never fire; bad input is refused typed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock, type ManualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import { sqliteStoreOnThisThread as sqliteStore } from '../store/sqliteFiles.js';
import type { Store } from '../../src/store/Store.js';
import { AgentNotFoundError } from '../../src/errors.js';
import { flush, record, until } from './helpers.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const dbPath = () => {
  const d = mkdtempSync(join(tmpdir(), 'residency-timers-'));
  dirs.push(d);
  return join(d, 'r.db');
};

/** Remembers every message it handled; `remind-me` schedules a `remind` in `delay` ms under `key`. */
const reminder = defineAgent({
  type: 'r',
  logic: fromTurn<{ seen: string[] }>(
    ({ state, message, schedule, cancel }) => {
      if (message.type === 'remind-me') schedule({ type: 'remind', note: message.note ?? null }, { delay: Number(message.delay), key: String(message.key ?? 'k') });
      if (message.type === 'forget') cancel(String(message.key ?? 'k'));
      return { seen: [...state.seen, message.type === 'remind' ? `remind:${String(message.note)}` : message.type] };
    },
    { initialState: { seen: [] } },
  ),
});

async function settle(clock: ManualClock, ms: number, steps = 10): Promise<void> {
  await flush(5);
  for (let i = 0; i < steps; i++) {
    clock.advance(ms / steps);
    await flush(5);
  }
}

async function runtimeOn(store: Store, clock: ManualClock, residentCap = 2): Promise<Runtime> {
  return createRuntime({ agents: [reminder], residentCap, runningCap: 1, store, clock });
}

describe('durable timers', () => {
  it('a turn schedules a message; it fires as a turn after the delay, whether the agent stayed, was evicted, or the runtime restarted', async () => {
    for (const between of ['stay', 'evict', 'restart'] as const) {
      const path = dbPath();
      const clock = manualClock(1_000);
      let rt = await runtimeOn(sqliteStore(path), clock);
      await rt.spawn('r', { id: 'a' });
      await rt.ask('a', { type: 'remind-me', delay: 1_000, note: between });
      expect((await rt.get('a')).timers).toBe(1);
      if (between === 'evict') await rt.close('a');
      if (between === 'restart') {
        await rt.stop();
        rt = await runtimeOn(sqliteStore(path), clock);
      }
      await settle(clock, 500);
      expect((await rt.ask('a', { type: 'look' })).state).toEqual({ seen: ['remind-me', 'look'] }); // not yet
      await settle(clock, 600);
      expect((await rt.ask('a', { type: 'look' })).state).toEqual({ seen: ['remind-me', 'look', `remind:${between}`, 'look'] });
      expect((await rt.get('a')).timers).toBe(0);
      await rt.stop();
    }
  });

  it('a deadline that passed while the process was down fires at the next start, in deadline order', async () => {
    const path = dbPath();
    const clock = manualClock(0);
    const rt = await runtimeOn(sqliteStore(path), clock);
    await rt.spawn('r', { id: 'a' });
    await rt.schedule('a', { type: 'remind', note: 'second' }, { at: 2_000, key: 'x' });
    await rt.schedule('a', { type: 'remind', note: 'first' }, { at: 1_000, key: 'y' });
    await rt.stop();
    clock.advance(5_000); // down meanwhile
    const again = await runtimeOn(sqliteStore(path), clock);
    await settle(clock, 10, 2);
    expect((await again.ask('a', { type: 'look' })).state).toEqual({ seen: ['remind:first', 'remind:second', 'look'] });
    await again.stop();
  });

  it('the same key replaces; cancel removes; a failed turn schedules nothing', async () => {
    const clock = manualClock(0);
    const rt = await runtimeOn(memoryStore(), clock);
    await rt.spawn('r', { id: 'a' });
    await rt.ask('a', { type: 'remind-me', delay: 100, key: 'k', note: 'old' });
    await rt.ask('a', { type: 'remind-me', delay: 300, key: 'k', note: 'new' });
    await rt.ask('a', { type: 'remind-me', delay: 200, key: 'gone', note: 'never' });
    await rt.ask('a', { type: 'forget', key: 'gone' });
    expect((await rt.get('a')).timers).toBe(1);
    expect(await rt.cancelSchedule('a', 'nothing-there')).toBe(false);
    await settle(clock, 1_000);
    const seen = ((await rt.ask('a', { type: 'look' })).state as { seen: string[] }).seen;
    expect(seen.filter((s) => s.startsWith('remind:'))).toEqual(['remind:new']);
    await rt.stop();
  });

  it("runtime.schedule and cancelSchedule; a destroyed agent's timers never fire; bad input is refused typed", async () => {
    const clock = manualClock(10_000);
    const rt = await runtimeOn(memoryStore(), clock);
    const finished = record(rt, 'turn.finished');
    await rt.spawn('r', { id: 'a' });
    await rt.spawn('r', { id: 'b' });
    expect(await rt.schedule('a', { type: 'remind', note: 'x' }, { delay: 50, key: 'r1' })).toEqual({ key: 'r1', at: 10_050 });
    const { key } = await rt.schedule('b', { type: 'remind', note: 'y' }, { delay: 50 });
    expect(key).toMatch(/^t\./);
    expect(await rt.cancelSchedule('a', 'r1')).toBe(true);
    await rt.schedule('b', { type: 'remind', note: 'z' }, { delay: 60, key: 'z' });
    await rt.destroy('b');
    await settle(clock, 200);
    expect(finished).toEqual([]);
    await expect(rt.schedule('nobody', { type: 'x' }, { delay: 1 })).rejects.toBeInstanceOf(AgentNotFoundError);
    await expect(rt.schedule('a', { type: 'x' }, { at: 5 })).rejects.toThrow(/not to be in the past/);
    await expect(rt.schedule('a', { type: 'x' }, { delay: Number.NaN })).rejects.toThrow(TypeError);
    await expect(rt.schedule('a', { type: 'xstate.stop' }, { delay: 1 })).rejects.toThrow(/reserved/);
    await expect(rt.schedule('a', { type: 'x' }, { delay: 1, at: 20_000 })).rejects.toThrow(TypeError);
    await expect(rt.cancelSchedule('a', '')).rejects.toThrow(TypeError);
    expect((await rt.get('a')).timers).toBe(0);
    await rt.stop();
  });

  it('10,000 agents each with a timer and residentCap 10: every timer fires exactly once, through one host timer', async () => {
    const clock = manualClock(0);
    const store = memoryStore();
    const rt = await runtimeOn(store, clock, 10);
    const n = 10_000;
    for (let i = 0; i < n; i++) {
      await rt.spawn('r', { id: `a${i}` });
      await rt.schedule(`a${i}`, { type: 'remind', note: i }, { delay: 1_000 + (i % 97) });
    }
    expect(clock.pending()).toBeLessThanOrEqual(2); // one host timer (and at most one of the runtime's own)
    const finished = record(rt, 'turn.finished');
    await settle(clock, 2_000, 20);
    await until(() => finished.length >= n, 'every timer to be handled', 400_000); // event-loop turns, not time
    clock.advance(10_000);
    await flush(50); // nothing fires twice, even later
    expect(finished.length).toBe(n);
    expect(new Set(finished.map((f) => f.id)).size).toBe(n);
    await rt.stop();
  });
});
