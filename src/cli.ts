/**
 * The `residency` command.
 *
 *   residency demo [--agents N] [--cap N] [--running N] [--messages N] [--seed N]
 *
 * Until the runtime lands, `demo` runs residency's two statecharts on a simulated
 * clock (no store, no user logic) and reports what they did.
 */
import { parseArgs } from 'node:util';
import { simulate, type SimulationStats } from './simulate.js';

const USAGE = `usage: residency <command> [options]

commands:
  demo      run a swarm of agents through residency's statecharts and report
  help      show this message

demo options:
  --agents N     agents that exist (default 2000)
  --cap N        resident cap (default 64)
  --running N    running cap (default 8)
  --messages N   messages to deliver (default 20000)
  --seed N       random seed (default: time-based, printed)
`;

function intOption(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`Expected --${name} to be an integer ≥ ${min}, got \`${value}\``);
  }
  return n;
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function line(s: SimulationStats): string {
  const hitRate = s.accepted ? ((100 * s.hits) / s.accepted).toFixed(1) : '0.0';
  return (
    `accepted ${s.accepted}  handled ${s.handled}  resident ${s.resident}  running ${s.running}  ` +
    `loads ${s.loads}  evictions ${s.evictions}  hit rate ${hitRate}%`
  );
}

function demo(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      agents: { type: 'string' },
      cap: { type: 'string' },
      running: { type: 'string' },
      messages: { type: 'string' },
      seed: { type: 'string' },
    },
    strict: true,
  });
  const agents = intOption('agents', values.agents, 2000, 1);
  const residentCap = intOption('cap', values.cap, 64, 1);
  const runningCap = intOption('running', values.running, 8, 1);
  const messages = intOption('messages', values.messages, 20_000, 1);
  const seed = intOption('seed', values.seed, Date.now() % 2 ** 31, 0);
  if (runningCap > residentCap) {
    throw new UsageError(`Expected --running (${runningCap}) to be ≤ --cap (${residentCap})`);
  }

  console.log(`residency demo: ${agents} agents, resident cap ${residentCap}, running cap ${runningCap}, seed ${seed}`);
  console.log('(the runtime with durable stores is being built; this run drives the two statecharts on a simulated clock)');
  const started = performance.now();
  const s = simulate({
    agents,
    residentCap,
    runningCap,
    messages,
    seed,
    progressEvery: Math.max(1, Math.floor(messages / 10)),
    onProgress: (p) => console.log(`  ${line(p)}`),
  });
  const ms = performance.now() - started;
  console.log(`done: ${line(s)}`);
  console.log(
    `max resident ${s.maxResident} (cap ${residentCap}), max running ${s.maxRunning} (cap ${runningCap}), ` +
      `saturated ${s.saturations} times, ${(s.simulatedMs / 1000).toFixed(1)} s simulated in ${(ms / 1000).toFixed(1)} s`,
  );
  const exact = s.handled === s.accepted;
  console.log(`every accepted message handled exactly once: ${exact ? 'yes' : 'NO'} (${s.handled} of ${s.accepted})`);
  return exact ? 0 : 1;
}

export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'demo':
        return demo(rest);
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return 0;
      default:
        throw new UsageError(command === undefined ? 'no command given' : `unknown command \`${command}\``);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`residency: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}
