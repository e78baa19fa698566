/**
 * Model-based tests of the supervisor together with the agent lifecycle: every
 * interleaving of a few small worlds (see worlds.ts), with the invariants of
 * DESIGN.md checked after every step (world.ts says which and how). The test fails
 * unless the worlds together take every transition of the supervisor statechart, and
 * prints the state space explored and the coverage reached.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { explore } from '../../src/testing/explore.js';
import { supervisorMachine } from '../../machines/supervisor.js';
import { agentMachine } from '../../machines/agent.js';
import { transitionId, transitionsOf } from '../../machines/describe.js';
import { newObserved, worldModel } from './world.js';
import { worlds } from './worlds.js';
import type { AnyTransitionDefinition } from 'xstate';

const observed = newObserved();
let states = 0;
let edges = 0;

const ids = (set: Set<unknown>) => new Set([...set].map((t) => transitionId(t as AnyTransitionDefinition)));

describe('supervisor and agents, every interleaving of small worlds', () => {
  for (const { name, config } of worlds) {
    it(`holds the invariants in every reachable state: ${name}`, () => {
      const report = explore(worldModel(config, observed), { maxDepth: 200, maxStates: 200_000 });
      console.log(`${name}: ${report.states} states, ${report.edges} steps, depth ${report.depth}`);
      states += report.states;
      edges += report.edges;
      expect(report.truncated).toBe(false);
      expect(report.frontier).toBe(0);
      expect(report.states).toBeGreaterThan(500);
    });
  }

  it('takes every transition of the supervisor, and every effect', () => {
    const all = transitionsOf(supervisorMachine);
    const taken = ids(observed.supervisorTransitions);
    const missed = all.filter((t) => !taken.has(t.id)).map((t) => t.id);
    console.log(
      `supervisor machine: coverage ${all.length - missed.length}/${all.length} transitions; effects ${JSON.stringify(Object.fromEntries(observed.effects))}`,
    );
    expect(missed).toEqual([]);
    for (const effect of ['grantSlot', 'evict', 'grantPermit', 'reportSaturated']) {
      expect(observed.effects.get(effect) ?? 0, effect).toBeGreaterThan(0);
    }
  });

  it('the worlds also reach every agent transition that a wired agent can take', () => {
    const all = transitionsOf(agentMachine);
    const taken = ids(observed.agentTransitions);
    const missed = all.filter((t) => !taken.has(t.id)).map((t) => t.id);
    console.log(`agent machine inside the worlds: ${all.length - missed.length}/${all.length} transitions; not reached: ${missed.join(', ') || 'none'}`);
    // Defensive transitions that a correctly wired agent never takes (the agent-only
    // model test takes each of them):
    // - the catch-all and `destroyed` + message: the world fails on `reportIllegal`;
    // - `destroyed` + destroy: the runtime refuses a second destroy before it gets here;
    // - idle + a permit it did not ask for: a permit is only pending with mail, and a
    //   stale grant after a cancelled request lands in flushing, or finds the request
    //   renewed after a failed flush.
    expect(missed.sort()).toEqual(
      ['agent#*#0', 'agent.destroyed#message.accepted#0', 'agent.destroyed#destroy#0', 'agent.idle#permit.granted#1'].sort(),
    );
  });

  afterAll(() => {
    console.log(`explored ${states} states and ${edges} steps in ${worlds.length} worlds`);
  });
});
