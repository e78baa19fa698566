/**
 * Random walks (fast-check) through worlds too large to explore exhaustively: more
 * agents, every kind of user call and failure, long sequences. The same invariants are
 * checked after every step. The seed is printed; rerun one with RESIDENCY_SEED=<n>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { World, describeEnv, type EnvEvent, type WorldConfig } from './world.js';

const seed = process.env.RESIDENCY_SEED ? Number(process.env.RESIDENCY_SEED) : Date.now() % 2 ** 31;

const configs: { name: string; config: WorldConfig }[] = [
  {
    name: '6 agents, cap 3, 2 running, everything',
    config: {
      agents: 6,
      residentCap: 3,
      runningCap: 2,
      pinned: [5],
      idleTimeout: 5,
      stopLate: true,
      budget: { messages: 30, closes: 4, destroys: 2, pins: 2, loadFailures: 3, flushFailures: 3, interrupts: 4, idleSweeps: 4, stops: 1 },
    },
  },
  {
    name: '5 agents, cap 1, 1 running, churn',
    config: { agents: 5, residentCap: 1, runningCap: 1, budget: { messages: 40, closes: 3, interrupts: 3, flushFailures: 2 } },
  },
];

describe('supervisor and agents, random walks', () => {
  for (const { name, config } of configs) {
    it(`holds the invariants along 1,000 random walks: ${name}`, () => {
      console.log(`random walks (${name}): seed ${seed}`);
      let steps = 0;
      fc.assert(
        fc.property(fc.array(fc.nat(), { minLength: 100, maxLength: 400, size: 'max' }), (choices) => {
          const w = new World(config);
          const taken: EnvEvent[] = [];
          for (const c of choices) {
            const enabled = w.enabled();
            if (enabled.length === 0) break;
            const e = enabled[c % enabled.length]!;
            taken.push(e);
            w.apply(e);
            steps++;
            try {
              w.check();
            } catch (err) {
              throw new Error(`${(err as Error).message}\n  after: ${taken.map(describeEnv).join(' ')}`);
            }
          }
        }),
        { numRuns: 1000, seed },
      );
      console.log(`  ${steps} steps checked`);
      expect(steps).toBeGreaterThan(1000 * 50);
    });
  }
});
