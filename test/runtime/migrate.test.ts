/**
 * State that survives new code: v1 of a machine stores agents in every state; v2 renames a
 * state, removes one and reshapes the context, and its `migrate` step brings them over, so
 * they continue correctly. A snapshot newer than the code, a missing step or a step that
 * throws quarantines the agent with a MigrationError naming both versions; nothing is lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { createRuntime } from '../../src/createRuntime.js';
import { defineAgent, type AgentDefinition } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock } from '../../src/clock.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import { MigrationError } from '../../src/errors.js';
import { checkMigrations } from '../../src/testing/checkMigrations.js';
import { record, until } from './helpers.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function dbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'residency-migrate-'));
  dirs.push(dir);
  return join(dir, 'r.db');
}

// v1: idle → working → done; the context counts jobs.
const v1 = defineAgent({
  type: 'job',
  logic: setup({ types: { context: {} as { count: number } } }).createMachine({
    id: 'job',
    context: { count: 0 },
    initial: 'idle',
    states: {
      idle: { on: { start: { target: 'working', actions: assign({ count: ({ context }) => context.count + 1 }) } } },
      working: { on: { finish: 'done' } },
      done: { on: { reset: 'idle' } },
    },
  }),
});

// v2: `working` is now `busy`, `done` is gone (finished jobs go back to `idle`), and the
// context keeps a total and a history.
type V2 = { total: number; history: string[] };
const v2logic = setup({ types: { context: {} as V2 } }).createMachine({
  id: 'job',
  context: { total: 0, history: [] },
  initial: 'idle',
  states: {
    idle: { on: { start: { target: 'busy', actions: assign({ total: ({ context }) => context.total + 1, history: ({ context }) => [...context.history, 'start'] }) } } },
    busy: { on: { finish: { target: 'idle', actions: assign({ history: ({ context }) => [...context.history, 'finish'] }) } } },
  },
});
const migrateJob = (s: { value: string; context: { count: number } } & Record<string, unknown>) => ({
  ...s,
  value: s.value === 'working' ? 'busy' : 'idle',
  context: { total: s.context.count, history: [] },
});
const v2 = defineAgent({ type: 'job', version: 2, logic: v2logic, migrate: { 2: migrateJob } });

async function storeV1(path: string): Promise<void> {
  const r = await createRuntime({ agents: [v1], residentCap: 4, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
  for (const id of ['in-idle', 'in-working', 'in-done']) await r.spawn('job', { id });
  await r.ask('in-idle', { type: 'start' });
  await r.ask('in-idle', { type: 'finish' });
  await r.ask('in-idle', { type: 'reset' }); // idle, count 1
  await r.ask('in-working', { type: 'start' }); // working, count 1
  await r.ask('in-done', { type: 'start' });
  await r.ask('in-done', { type: 'finish' }); // done, count 1
  await r.spawn('job', { id: 'never-ran' }); // no snapshot at all
  await r.stop();
}

describe('versions and migrate', () => {
  it('agents stored by v1 in every state load through migrate into v2 and continue correctly', async () => {
    const path = dbPath();
    await storeV1(path);
    const r = await createRuntime({ agents: [v2], residentCap: 4, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
    const failed = record(r, 'agent.failed');
    expect((await r.ask('in-working', { type: 'finish' })).state).toEqual({ value: 'idle', context: { total: 1, history: ['finish'] } });
    expect((await r.ask('in-idle', { type: 'start' })).state).toEqual({ value: 'busy', context: { total: 2, history: ['start'] } });
    expect((await r.ask('in-done', { type: 'start' })).state).toEqual({ value: 'busy', context: { total: 2, history: ['start'] } });
    expect((await r.ask('never-ran', { type: 'start' })).state).toEqual({ value: 'busy', context: { total: 1, history: ['start'] } });
    expect(failed).toEqual([]);
    // Written at the next commit with its new version: a reload needs no migration.
    const store = sqliteStore(path, { readonly: true });
    expect(await store.loadSnapshot('in-idle')).toMatchObject({ '@version': 2, value: 'busy' });
    await store.close();
    await r.close('in-idle');
    expect((await r.ask('in-idle', { type: 'finish' })).state).toEqual({ value: 'idle', context: { total: 2, history: ['start', 'finish'] } });
    await r.stop();
  });

  it('a fromTurn state is migrated as the state itself', async () => {
    const path = dbPath();
    const t1 = defineAgent({ type: 't', logic: fromTurn<{ n: number }>(({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }) });
    const r1 = await createRuntime({ agents: [t1], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
    await r1.spawn('t', { id: 'a' });
    await r1.ask('a', { type: 'x' });
    await r1.ask('a', { type: 'x' });
    await r1.stop();
    const t2 = defineAgent({
      type: 't',
      version: 2,
      logic: fromTurn<{ count: number; unit: string }>(({ state }) => ({ ...state, count: state.count + 1 }), { initialState: { count: 0, unit: 'x' } }),
      migrate: { 2: (s: { n: number }) => ({ count: s.n, unit: 'x' }) },
    });
    const r2 = await createRuntime({ agents: [t2], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
    expect((await r2.ask('a', { type: 'x' })).state).toEqual({ count: 3, unit: 'x' });
    await r2.stop();
  });

  const cases: [string, AgentDefinition, RegExp][] = [
    ['a snapshot newer than the code', defineAgent({ type: 'job', logic: v1.logic }), /stored by version 2 of its logic and cannot be brought to version 1: it was written by a newer version/],
    ['a missing step', defineAgent({ type: 'job', version: 3, logic: v2logic, migrate: { 2: migrateJob } }), /no migrate step produces version 3/],
    [
      'a step that throws',
      defineAgent({ type: 'job', version: 3, logic: v2logic, migrate: { 2: migrateJob, 3: () => { throw new Error('cannot reshape'); } } }),
      /the step to version 3 failed: cannot reshape/,
    ],
  ];
  for (const [what, def, message] of cases) {
    it(`${what} quarantines the agent with a MigrationError naming both versions; its messages are kept`, async () => {
      const path = dbPath();
      await storeV1(path);
      { // bring in-working to version 2
        const r = await createRuntime({ agents: [v2], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
        await r.ask('in-working', { type: 'finish' });
        await r.stop();
      }
      const r = await createRuntime({ agents: [def], residentCap: 2, runningCap: 1, store: sqliteStore(path), clock: manualClock(0) });
      const failed = record(r, 'agent.failed');
      await r.send('in-working', { type: 'start' });
      await until(() => failed.length === 1, 'the quarantine');
      expect(failed[0]!.error).toBeInstanceOf(MigrationError);
      expect(failed[0]!.error.message).toMatch(message);
      expect(failed[0]!.error.message).toMatch(/^Agent "in-working" was stored by version/);
      expect((await r.get('in-working')).state).toBe('failed');
      expect((await r.get('in-working')).mailbox).toBe(1);
      await expect(r.ask('in-working', { type: 'start' })).rejects.toBeInstanceOf(MigrationError);
      await r.stop();
    });
  }

  it('checkMigrations loads stored v1 snapshots through v2 and reports which fail', async () => {
    const paths = [[{ type: 'start' }, { type: 'finish' }, { type: 'reset' }], [{ type: 'start' }]];
    const good = await checkMigrations(v2, { from: { definition: v1, paths } });
    expect(good.ok).toBe(true);
    expect(good.results.map((r) => r.state)).toEqual(['busy', 'idle', 'idle', 'busy']);
    const noStep = defineAgent({ type: 'job', version: 2, logic: v2logic });
    const bad = await checkMigrations(noStep, { from: { definition: v1, paths } });
    expect(bad.ok).toBe(false);
    expect(bad.results.every((r) => !r.ok && /no migrate step produces version 2/.test(r.error!))).toBe(true);
    const renamedOnly = defineAgent({ type: 'job', version: 2, logic: v2logic, migrate: { 2: (s: Record<string, unknown>) => s } });
    const partly = await checkMigrations(renamedOnly, { from: { definition: v1, paths } });
    expect(partly.results.map((r) => r.ok)).toEqual([false, false, true, false]); // 'working' and 'done' do not exist in v2
  });
});
