/**
 * A statechart's own delays are durable: a machine agent in a state with
 * `after: { 1000: 'fired' }` reaches `fired` whether it stayed resident, was evicted, or
 * the runtime restarted on the same SQLite file in between; leaving the state cancels the
 * delay; a waiting agent is evictable at once; the delayed transition is a turn, committed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { manualClock, type ManualClock } from '../../src/clock.js';
import { sqliteStoreOnThisThread as sqliteStore } from '../store/sqliteFiles.js';
import { flush, record } from './helpers.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const dbPath = () => {
  const d = mkdtempSync(join(tmpdir(), 'residency-delays-'));
  dirs.push(d);
  return join(d, 'r.db');
};

const fuse = defineAgent({
  type: 'fuse',
  logic: createMachine({
    id: 'm',
    initial: 'idle',
    states: {
      idle: { on: { arm: 'armed' } },
      armed: { after: { 1000: 'fired' }, on: { disarm: 'idle' } },
      fired: {},
    },
  }),
});

async function on(path: string, clock: ManualClock): Promise<Runtime> {
  return createRuntime({ agents: [fuse], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock });
}

async function pass(clock: ManualClock, ms: number): Promise<void> {
  for (let i = 0; i < 10; i++) {
    clock.advance(ms / 10);
    await flush(5);
  }
}

describe("a machine's own delays", () => {
  for (const between of ['stays', 'evicted', 'restarted'] as const) {
    it(`after: { 1000: 'fired' } fires when the agent ${between}`, async () => {
      const path = dbPath();
      const clock = manualClock(0);
      let rt = await on(path, clock);
      await rt.spawn('fuse', { id: 'f' });
      expect((await rt.ask('f', { type: 'arm' })).state).toMatchObject({ value: 'armed' });
      expect((await rt.get('f')).timers).toBe(1);
      if (between === 'evicted') {
        await rt.close('f');
        expect((await rt.get('f')).state).toBe('unloaded');
      }
      if (between === 'restarted') {
        await rt.stop();
        rt = await on(path, clock);
      }
      const finished = record(rt, 'turn.finished');
      await pass(clock, 2_000);
      expect(finished.map((e) => e.outcome)).toEqual(['done']); // the delayed transition is a turn
      await rt.close('f'); // committed: a reload finds it fired
      expect((await rt.ask('f', { type: 'look' })).state).toMatchObject({ value: 'fired' });
      expect((await rt.get('f')).timers).toBe(0);
      await rt.stop();
    });
  }

  it('leaving the state cancels the delay', async () => {
    const path = dbPath();
    const clock = manualClock(0);
    const rt = await on(path, clock);
    await rt.spawn('fuse', { id: 'f' });
    await rt.ask('f', { type: 'arm' });
    await rt.ask('f', { type: 'disarm' });
    expect((await rt.get('f')).timers).toBe(0);
    const finished = record(rt, 'turn.finished');
    await pass(clock, 2_000);
    expect(finished).toEqual([]);
    expect((await rt.ask('f', { type: 'look' })).state).toMatchObject({ value: 'idle' });
    await rt.stop();
  });
});
