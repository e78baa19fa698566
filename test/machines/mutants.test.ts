/**
 * The model-based tests must fail against deliberately broken copies of the machines
 * and the policy. A suite that cannot catch a broken guard is not done.
 *
 * Each mutant runs through the same worlds as supervisor.model.test.ts, and through
 * the agent-only path checks where it is an agent mutant; the test passes only if an
 * invariant breaks, and prints the shortest counterexample's first line.
 */
import { describe, expect, it } from 'vitest';
import { agentMachine } from '../../machines/agent.js';
import { LinkedSet } from '../../machines/LinkedSet.js';
import { lruOver, type PolicyFactory } from '../../machines/policy.js';
import { explore, ModelViolation } from '../../src/testing/explore.js';
import { worldModel, type WorldConfig } from './world.js';
import { worlds } from './worlds.js';

/** An LRU that evicts the most recent agent instead of the least recent. */
const mostRecentFirst: PolicyFactory = () => {
  const list = new LinkedSet<number>();
  return { ...lruOver(list), victim: () => list.peekLast() };
};

/** A policy that never offers a victim: waiting requests starve. */
const neverEvicts: PolicyFactory = () => {
  const list = new LinkedSet<number>();
  return { ...lruOver(list), victim: () => undefined };
};

interface Mutant {
  name: string;
  change: Partial<WorldConfig>;
}

const mutants: Mutant[] = [
  { name: 'the evict guard removed', change: { agentLogic: agentMachine.provide({ guards: { canEvict: () => true } }) } },
  { name: 'the evict guard ignores pinning', change: { agentLogic: agentMachine.provide({ guards: { canEvict: ({ context }) => context.mailbox === 0 && !context.permitPending } }) } },
  { name: 'the LRU returning the most recent', change: { policy: mostRecentFirst } },
  { name: 'a policy that never offers a victim', change: { policy: neverEvicts } },
  { name: 'the supervisor granting one slot too many', change: { supervisorCaps: { residentCap: 3, runningCap: 1 } } },
  { name: 'the supervisor granting one permit too many', change: { supervisorCaps: { residentCap: 2, runningCap: 2 } } },
  { name: 'an agent that takes any permit, asked for or not', change: { agentLogic: agentMachine.provide({ guards: { permitPending: () => true } }) } },
  { name: 'an agent that forgets a close during a turn', change: { agentLogic: agentMachine.provide({ guards: { closePending: () => false } }) } },
];

function firstViolation(change: Partial<WorldConfig>): ModelViolation | null {
  for (const { config } of worlds) {
    const mutated: WorldConfig = { ...config, ...change };
    if (change.supervisorCaps) {
      // Keep the mutant's off-by-one relative to this world's caps.
      mutated.supervisorCaps = {
        residentCap: config.residentCap + (change.supervisorCaps.residentCap - 2),
        runningCap: config.runningCap + (change.supervisorCaps.runningCap - 1),
      };
    }
    try {
      explore(worldModel(mutated), { maxDepth: 200, maxStates: 200_000 });
    } catch (err) {
      if (err instanceof ModelViolation) return err;
      throw err;
    }
  }
  return null;
}

describe('mutation check: the model-based tests catch broken copies', () => {
  for (const m of mutants) {
    it(`catches ${m.name}`, () => {
      const v = firstViolation(m.change);
      expect(v, `no invariant broke for the mutant "${m.name}"`).toBeInstanceOf(ModelViolation);
      console.log(`${m.name}: caught after ${v!.path.length} steps: ${v!.message.split('\n')[0]}`);
    });
  }

  // The control (the same search over the unmutated machines finds nothing) is
  // supervisor.model.test.ts itself.
});
