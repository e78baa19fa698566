/**
 * The `residency` command.
 *
 *   residency demo  [--agents N] [--cap N] [--running N] [--duration S] [--db PATH] [--keep | --force] [--seed N]
 *   residency demo  --postgres URL [--processes N] [--schema NAME] [--agents N] [--cap N] [--running N] [--duration S] [--keep | --force] [--seed N]
 *   residency ls    [--db PATH] [--type T] [--resident] [--json]
 *   residency show  <id> [--db PATH] [--last N] [--json]
 *   residency stats [--db PATH] [--json]
 *   residency inspect [--db PATH] [--port N] [--host H]
 *
 * `demo --postgres` runs the demo as N processes of this command on one PostgreSQL schema
 * (src/cli/clusterDemo.ts, loaded only then); they are started with the internal option
 * `demo --member <json>`, left out of the usage.
 *
 * `main(argv)` resolves to the exit code: 0 done, 1 failed (or the demo's check said
 * no), 2 bad arguments (with the usage). Messages are one line, with control characters
 * escaped (they may quote stored text or arguments).
 */
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { demo } from './cli/demo.js';
import { CliError, printable, processIo, UsageError, type Io } from './cli/format.js';
import { ls, openReader, show, stats } from './cli/query.js';
import { ResidencyError } from './errors.js';
import { serveStoredInspector, type Inspector } from './inspector/serveInspector.js';

/** Where the demo writes its database, and where ls/show/stats look by default. */
export const DEMO_DB = './.residency/demo.db';

/** The schema `demo --postgres` runs in by default. */
export const DEMO_SCHEMA = 'residency_demo';

export const USAGE = `usage: residency <command> [options]

commands:
  demo          run a swarm of agents on the runtime and the embedded store (or as several
                processes on PostgreSQL: --postgres), then report
  ls            list the agents of a database
  show <id>     one agent: identity, state, mailbox, the rollout's last entries
  stats         counts of a database: agents, messages, turns, loads
  inspect       serve a read-only inspector page over a database (Ctrl-C to stop)
  help          show this message

demo options:
  --agents N     agents, 2 to 100000, a few of them pinned roots that spawn the rest (default 2000)
  --cap N        resident cap, 1 to 100000 (default 64; of each process with --postgres)
  --running N    running cap, 1 to 10000 and at most --cap (default 8; of each process with --postgres)
  --duration S   seconds of sending messages, 0 to 3600 (default 20); then the demo
                 waits for the work still pending, and checks it was all done once
  --db PATH      database file, recreated at each run (default ${DEMO_DB}); a file
                 there that is not a residency database is refused and left as it is
  --force        replace the file at --db (the --schema) even when it is not residency's
  --keep         keep the database (the schema) of an earlier run instead of recreating it
  --seed N       random seed, 0 to 4294967295 (default: time-based, printed)
  --inspect      serve the live inspector while it runs and print its URL

  --postgres URL run the demo as several processes on one PostgreSQL database instead
                 (postgres://user@host:5432/db): the agents (no roots) hash to shards, each
                 process owns some and runs their turns, and sends to agents of all of them
  --processes N  with --postgres: processes, 1 to 16 (default 3); the first starts alone,
                 the others a second later take their share of the shards (sending pauses)
  --schema NAME  with --postgres: the schema, recreated at each run (default ${DEMO_SCHEMA});
                 one that is not a residency schema is refused and left as it is

ls / show / stats options:
  --db PATH      database to read (default ${DEMO_DB})
  --type T       ls: only agents of this type
  --resident     ls: only resident agents (none, in a stored database)
  --last N       show: rollout entries to print, 1 to 100000 (default 20)
  --json         print JSON instead of a table
  (they only read: the database is opened read-only, also while a runtime runs on it)

inspect options:
  --db PATH      database to show, read-only (default ${DEMO_DB})
  --port N       port, 0 to 65535 (default 0: any free port)
  --host H       address to bind (default 127.0.0.1; any other host requires the token in the URL)
`;

/** A decimal integer from `min` to `max` (no sign, exponent, fraction or blanks), else a usage error. */
function intOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(`Expected --${name} to be an integer from ${min} to ${max}, got \`${value}\``);
  }
  return n;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** An IP address (IPv6 with or without brackets) or a host name; dotted numbers must be an IPv4 address. */
function hostOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (isIP(bare) !== 0) return bare;
  if (HOST_NAME.test(value) && !/^[0-9.]+$/.test(value)) return value;
  throw new UsageError(`Expected --host to be an IP address or a host name, got \`${value}\``);
}

