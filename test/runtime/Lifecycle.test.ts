/**
 * The lifecycle interpreter is the agent statechart, step for step: every model path of
 * machines/agent.ts (each reachable state by a shortest path extended by every event,
 * and the simple paths) runs on both a real XState actor and the interpreter, and the
 * state value, the context and the effects must be equal after every event.
 */
import { describe, expect, it } from 'vitest';
import { createActor, createMachine } from 'xstate';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import { agentMachine, type AgentEvent } from '../../machines/agent.js';
import { Lifecycle } from '../../src/runtime/Lifecycle.js';
import { agentEvents } from '../machines/agentEvents.js';

const EFFECTS = [
  'requestSlot', 'returnSlot', 'startLoad', 'notifyLoaded', 'notifyLoadFailed', 'becomeEvictable', 'requestPermit',
  'cancelPermit', 'returnPermit', 'startTurn', 'abortTurn', 'endTurn', 'refuseEvict', 'notifyFlushing', 'startFlush',
  'notifyFlushed', 'notifyFlushFailed', 'notifyPinned', 'notifyReleased', 'reportError', 'reportIllegal',
];

function recorded(log: string[]) {
  return agentMachine.provide({
    actions: Object.fromEntries(EFFECTS.map((n) => [n, ({ context }: { context: { mailbox: number } }) => void log.push(`${n}@${context.mailbox}`)])),
  });
}

describe('Lifecycle interpreter', () => {
  it('matches XState on every model path of the agent machine', () => {
    const key = (s: { value: unknown; context: { mailbox: number; permitPending: boolean; pendingClose: unknown; pinned: boolean } }) =>
      JSON.stringify([s.value, Math.min(s.context.mailbox, 2), s.context.permitPending, s.context.pendingClose, s.context.pinned]);
    const shortest = getShortestPaths(agentMachine, { events: agentEvents, serializeState: key as never, input: { id: 'a' } });
    const coarse = (s: { value: unknown; context: { mailbox: number; permitPending: boolean; pendingClose: unknown; pinned: boolean } }) =>
      JSON.stringify([s.value, s.context.mailbox > 0, s.context.permitPending, s.context.pendingClose !== null, s.context.pinned]);
    const kinds = agentEvents.filter((e, i) => agentEvents.findIndex((x) => x.type === e.type) === i);
    const simple = getSimplePaths(agentMachine, { events: kinds, serializeState: coarse as never, input: { id: 'a' } });
    const paths: AgentEvent[][] = [
      ...shortest.flatMap((p) => agentEvents.map((e) => [...p.steps.map((s) => s.event as AgentEvent), e])),
      ...simple.map((p) => p.steps.map((s) => s.event as AgentEvent)),
    ].map((p) => p.filter((e) => (e.type as string) !== 'xstate.init'));
    const xLog: string[] = [];
    const lLog: string[] = [];
    const xMachine = recorded(xLog);
    const lMachine = recorded(lLog);
    let steps = 0;
    for (const path of paths) {
      for (const input of [{ id: 'a' }, { id: 'a', pinned: true, mailbox: 2 }]) {
        xLog.length = lLog.length = 0;
        const actor = createActor(xMachine, { input }).start();
        const life = new Lifecycle<object>(lMachine, input).start();
        expect(life.getSnapshot().value).toEqual(actor.getSnapshot().value);
        expect(lLog).toEqual(xLog);
        for (const e of path) {
          actor.send(e);
          life.send(e);
          steps++;
          const x = actor.getSnapshot();
          const l = life.getSnapshot();
          if (JSON.stringify([l.value, l.context, lLog]) !== JSON.stringify([x.value, x.context, xLog])) {
            throw new Error(`differs after [${path.map((p) => p.type).join(', ')}] at ${e.type}: xstate ${JSON.stringify([x.value, x.context, xLog])}, interpreter ${JSON.stringify([l.value, l.context, lLog])}`);
          }
        }
      }
    }
    console.log(`Lifecycle interpreter = XState on ${paths.length * 2} paths, ${steps} steps`);
    expect(steps).toBeGreaterThan(10_000);
  });

  it('refuses a machine that uses what it does not implement', () => {
    const withEntry = createMachine({ initial: 'a', states: { a: { entry: () => {} } } });
    expect(() => new Lifecycle(withEntry, {})).toThrow(/entry\/exit/);
    const withAfter = createMachine({ initial: 'a', states: { a: { after: { 10: 'b' } }, b: {} } });
    expect(() => new Lifecycle(withAfter, {})).toThrow(/entry\/exit|delayed/);
  });
});
