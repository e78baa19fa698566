/**
 * Memory: heap per resident idle agent, against a bare XState actor of the same machine;
 * and the heap the runtime keeps for agents that are unloaded. Each scenario runs in a
 * fresh `node --expose-gc` process (bench/memoryChild.ts) at two sizes; the per-agent
 * figure is the slope between them, so fixed costs (the runtime itself, module code)
 * drop out. Targets: ≤ 1 KB per resident agent over a bare actor; ~0 per unloaded agent
 * beyond the store.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fmt } from './harness.js';
import type { Scenario } from './memoryChild.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const SMALL = 5_000;
const LARGE = 20_000;

type Figures = { total: number; store?: number; runtime?: number; loads?: number; evictions?: number };

async function scenario(name: Scenario, n: number): Promise<Figures> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/memoryChild.ts', name, String(n)], {
    cwd: root,
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Figures;
}

/** Bytes per agent of each figure: the slope between the two sizes. */
async function perAgent(name: Scenario): Promise<Required<Pick<Figures, 'total'>> & { store: number; runtime: number; fixedRuntime: number }> {
  const small = await scenario(name, SMALL);
  const large = await scenario(name, LARGE);
  const slope = (k: keyof Figures) => ((large[k] ?? 0) - (small[k] ?? 0)) / (LARGE - SMALL);
  const runtime = slope('runtime');
  return { total: slope('total'), store: slope('store'), runtime, fixedRuntime: (small.runtime ?? 0) - runtime * SMALL };
}

export async function benchMemory(): Promise<string> {
  const bare = await perAgent('bare');
  const lifecycle = await perAgent('lifecycle');
  const spawned = await perAgent('spawned');
  const resident = await perAgent('resident');
  const residentEmitting = await perAgent('residentEmitting');
  const evicted = await perAgent('evicted');
  const evictedAsk = await perAgent('evictedAsk');
  const b = (x: number) => `${fmt(x)} B`;
  const overhead = resident.runtime - bare.total;
  const overheadEmitting = residentEmitting.runtime - bare.total;
  const verdict = (x: number) => (x <= 1024 ? '**met**' : `**missed** by ${b(x - 1024)} (${fmt(x / 1024, 1)}× the 1 KB allowed)`);
  return [
    '## Memory per agent',
    '',
    `Heap (\`process.memoryUsage().heapUsed\` after full GCs) per agent, as the slope between`,
    `${fmt(SMALL)} and ${fmt(LARGE)} agents, each scenario in a fresh \`node --expose-gc\` process`,
    '(bench/memoryChild.ts). The runtime\'s share is measured by dropping the runtime and keeping',
    'its store: what the heap loses is the runtime\'s; what stays is the memoryStore\'s. Machine',
    'agent: the counter machine of bench/agents.ts. Targets: a resident idle agent costs ≤ 1 KB',
    'more than a bare XState actor; an unloaded agent costs the runtime ~0 beyond the store.',
    '',
    '| agents | total | memoryStore | runtime |',
    '| --- | ---: | ---: | ---: |',
    `| bare XState actor (\`createActor(machine).start()\`, one event sent) | ${b(bare.total)} | – | – |`,
    `| for attribution: a bare lifecycle actor (\`createActor(agentMachine).start()\`) | ${b(lifecycle.total)} | – | – |`,
    `| spawned, never sent a message | ${b(spawned.total)} | ${b(spawned.store)} | ${b(spawned.runtime)} |`,
    `| resident and idle (spawned, one message handled by \`send\`) | ${b(resident.total)} | ${b(resident.store)} | ${b(resident.runtime)} |`,
    `| resident and idle, a machine that may emit (the counter with an \`emit\` action besides) | ${b(residentEmitting.total)} | ${b(residentEmitting.store)} | ${b(residentEmitting.runtime)} |`,
    `| unloaded (one message by \`send\`, then evicted by the cap or closed) | ${b(evicted.total)} | ${b(evicted.store)} | ${b(evicted.runtime)} |`,
    `| unloaded (one message by \`ask\`, then evicted or closed) | ${b(evictedAsk.total)} | ${b(evictedAsk.store)} | ${b(evictedAsk.runtime)} |`,
    '',
    `- resident idle agent, runtime's share minus a bare actor: **${b(overhead)}** — ${verdict(overhead)}; of a machine`,
    `  that may emit: **${b(overheadEmitting)}** — ${verdict(overheadEmitting)}. Besides its logic actor (the bare actor's`,
    `  cost), a resident agent keeps its lifecycle (a small interpreter's state: value and context; a full XState actor`,
    `  for it would cost ${b(lifecycle.total)}, the row above), its entry (with its record copy; the inbox \`Map\` and the`,
    '  snapshot it last stored are dropped when it is idle), its promise chain and its place in the supervisor\'s books.',
    '  Its actor costs a little less than a bare one: XState\'s options object, which holds the input and the stored',
    '  snapshot, is swapped for a shared one once the actor runs, and the error observer is one object for every',
    '  actor. An agent whose machine may emit (an `emit` or an `enqueueActions` action anywhere) also keeps an',
    '  emit listener (a bound function and a `Set`); one that cannot emit has none.',
    `  With the store, a resident agent costs ${b(resident.total)}, ${fmt(resident.total / bare.total, 1)}× a bare actor.`,
    `- unloaded agent after \`send\`: the runtime keeps **${b(evicted.runtime)}** per agent (the store keeps ${b(evicted.store)}:`,
    '  its record, the message id, the snapshot and the whole rollout, as the store contract asks).',
    `- unloaded agent after \`ask\`: the runtime keeps **${b(evictedAsk.runtime)}** per agent.`,
    `- the runtime's fixed cost (supervisor, emitter, maps), not per agent: ${fmt(resident.fixedRuntime / 1024)} KB resident, ${fmt(evicted.fixedRuntime / 1024)} KB unloaded.`,
  ].join('\n');
}
