/**
 * Long-lived agents: the history each agent keeps is bounded by the retention policy (the
 * runtime's `history`, or its definition's), pruned a little with every commit, while the
 * counters that get/list report stay exact.
 */
import { describe, expect, it } from 'vitest';
import { createRuntime, DEFAULT_HISTORY } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';

const counter = (history?: { keepTurns: number } | 'all') =>
  defineAgent({ type: 'n', logic: fromTurn<{ n: number }>(({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }), ...(history ? { history } : {}) });

async function run(options: { runtime?: { keepTurns: number } | 'all'; type?: { keepTurns: number } | 'all' }, messages: number) {
  const store = memoryStore();
  const runtime = await createRuntime({ agents: [counter(options.type)], residentCap: 2, runningCap: 1, store, clock: manualClock(0), ...(options.runtime ? { history: options.runtime } : {}) });
  await runtime.spawn('n', { id: 'a' });
  for (let i = 0; i < messages; i++) void runtime.send('a', { type: 'x' });
  const last = await runtime.ask('a', { type: 'x' });
  const info = await runtime.get('a');
  const rollout = await runtime.history('a');
  await runtime.stop();
  return { last, info, turnsInRollout: rollout.filter((e) => e.kind === 'turn.finished').length };
}

describe('history retention', () => {
  it('the default keeps the last 1,000 turns', () => {
    expect(DEFAULT_HISTORY).toEqual({ keepTurns: 1000 });
  });

  it("keeps an agent's history bounded while its counters stay exact", async () => {
    const r = await run({ runtime: { keepTurns: 50 } }, 600);
    expect(r.last.state).toEqual({ n: 601 });
    expect(r.info.turns).toBe(601); // exact, whatever was pruned
    expect(r.info.mailbox).toBe(0);
    expect(r.turnsInRollout).toBeGreaterThanOrEqual(50);
    expect(r.turnsInRollout).toBeLessThan(200); // converging to the window, a batch per commit
  });

  it("a type's own policy overrides the runtime's; 'all' keeps everything", async () => {
    const all = await run({ runtime: { keepTurns: 10 }, type: 'all' }, 300);
    expect(all.turnsInRollout).toBe(301);
    const few = await run({ runtime: 'all', type: { keepTurns: 10 } }, 300);
    expect(few.turnsInRollout).toBeLessThan(100);
    expect(few.info.turns).toBe(301);
  });

  it('refuses a bad policy at construction', async () => {
    await expect(createRuntime({ agents: [counter()], residentCap: 1, runningCap: 1, store: memoryStore(), history: { keepTurns: -1 } })).rejects.toThrow(TypeError);
    expect(() => counter({ keepTurns: 1.5 })).toThrow(/Expected `history` of agent type "n" to be 'all' or \{ keepTurns: n \}/);
  });
});
