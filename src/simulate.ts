/**
 * A simulation of residency's two statecharts on a simulated clock: many agents, a
 * small resident cap, turns of random length, messages between agents. No store and no
 * user logic: it shows the lifecycle and the supervisor doing their job (reload on
 * delivery, LRU eviction, both caps, saturation) and checks the caps at every step.
 *
 * The runtime (createRuntime) wires the same machines the same way, with real I/O.
 */
import { createActor, type Actor } from 'xstate';
import { agentMachine, lifecycleOf, type AgentContext } from '../machines/agent.js';
import { supervisorMachine, type SupervisorEffects } from '../machines/supervisor.js';
import { agentEventFor, supervisorBoundActions } from '../machines/protocol.js';

export interface SimulationOptions {
  agents: number;
  residentCap: number;
  runningCap: number;
  messages: number;
  seed: number;
  /** Called every `progressEvery` handled messages. */
  onProgress?: (s: SimulationStats) => void;
  progressEvery?: number;
}

export interface SimulationStats {
  accepted: number;
  handled: number;
  loads: number;
  evictions: number;
  hits: number;
  misses: number;
  saturations: number;
  maxResident: number;
  maxRunning: number;
  /** Agents in memory (loading, idle, running, flushing) at the end. */
  resident: number;
  running: number;
  simulatedMs: number;
}

/** A small, fast, seeded PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function simulate(o: SimulationOptions): SimulationStats {
  const rand = prng(o.seed);
  const stats: SimulationStats = {
    accepted: 0, handled: 0, loads: 0, evictions: 0, hits: 0, misses: 0, saturations: 0,
    maxResident: 0, maxRunning: 0, resident: 0, running: 0, simulatedMs: 0,
  };
  // A timer wheel on a simulated clock: [time, seq, fn].
  const timers: [number, number, () => void][] = [];
  let now = 0;
  let seq = 0;
  const at = (delay: number, fn: () => void) => {
    timers.push([now + delay, seq++, fn]);
  };

  const agents = new Map<string, Actor<typeof agentMachine>>();
  const agent = (id: string) => agents.get(id)!;
  const queue: (() => void)[] = [];
  const later = (fn: () => void) => queue.push(fn); // deliveries happen after the current step

  const supervisor = createActor(
    supervisorMachine.provide({
      actions: {
        grantSlot: (_, p: SupervisorEffects['grantSlot']) => later(() => agent(p.id).send(agentEventFor('grantSlot', p))),
        grantPermit: (_, p: SupervisorEffects['grantPermit']) => later(() => agent(p.id).send(agentEventFor('grantPermit', p))),
        evict: (_, p: SupervisorEffects['evict']) => later(() => agent(p.id).send(agentEventFor('evict', p))),
        reportSaturated: () => void stats.saturations++,
      },
    }),
    { input: { residentCap: o.residentCap, runningCap: o.runningCap } },
  ).start();
  const tell = (e: Parameters<typeof supervisor.send>[0]) => later(() => supervisor.send(e));
  const id = (c: { context: AgentContext }) => c.context.id;

  const logic = agentMachine.provide({
    actions: {
      ...supervisorBoundActions(tell, () => now),
      startLoad: (a) => {
        stats.loads++;
        at(1 + rand() * 4, () => agent(id(a)).send({ type: 'load.done' }));
      },
      notifyFlushing: (a) => {
        stats.evictions++;
        tell({ type: 'agent.flushing', id: id(a) });
      },
      startFlush: (a) => at(1 + rand() * 2, () => agent(id(a)).send({ type: 'flush.done' })),
      startTurn: (a) => {
        // A turn: a "model call" of 20–200 ms, then maybe a message to another agent.
        at(20 + rand() * 180, () => {
          stats.handled++;
          if (stats.accepted < o.messages && rand() < 0.5) send(`agent-${Math.floor(rand() * o.agents)}`);
          agent(id(a)).send({ type: 'turn.done', outcome: 'done' });
          if (o.onProgress && stats.handled % (o.progressEvery ?? 500) === 0) o.onProgress(observe());
        });
      },
      reportIllegal: (a) => {
        throw new Error(`agent ${id(a)} got an event its state cannot take`);
      },
    },
  });

  // Resident and running counts in truth (from the agents' states), kept as they change.
  const inMemory = (st: string) => st === 'loading' || st === 'idle' || st === 'running' || st === 'flushing';
  const last = new Map<string, string>();
  const track = (agentId: string, st: string) => {
    const prev = last.get(agentId) ?? 'unloaded';
    if (prev === st) return;
    last.set(agentId, st);
    stats.resident += Number(inMemory(st)) - Number(inMemory(prev));
    stats.running += Number(st === 'running') - Number(prev === 'running');
    stats.maxResident = Math.max(stats.maxResident, stats.resident);
    stats.maxRunning = Math.max(stats.maxRunning, stats.running);
    if (stats.resident > o.residentCap || stats.running > o.runningCap) {
      throw new Error(`cap broken: ${stats.resident} resident (cap ${o.residentCap}), ${stats.running} running (cap ${o.runningCap})`);
    }
  };
  const observe = (): SimulationStats => {
    stats.simulatedMs = Math.round(now);
    return { ...stats };
  };

  function send(to: string): void {
    let a = agents.get(to);
    if (!a) {
      a = createActor(logic, { input: { id: to } });
      a.subscribe((snap) => track(to, lifecycleOf(snap.value)));
      a.start();
      agents.set(to, a);
    }
    stats.accepted++;
    const st = lifecycleOf(a.getSnapshot().value);
    if (st === 'idle' || st === 'running') stats.hits++;
    else stats.misses++;
    a.send({ type: 'message.accepted' });
  }

  const drain = () => {
    while (queue.length) queue.shift()!();
  };

  // Users send bursts of messages to random agents, a few every simulated 10 ms.
  let userSends = Math.ceil(o.messages / 2);
  const user = () => {
    for (let i = 0; i < 3 && userSends > 0; i++, userSends--) send(`agent-${Math.floor(rand() * o.agents)}`);
    if (userSends > 0) at(10, user);
  };
  at(0, user);

  while (timers.length) {
    timers.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    const [t, , fn] = timers.shift()!;
    now = t;
    fn();
    drain();
  }
  return observe();
}
