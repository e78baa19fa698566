/**
 * The `residency` command.
 *
 *   residency demo  [--agents N] [--cap N] [--running N] [--duration S] [--db PATH] [--keep] [--seed N]
 *   residency ls    [--db PATH] [--type T] [--resident] [--json]
 *   residency show  <id> [--db PATH] [--last N] [--json]
 *   residency stats [--db PATH] [--json]
 *   residency inspect [--db PATH] [--port N] [--host H]
 *
 * `main(argv)` resolves to the exit code: 0 done, 1 failed (or the demo's check said
 * no), 2 bad arguments (with the usage).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { demo } from './cli/demo.js';
import { processIo, UsageError, type Io } from './cli/format.js';
import { CliError, ls, show, stats } from './cli/query.js';
import { ResidencyError } from './errors.js';
import { existsSync } from 'node:fs';
import { serveStoredInspector } from './inspector/serveInspector.js';
import { sqliteStore } from './store/sqliteStore.js';

/** Where the demo writes its database, and where ls/show/stats look by default. */
export const DEMO_DB = './.residency/demo.db';

export const USAGE = `usage: residency <command> [options]

commands:
  demo          run a swarm of agents on the runtime and the embedded store, then report
  ls            list the agents of a database
  show <id>     one agent: identity, state, mailbox, the rollout's last entries
  stats         counts of a database: agents, messages, turns, loads
  inspect       serve a read-only inspector page over a database (Ctrl-C to stop)
  help          show this message

demo options:
  --agents N     agents, a few of them pinned roots that spawn the rest (default 2000)
  --cap N        resident cap (default 64)
  --running N    running cap (default 8)
  --duration S   seconds of sending messages (default 20)
  --db PATH      database file, recreated at each run (default ${DEMO_DB})
  --keep         keep the database of an earlier run instead of recreating it
  --seed N       random seed (default: time-based, printed)
  --inspect      serve the live inspector while it runs and print its URL

ls / show / stats options:
  --db PATH      database to read (default ${DEMO_DB})
  --type T       ls: only agents of this type
  --resident     ls: only resident agents (none, in a stored database)
  --last N       show: rollout entries to print (default 20)
  --json         print JSON instead of a table

inspect options:
  --port N       port (default 0: any free port)
  --host H       address to bind (default 127.0.0.1; any other host requires the token in the URL)
`;

function intOption(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new UsageError(`Expected --${name} to be an integer ≥ ${min}, got \`${value}\``);
  }
  return n;
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals = 0) {
  const parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals > 0 });
  if (parsed.positionals.length > positionals) throw new UsageError(`unexpected argument \`${parsed.positionals[positionals]}\``);
  return parsed;
}

const db = { db: { type: 'string' }, json: { type: 'boolean' } } as const;

async function run(command: string | undefined, rest: string[], io: Io): Promise<number> {
  switch (command) {
    case 'demo': {
      const { values } = parse(rest, {
        agents: { type: 'string' }, cap: { type: 'string' }, running: { type: 'string' }, duration: { type: 'string' },
        db: { type: 'string' }, keep: { type: 'boolean' }, seed: { type: 'string' }, inspect: { type: 'boolean' },
      });
      const agents = intOption('agents', values.agents, 2000, 2);
      const residentCap = intOption('cap', values.cap, 64, 1);
      const runningCap = intOption('running', values.running, 8, 1);
      const duration = intOption('duration', values.duration, 20, 0);
      const seed = intOption('seed', values.seed, Date.now() % 2 ** 31, 0);
      if (runningCap > residentCap) throw new UsageError(`Expected --running (${runningCap}) to be ≤ --cap (${residentCap})`);
      if (values.db === '') throw new UsageError('Expected --db to be a file path, got an empty string');
      return demo(
        { agents, residentCap, runningCap, duration, seed, db: values.db ?? DEMO_DB, keep: values.keep === true, ...(values.inspect ? { inspect: { port: 0 } } : {}) },
        io,
      );
    }
    case 'ls': {
      const { values } = parse(rest, { ...db, type: { type: 'string' }, resident: { type: 'boolean' } });
      return ls({ db: values.db ?? DEMO_DB, type: values.type, resident: values.resident === true, json: values.json === true }, io);
    }
    case 'show': {
      const { values, positionals } = parse(rest, { ...db, last: { type: 'string' } }, 1);
      const id = positionals[0];
      if (id === undefined) throw new UsageError('show needs an agent id: residency show <id>');
      const last = intOption('last', values.last, 20, 1);
      return show({ db: values.db ?? DEMO_DB, id, last, json: values.json === true }, io);
    }
    case 'stats': {
      const { values } = parse(rest, db);
      return stats({ db: values.db ?? DEMO_DB, json: values.json === true }, io);
    }
    case 'inspect': {
      const { values } = parse(rest, { db: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } });
      const port = intOption('port', values.port, 0, 0);
      const path = values.db ?? DEMO_DB;
      if (!existsSync(path)) throw new CliError(`No database at ${path}: run \`residency demo\` first, or pass --db`);
      const store = sqliteStore(path);
      const inspector = await serveStoredInspector(store, { port, ...(values.host ? { host: values.host } : {}) });
      io.out(`inspector (read-only): ${inspector.url}\nCtrl-C to stop\n`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
      await inspector.close();
      await store.close();
      return 0;
    }
    case 'help':
    case '--help':
    case '-h':
      io.out(USAGE);
      return 0;
    default:
      throw new UsageError(command === undefined ? 'no command given' : `unknown command \`${command}\``);
  }
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    return await run(command, rest, io);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`residency: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof CliError || err instanceof ResidencyError) {
      io.err(`residency: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