/** Why the inspector could not listen, in one line with the fix (exit 1). */
function listenFailure(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EADDRINUSE':
      return new CliError(`port ${port} on ${host} is in use: stop what listens there, or pick another with --port (0 picks a free one)`);
    case 'EACCES':
      return new CliError(`cannot listen on ${host} port ${port}: permission denied (ports below 1024 need privileges): pick another with --port`);
    case 'EADDRNOTAVAIL':
      return new CliError(`cannot listen on ${host}: this machine has no such address; pass one of its own with --host (default 127.0.0.1)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return new CliError(`cannot listen on ${host}: the host name does not resolve; pass an address of this machine with --host`);
    default:
      return typeof code === 'string' ? new CliError(`cannot listen on ${host} port ${port}: ${(err as Error).message}`) : err;
  }
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
        db: { type: 'string' }, keep: { type: 'boolean' }, force: { type: 'boolean' }, seed: { type: 'string' }, inspect: { type: 'boolean' },
        postgres: { type: 'string' }, processes: { type: 'string' }, schema: { type: 'string' }, member: { type: 'string' },
      });
      if (values.member !== undefined) {
        // Internal: one process of `demo --postgres`, started by it (its options are in the JSON).
        const member = await import('./cli/clusterMember.js');
        return member.clusterMember(member.memberConfig(values.member), io);
      }
      const agents = intOption('agents', values.agents, 2000, 2, 100_000);
      const residentCap = intOption('cap', values.cap, 64, 1, 100_000);
      const runningCap = intOption('running', values.running, 8, 1, 10_000);
      const duration = intOption('duration', values.duration, 20, 0, 3600);
      const seed = intOption('seed', values.seed, Date.now() % 2 ** 31, 0, 2 ** 32 - 1);
      if (runningCap > residentCap) throw new UsageError(`Expected --running (${runningCap}) to be ≤ --cap (${residentCap})`);
      if (values.db === '') throw new UsageError('Expected --db to be a file path, got an empty string');
      if (values.keep && values.force) throw new UsageError('--keep keeps the database and --force replaces it: pass one of them');
      if (values.postgres === undefined) {
        if (values.processes !== undefined) throw new UsageError('--processes runs the demo on PostgreSQL: pass --postgres URL too');
        if (values.schema !== undefined) throw new UsageError('--schema names a PostgreSQL schema: pass --postgres URL too');
      } else {
        const cluster = await import('./cli/clusterDemo.js');
        if (values.db !== undefined) throw new UsageError('--db is the SQLite demo\'s file and --postgres runs it on PostgreSQL: pass one of them');
        if (values.inspect) throw new UsageError('--inspect serves the inspector of one runtime: it is for the SQLite demo, not --postgres');
        return cluster.clusterDemo(
          {
            url: cluster.postgresUrl(values.postgres),
            schema: cluster.demoSchema(values.schema ?? DEMO_SCHEMA),
            processes: intOption('processes', values.processes, 3, 1, 16),
            agents, residentCap, runningCap, duration, seed, keep: values.keep === true, force: values.force === true,
          },
          io,
        );
      }
      return demo(
        {
          agents, residentCap, runningCap, duration, seed, db: values.db ?? DEMO_DB, keep: values.keep === true, force: values.force === true,
          ...(values.inspect ? { inspect: { port: 0 } } : {}),
        },
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
      const last = intOption('last', values.last, 20, 1, 100_000);
      return show({ db: values.db ?? DEMO_DB, id, last, json: values.json === true }, io);
    }
    case 'stats': {
      const { values } = parse(rest, db);
      return stats({ db: values.db ?? DEMO_DB, json: values.json === true }, io);
    }
    case 'inspect': {
      const { values } = parse(rest, { db: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } });
      const port = intOption('port', values.port, 0, 0, 65_535);
      const host = hostOption(values.host);
      const store = openReader(values.db ?? DEMO_DB);
      try {
        let inspector: Inspector;
        try {
          inspector = await serveStoredInspector(store, { port, ...(host !== undefined ? { host } : {}) });
        } catch (err) {
          throw listenFailure(err, host ?? '127.0.0.1', port);
        }
        io.out(`inspector (read-only): ${inspector.url}\nCtrl-C to stop\n`);
        await (io.interrupted?.() ?? new Promise<void>((resolve) => process.once('SIGINT', () => resolve())));
        await inspector.close();
      } finally {
        await store.close();
      }
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
      io.err(`residency: ${printable((err as Error).message)}\n${err instanceof UsageError && !err.usage ? '' : `\n${USAGE}`}`);
      return 2;
    }
    if (err instanceof CliError || err instanceof ResidencyError) {
      io.err(`residency: ${printable(err.message)}\n`);
      return 1;
    }
    throw err;
  }
}
