/** What the cluster test (cluster.test.ts) and its processes (member.ts) share: the agents and their logic. */
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';

export const AGENTS = 40;
export const SHARDS = 32;
export const agentIds = (): string[] => Array.from({ length: AGENTS }, (_, i) => `m${String(i).padStart(2, '0')}`);

export interface CountState {
  count: number;
  mids: string[];
}

export const counter = defineAgent({
  type: 'counter',
  logic: fromTurn<CountState>(
    async ({ state, message, send }) => {
      const delay = typeof message.delay === 'number' ? message.delay : 0;
      if (delay > 0) await new Promise<void>((r) => setTimeout(r, delay));
      if (typeof message.forwardTo === 'string') send(message.forwardTo, { type: 'inc', mid: `f:${String(message.mid)}` });
      return { count: state.count + 1, mids: [...state.mids, String(message.mid)] };
    },
    { initialState: { count: 0, mids: [] } },
  ),
});

