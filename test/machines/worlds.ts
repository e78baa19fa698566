/**
 * The worlds the model-based tests explore exhaustively. Each is small enough to walk
 * every interleaving; together they take every transition of the supervisor and every
 * transition of the agent that a wired agent can take. Races around eviction need
 * eviction, so most race worlds have one slot and two agents.
 */
import type { WorldConfig } from './world.js';

const three = { agents: 3, residentCap: 2, runningCap: 1 } as const;
const two = { agents: 2, residentCap: 1, runningCap: 1 } as const;

export const worlds: { name: string; config: WorldConfig }[] = [
  { name: '3 agents, cap 2, 1 running, 4 messages', config: { ...three, budget: { messages: 4 } } },
  { name: '4 agents, cap 2, 1 running, 3 messages', config: { agents: 4, residentCap: 2, runningCap: 1, budget: { messages: 3 } } },
  { name: '3 agents, cap 2, 2 running, 3 messages', config: { agents: 3, residentCap: 2, runningCap: 2, budget: { messages: 3 } } },
  { name: 'close and interrupt racing eviction', config: { ...two, budget: { messages: 3, closes: 1, interrupts: 1 } } },
  { name: 'close and a failed flush racing eviction', config: { ...two, budget: { messages: 3, closes: 1, flushFailures: 1 } } },
  { name: 'destroy racing eviction', config: { ...two, budget: { messages: 3, destroys: 1 } } },
  { name: 'load and flush failures', config: { ...two, budget: { messages: 3, loadFailures: 1, flushFailures: 1 } } },
  { name: 'pinned from the start, and pinned while evicted', config: { agents: 3, residentCap: 1, runningCap: 1, pinned: [0], budget: { messages: 3, pins: 1 } } },
  { name: 'idle timeout', config: { ...three, idleTimeout: 10, budget: { messages: 3, idleSweeps: 1 } } },
  { name: 'stop (twice)', config: { ...three, budget: { messages: 2, stops: 2 } } },
];
