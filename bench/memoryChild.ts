/**
 * One memory scenario, in a fresh process run with `--expose-gc` (bench/memory.ts starts
 * it): `node --expose-gc --import tsx bench/memoryChild.ts <scenario> <n>`. Prints one
 * line of JSON: heap figures in bytes (after full GCs), relative to a baseline taken once
 * every module is loaded and every code path has run (a warm-up runtime, then dropped).
 */
import { createActor } from 'xstate';
import { agentMachine } from '../machines/agent.js';
import { agentId, counterMachine, drivenRuntime, emittingCounterAgent, inc, populate, type Driven } from './agents.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const turn = () => new Promise<void>((r) => setImmediate(r));

async function heap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await turn();
    gc!();
  }
  return process.memoryUsage().heapUsed;
}

export type Scenario = 'bare' | 'lifecycle' | 'spawned' | 'resident' | 'residentEmitting' | 'unloaded' | 'unloadedAsk' | 'evicted' | 'evictedAsk';

/** Spawns n agents, has each handle one message (`send`, or `ask`), optionally closes them all. */
async function world(n: number, how: { message: 'none' | 'send' | 'ask'; close: boolean; residentCap?: number; emitting?: boolean }): Promise<Driven> {
  const d = await drivenRuntime({ residentCap: how.residentCap ?? n, runningCap: 8, ...(how.emitting ? { agent: emittingCounterAgent } : {}) });
  await populate(d, n, 0);
  if (how.message === 'send') {
    for (let i = 0; i < n; i += 1_000) {
      const k = Math.min(n, i + 1_000) - i;
      const done = d.until(d.finished + k);
      for (let j = i; j < i + k; j++) void d.runtime.send(agentId(j), inc);
      await done;
    }
  } else {
    if (how.message === 'ask') {
      for (let i = 0; i < n; i += 1_000) {
        const asks: Promise<unknown>[] = [];
        for (let j = i; j < Math.min(n, i + 1_000); j++) asks.push(d.runtime.ask(agentId(j), inc));
        await Promise.all(asks);
      }
    }
  }
  if (how.close) {
    for (let i = 0; i < n; i += 1_000) {
      const closes: Promise<void>[] = [];
      for (let j = i; j < Math.min(n, i + 1_000); j++) closes.push(d.runtime.close(agentId(j)));
      await Promise.all(closes);
    }
  }
  for (let i = 0; i < 20; i++) await turn(); // entries of unloaded agents are dropped a few turns later
  if (d.failed > 0) throw new Error(`${d.failed} turns failed`);
  return d;
}

async function main(scenario: Scenario, n: number): Promise<Record<string, number>> {
  // Warm-up: every path once, so code and feedback allocated on first use are in the baseline.
  {
    const w = await world(200, { message: 'ask', close: true });
    await w.runtime.stop();
    const bare = createActor(counterMachine).start();
    bare.send(inc);
    bare.stop();
    createActor(agentMachine, { input: { id: 'w' } }).start().stop();
  }
  const h0 = await heap();
  if (scenario === 'bare' || scenario === 'lifecycle') {
    const actors: unknown[] = [];
    for (let i = 0; i < n; i++) {
      if (scenario === 'bare') {
        const a = createActor(counterMachine).start();
        a.send(inc);
        actors.push(a);
      } else {
        actors.push(createActor(agentMachine, { input: { id: agentId(i) } }).start());
      }
    }
    const h1 = await heap();
    if (actors.length !== n) throw new Error('unreachable');
    return { total: h1 - h0 };
  }
  const how =
    scenario === 'spawned' ? { message: 'none' as const, close: false }
    : scenario === 'resident' ? { message: 'send' as const, close: false }
    : scenario === 'residentEmitting' ? { message: 'send' as const, close: false, emitting: true }
    : scenario === 'unloaded' ? { message: 'send' as const, close: true }
    : scenario === 'unloadedAsk' ? { message: 'ask' as const, close: true }
    : scenario === 'evicted' ? { message: 'send' as const, close: true, residentCap: 64 }
    : { message: 'ask' as const, close: true, residentCap: 64 };
  let d: Driven | null = await world(n, how);
  const stats = d.runtime.stats();
  const expected = scenario === 'resident' || scenario === 'residentEmitting' ? n : 0;
  if (stats.resident !== expected) throw new Error(`${stats.resident} agents resident, expected ${expected}`);
  const h1 = await heap();
  // Drop the runtime, keep its store: what remains is the store alone.
  const store = d.store;
  const ref = new WeakRef(d.runtime);
  d = null;
  const h2 = await heap();
  if (ref.deref() !== undefined) throw new Error('the runtime was not collected: the store-only figure would be wrong');
  if ((await store.listAgents({ limit: 1 })).agents.length !== 1) throw new Error('unreachable');
  return { total: h1 - h0, store: h2 - h0, runtime: h1 - h2, loads: stats.loads, evictions: stats.evictions };
}

const [scenario, n] = [process.argv[2] as Scenario, Number(process.argv[3] ?? 10_000)];
main(scenario, n).then(
  (r) => {
    console.log(JSON.stringify({ scenario, n, ...r }));
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
