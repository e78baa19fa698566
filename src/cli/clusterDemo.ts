/**
 * `residency demo --postgres URL --processes N`: the demo scaled out, N processes of this
 * command on one PostgreSQL schema (postgresStore: agents hash to shards, each process owns
 * some through leases and runs their turns; any process sends to any agent).
 *
 * The parent process readies the schema (recreated at each run unless `--keep`, and only
 * when it is a residency schema — one with the `meta` table the store makes — or absent:
 * any other schema is refused and left as it is, unless `--force`), creates the agents
 * through a store it never acquires, then starts the members: `demo --member <json>`, the
 * same command line it runs itself (`tsx src/bin.ts`, or `node dist/bin.js`; the member's
 * side is clusterMember.ts). The first
 * joins the cluster alone and owns every shard; a second later the others join and take
 * their share (the shards move: each one handed over after its running turns finished).
 *
 * A member runs a runtime with the demo's caps, sends tasks to agents of the whole
 * population (most of them owned by other processes) while the cluster-wide backlog is
 * below a bound, and prints JSON lines: `ready`, `progress` (four times a second: what
 * it sent, accepted and ran, with `stats().cluster`), `paused`, `sent`, `final`. The parent steers it with lines on its stdin: `join` (open
 * the runtime), `go` and `pause` (sending), `stop` (sending is over). SIGTERM, or its stdin
 * closing (the parent is gone), stops its runtime gracefully (its shards are handed over).
 * It runs in a process group of its own and ignores SIGINT: the parent stops it.
 *
 * The parent shows one progress line from the members' lines, stops their sending after
 * `--duration` s, waits until the database says nothing is pending and nothing is in
 * flight, stops the members (SIGTERM), then checks the database as the SQLite demo does
 * (`checkExactlyOnce`) and prints the report: who ran how many turns, how many shards
 * moved, and the exactly-once line. A member that dies is reported, the others stopped,
 * and the exit code is 1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import nodePath from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AgentExistsError } from '../errors.js';
import { postgresStore } from '../postgres.js';
import { pgDriver } from '../store/postgres/pgDriver.js';
import { SCHEMA_NAME } from '../store/postgres/schema.js';
import type { Store, StoreOp } from '../store/Store.js';
import type { MemberConfig, Progress } from './clusterMember.js';
import { checkExactlyOnce, workerId } from './demo.js';
import { CliError, count, fields, percent, printable, UsageError, type Io } from './format.js';

export interface ClusterDemoOptions {
  /** The server (`postgres://` or `postgresql://`). */
  url: string;
  schema: string;
  processes: number;
  agents: number;
  /** Caps of each process. */
  residentCap: number;
  runningCap: number;
  /** Seconds of sending. */
  duration: number;
  seed: number;
  keep: boolean;
  force: boolean;
}

/** Shards of a schema the demo makes (a kept one keeps its own). */
const DEMO_SHARDS = 64;
/** Leases of 5 s: a heartbeat every 1.7 s, a dead process's shards taken over within about 5 s. */
const LEASE_TTL = 5_000;
/** The others join this long after the first one started sending (at most half of --duration). */
const JOIN_DELAY = 1_000;
/** How long a member may take to start (tsx compiles on a cold cache). */
const READY_TIMEOUT = 60_000;
/** How long a member may take to stop (the runtime lets running turns finish for 10 s). */
const STOP_TIMEOUT = 30_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Checks `--postgres`: a postgres:// or postgresql:// URL (a usage error otherwise). */
export function postgresUrl(value: string): string {
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    // not a URL
  }
  if (url === null || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new UsageError(`Expected --postgres to be a postgres:// or postgresql:// URL (postgres://user@host:5432/database), got \`${value}\``);
  }
  return value;
}

/** Checks `--schema`: a name postgresStore takes, and none the server or everyone else uses. */
export function demoSchema(value: string): string {
  if (!SCHEMA_NAME.test(value)) {
    throw new UsageError(
      `Expected --schema to be a schema name of lower case letters, digits and underscores (at most 40, not starting with a digit), got \`${value}\``,
    );
  }
  if (value === 'public' || value === 'information_schema' || value.startsWith('pg_')) {
    throw new UsageError(`--schema ${value} is not the demo's to recreate: pass a schema of its own`);
  }
  return value;
}

/** The URL to print: without its password. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return printable(u.toString());
  } catch {
    return printable(url);
  }
}

function why(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: { message?: string }[] };
  return printable(e.message || e.errors?.map((x) => x.message).join('; ') || e.code || String(err));
}

// --- the schema ------------------------------------------------------------------------

type SchemaState = { kind: 'missing' } | { kind: 'residency'; shards: number; leased: number } | { kind: 'other'; why: string };

type PgClient = InstanceType<ReturnType<typeof pgDriver>['Client']>;

async function examineSchema(client: PgClient, schema: string): Promise<SchemaState> {
  const ns = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (ns.rowCount === 0) return { kind: 'missing' };
  const meta = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`"${schema}".meta`]);
  if (meta.rows[0]?.t == null) {
    const tables = await client.query<{ name: string }>(
      "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') ORDER BY 1 LIMIT 6",
      [schema],
    );
    const names = tables.rows.map((r) => printable(r.name));
    return {
      kind: 'other',
      why: names.length === 0 ? 'it has no meta table: it is empty' : `it has no meta table, and holds ${names.slice(0, 5).join(', ')}${names.length > 5 ? '…' : ''}`,
    };
  }
  try {
    const m = await client.query<{ shards: number }>(`SELECT shards FROM "${schema}".meta WHERE id = 1`);
    const leased = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".shard_leases WHERE owner IS NOT NULL AND expires_at > now()`,
    );
    const shards = m.rows[0]?.shards;
    if (typeof shards !== 'number') return { kind: 'other', why: 'its meta table is empty' };
    return { kind: 'residency', shards, leased: leased.rows[0]?.n ?? 0 };
  } catch (err) {
    if ((err as { severity?: unknown }).severity === undefined) throw err;
    return { kind: 'other', why: `its meta table is not residency's (${why(err)})` };
  }
}

/**
 * Readies the schema as `--db` is readied: drops a residency schema of an earlier run
 * (unless `keep`), refuses (touching nothing) a schema that is not a residency schema
 * (unless `force`: then it is dropped) and one a live member holds leases in. Returns the
 * shard count to open it with.
 */
async function prepareSchema(o: ClusterDemoOptions): Promise<number> {
  const pg = pgDriver();
  const client = new pg.Client({ connectionString: o.url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new CliError(`cannot connect to PostgreSQL at ${shown(o.url)}: ${why(err)}`);
  }
  try {
    const state = await examineSchema(client, o.schema);
    if (state.kind === 'other' && !(o.force && !o.keep)) {
      throw new CliError(
        `schema "${o.schema}" is not a residency schema (${state.why}): the demo left it as it is. ` +
          (o.keep ? 'Pass the schema of an earlier demo with --keep' : 'Pass another --schema, or --force to replace it'),
      );
    }
    if (state.kind === 'residency' && state.leased > 0) {
      throw new CliError(
        `schema "${o.schema}" is in use: a live member holds ${count(state.leased)} of its shards (a demo or an application runs on it). The demo left it as it is`,
      );
    }
    if (o.keep && state.kind === 'residency') return state.shards;
    if (state.kind !== 'missing') await client.query(`DROP SCHEMA "${o.schema}" CASCADE`);
    return DEMO_SHARDS;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot ready the demo's schema "${o.schema}" at ${shown(o.url)}: ${why(err)}`);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates the agents (a batch per 500), through a store never acquired; those there already (--keep) stay. */
async function createAgents(store: Store, agents: number): Promise<void> {
  for (let from = 0; from < agents; from += 500) {
    const ops: StoreOp[] = [];
    for (let i = from; i < Math.min(agents, from + 500); i++) {
      ops.push({ op: 'createAgent', record: { id: workerId(i), type: 'worker', parent: null, pinned: false, input: null, createdAt: Date.now() } });
    }
    for (const r of await store.batch(ops)) if (!r.ok && !(r.error instanceof AgentExistsError)) throw r.error;
  }
}

// --- the members, seen from the parent ----------------------------------------------------

interface Member {
  index: number;
  child: ChildProcess;
  pid: number | undefined;
  /** It said it paused sending (its sends in flight resolved). */
  paused: boolean;
  sent: boolean;
  /** Shards owned when it was told to stop. */
  shardsAtEnd: number | null;
  last: Progress | null;
  final: (Progress & { errorText?: string }) | null;
  stderr: string;
  /** Told to stop (SIGTERM): its exit is expected. */
  stopping: boolean;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  exit: Promise<void>;
}

/**
 * The command line to start a member with: the one this process runs (`tsx src/bin.ts`, or
 * `node dist/bin.js`, or the installed `residency`), else — the CLI called in-process, as
 * in the tests — the entry next to this module.
 */
function memberCommand(): string[] {
  const here = nodePath.dirname(fileURLToPath(import.meta.url));
  const real = (p: string): string | null => {
    try {
      return fs.realpathSync(p);
    } catch {
      return null;
    }
  };
  const bins = [nodePath.resolve(here, '../bin.ts'), nodePath.resolve(here, 'bin.js'), nodePath.resolve(here, 'bin.cjs')]
    .map(real)
    .filter((p): p is string => p !== null);
  const script = process.argv[1];
  if (script !== undefined && bins.includes(real(script) ?? '')) return [...process.execArgv, script];
  const bin = bins[0];
  if (bin === undefined) throw new CliError('cannot find the residency command to start the processes with');
  return bin.endsWith('.ts') ? ['--import', 'tsx', bin] : [bin];
}

function startMember(index: number, command: string[], config: MemberConfig, onFailure: (m: Member) => void): Member {
  // A process group of its own: a Ctrl-C in the terminal reaches the parent only, which stops
  // the members itself (gracefully, in order). Should the parent die, their stdin closes and
  // they stop by themselves.
  const child = spawn(process.execPath, [...command, 'demo', '--member', JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const m: Member = {
    index,
    child,
    pid: child.pid,
    paused: false,
    sent: false,
    shardsAtEnd: null,
    last: null,
    final: null,
    stderr: '',
    stopping: false,
    exited: null,
    exit: Promise.resolve(),
  };
  m.exit = new Promise<void>((resolve) => {
    child.on('error', (err) => {
      m.stderr += `${err.message}\n`;
      if (m.exited === null) {
        m.exited = { code: null, signal: null };
        onFailure(m);
      }
      resolve();
    });
    child.on('exit', (code, signal) => {
      m.exited = { code, signal };
      // Told to stop: exit code 0, or killed by that SIGTERM before it could handle it (still loading).
      if (!m.stopping || (code !== 0 && signal !== 'SIGTERM')) onFailure(m);
      resolve();
    });
  });
  child.stdin!.on('error', () => {}); // a member that died: EPIPE
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      m.stderr += `${line}\n`;
      return;
    }
    if (o.progress) m.last = o.progress as Progress;
    if (o.sent !== undefined) m.sent = true;
    if (o.paused === true) m.paused = true;
    if (o.final) m.final = o.final as Member['final'];
  });
  child.stderr!.on('data', (d: Buffer) => {
    m.stderr = (m.stderr + d.toString()).slice(-4_000);
  });
  return m;
}

const name = (m: Member) => `process ${m.index}${m.pid !== undefined ? ` (pid ${m.pid})` : ''}`;

/** How a member ended, with the last lines it wrote to stderr. */
function howItEnded(m: Member): string {
  const e = m.exited;
  const how = e === null ? 'did not start' : e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
  const last = m.stderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
  return `${how}${last ? `: ${printable(last)}` : ''}`;
}

// --- the parent ---------------------------------------------------------------------

export async function clusterDemo(o: ClusterDemoOptions, io: Io): Promise<number> {
  const shards = await prepareSchema(o);
  // The agents are made, and the database checked, through a store never acquired.
  const admin = postgresStore({ connectionString: o.url, schema: o.schema, shards, leaseTtl: LEASE_TTL });
  try {
    return await run(o, io, admin, shards);
  } finally {
    await admin.close().catch(() => {});
  }
}

async function run(o: ClusterDemoOptions, io: Io, admin: Store, shards: number): Promise<number> {
  const members: Member[] = [];
  // Set from the members' exit handlers (a holder: TypeScript does not see closures assign).
  const failure: { member: Member | null } = { member: null };
  const onFailure = (m: Member) => {
    failure.member ??= m;
  };

  // Ctrl-C: the first stops the members gracefully and reports; the second exits now (the
  // members, their stdin closed, stop by themselves).
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) {
      io.err('\nresidency demo: second Ctrl-C, exiting now\n');
      process.exit(130);
    }
    interrupted = true;
    io.err(`${io.isTTY ? '\n' : ''}residency demo: stopping the processes (Ctrl-C again to exit at once)\n`);
  };
  process.on('SIGINT', onSigint);
  const halted = () => interrupted || failure.member !== null;

  let phase: 'sending' | 'joining' | 'waiting' = 'sending';
  /** Agents with mail, as the database said last (while joining and at the end). */
  let pendingAgents: number | null = null;
  const progress = () => {
    const sum = (k: keyof Progress) => members.reduce((n, m) => n + (m.last?.[k] ?? 0), 0);
    const owned = Array.from({ length: o.processes }, (_, i) => {
      const m = members[i];
      return m === undefined || m.last === null ? '-' : m.exited ? 'x' : String(m.last.owned);
    });
    return (
      `accepted ${count(sum('accepted'))}  handled ${count(sum('handled'))}  ` +
      `resident ${count(sum('resident'))}/${count(sum('residentCap'))}  running ${sum('running')}/${sum('runningCap')}  ` +
      `shards per process ${owned.join(' ')}` +
      (phase !== 'sending' && pendingAgents !== null ? `  agents with mail ${count(pendingAgents)}` : '')
    );
  };
  const line = (text: string) => io.out(`${io.isTTY ? '\r\x1b[K' : ''}${text}\n`);
  let ticker: NodeJS.Timeout | null = null;

  let started = performance.now();
  let elapsed = 0;
  let movesRunning: number | null = null;
  let movesBefore = 0;
  /** The later processes were told to join. */
  let joined = false;
  const unstopped: Member[] = [];
  try {
    io.out(
      `residency demo: ${count(o.agents)} agents on ${o.processes} process${o.processes === 1 ? '' : 'es'}, ` +
        `resident cap ${o.residentCap} and running cap ${o.runningCap} in each, ${o.duration} s of sending, seed ${o.seed}\n` +
        `store: postgresStore(${shown(o.url)}, schema "${o.schema}", ${shards} shards, leases of ${LEASE_TTL / 1000} s)\n`,
    );
    await createAgents(admin, o.agents);
    const command = memberCommand();
    const config = (index: number): MemberConfig => ({
      index,
      url: o.url,
      schema: o.schema,
      shards,
      leaseTtl: LEASE_TTL,
      processes: o.processes,
      agents: o.agents,
      residentCap: o.residentCap,
      runningCap: o.runningCap,
      seed: (o.seed + index * 7_919) % 2 ** 32,
    });
    const announced = new Set<Member>();
    const announce = () => {
      for (const m of members) {
        if (announced.has(m) || m.last === null || m.last.owned === 0 || (m.index > 1 && phase === 'joining')) continue;
        announced.add(m);
        line(`${name(m)} joined: it owns ${m.last.owned} shards${m.index > 1 ? ' (the others handed them over)' : ''}`);
      }
    };
    ticker = setInterval(() => {
      announce();
      if (members.some((m) => m.last !== null)) io.out(io.isTTY ? `\r${progress()}\x1b[K` : `${progress()}\n`);
    }, io.isTTY ? 200 : 1000);

    // Every process starts at once (the runtime loads), and joins the cluster when told.
    for (let i = 1; i <= o.processes; i++) members.push(startMember(i, command, config(i), onFailure));
    const tell = (list: Member[], what: 'join' | 'go' | 'pause' | 'stop') => {
      for (const m of list) if (m.exited === null) m.child.stdin!.write(`${what}\n`);
    };
    /** Waits for `done` (polled), unless halted; false after `timeoutMs`. */
    const until = async (done: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> => {
      const by = performance.now() + timeoutMs;
      while (!halted()) {
        if (await done()) return true;
        if (performance.now() > by) return false;
        await sleep(25);
      }
      return false;
    };
    /** The database says nothing is pending and nothing in flight, three times in a row. */
    let quiet = 0;
    const drained = async () => {
      await sleep(75);
      const pending = await admin.agentsWithPending();
      const inFlight = await admin.turnsInFlight();
      pendingAgents = pending.length;
      quiet = pending.length === 0 && inFlight.length === 0 ? quiet + 1 : 0;
      return quiet >= 3;
    };
    const [first, ...others] = members;

    // The first process alone: it owns every shard.
    tell([first!], 'join');
    if (!(await until(() => (first!.last?.owned ?? 0) > 0, READY_TIMEOUT)) && !halted()) {
      throw new CliError(`${name(first!)} did not start within ${READY_TIMEOUT / 1000} s`);
    }
    // Moves from here on (a kept schema counts its first claims of released shards too).
    movesBefore = (await admin.cluster!.view()).moves;
    tell([first!], 'go');
    started = performance.now();
    const solo = Math.min(JOIN_DELAY, (o.duration * 1000) / 2);
    await until(() => performance.now() >= started + solo, Infinity);
    let joining = 0;
    if (others.length > 0 && !halted()) {
      // Then the others join, and the shards move: each one the first gives away is handed
      // over once its running turns have finished. Sending pauses meanwhile, until nothing is
      // pending. A workaround: a process that takes over a shard with mail pending in it may
      // quarantine agents of that shard for good (the recovery of gained shards counts each
      // agent's mail from a read made before the turns that handled it ran here; such an agent
      // fails "given a turn with an empty mailbox in the store", and its later mail never
      // runs in that process).
      const pausedAt = performance.now();
      quiet = 0;
      pendingAgents = null;
      phase = 'joining';
      first!.paused = false;
      tell([first!], 'pause');
      line(`process${others.length === 1 ? '' : 'es'} ${others.map((m) => m.index).join(', ')} joining: sending pauses until the shards have moved`);
      await until(() => first!.paused, STOP_TIMEOUT);
      await until(drained, Infinity);
      tell(others, 'join');
      joined = true;
      // Settled: every process owns its fair share (the leases' rule: floor or ceil of shards / n).
      const fair = (m: Member) => {
        const n = m.last?.owned ?? 0;
        return n === Math.floor(shards / o.processes) || n === Math.ceil(shards / o.processes);
      };
      await until(() => members.every(fair) && members.reduce((n, m) => n + (m.last?.owned ?? 0), 0) === shards, READY_TIMEOUT);
      announce();
      phase = 'sending';
      tell(members, 'go');
      joining = performance.now() - pausedAt;
    }
    // Sending lasts --duration s in all (the pause while the others joined aside).
    await until(() => performance.now() >= started + o.duration * 1000 + joining, Infinity);

    // Sending stops; then the work still pending is done (the database says when).
    tell(members, 'stop');
    quiet = 0;
    pendingAgents = null;
    if (!halted()) {
      phase = 'waiting';
      line(`sending stopped after ${((performance.now() - started - joining) / 1000).toFixed(1)} s: waiting for the agents to handle what is pending (Ctrl-C to stop)`);
    }
    await until(() => members.every((m) => m.sent), STOP_TIMEOUT);
    await until(drained, Infinity);
    elapsed = (performance.now() - started) / 1000;
    announce();
    if (io.isTTY) io.out(`\r${progress()}\x1b[K\n`);
    movesRunning = (await admin.cluster!.view().catch(() => null))?.moves ?? null;
  } finally {
    if (ticker) clearInterval(ticker);
    if (elapsed === 0) elapsed = (performance.now() - started) / 1000;
    // Stop every member gracefully (each hands its shards over and exits), at once.
    for (const m of members) {
      m.shardsAtEnd = m.last?.owned ?? 0;
      m.stopping = true;
      if (m.exited === null) m.child.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    const stopBy = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_TIMEOUT)));
    for (const m of members) {
      if ((await Promise.race([m.exit.then(() => 'exited' as const), stopBy])) === 'late') {
        unstopped.push(m);
        m.child.kill('SIGKILL');
        await m.exit;
      }
    }
    clearTimeout(timer);
    process.off('SIGINT', onSigint);
  }

  // --- the check, from the database -------------------------------------------------------
  const x = await checkExactlyOnce(admin);
  const view = await admin.cluster!.view();
  const exact = x.handled === x.accepted && x.twice === 0 && x.unmatched === 0 && x.pending === 0 && x.inFlight === 0;
  const noneTwice = x.twice === 0 && x.unmatched === 0;
  const total = (k: keyof Progress) => members.reduce((n, m) => n + ((m.final ?? m.last)?.[k] ?? 0), 0);
  // Moves of this run, once the first process owned every shard (the schema counts them since it was made).
  const moves =
    movesRunning === null ? `${count(view.moves - movesBefore)} moves`
    : `${count(movesRunning - movesBefore)} moves while ${members.length === 1 ? 'it' : 'they'} ran${joined ? ' (the later processes took their share)' : ''}` +
      (view.moves > movesRunning ? `, ${count(view.moves - movesRunning)} more as ${members.length === 1 ? 'it' : 'they'} stopped` : '');
  const report =
    `\n${failure.member ? 'a process failed' : interrupted ? 'stopped by Ctrl-C' : 'done'} after ${elapsed.toFixed(1)} s\n` +
    fields([
      ['agents', `${count(x.agents)} in the store`],
      ['messages', `${count(x.accepted)} accepted, ${count(x.handled)} handled (${Object.entries(x.outcomes).map(([k, v]) => `${count(v)} ${k}`).join(', ') || 'no turns'})`],
      ['throughput', `${count(Math.round(total('handled') / Math.max(elapsed, 0.001)))} turns/s across ${members.length} process${members.length === 1 ? '' : 'es'}`],
      ...members.map((m): [string, string] => {
        const p = m.final ?? m.last;
        const errors = p && p.errors > 0 ? `, ${count(p.errors)} error${p.errors === 1 ? '' : 's'}${m.final?.errorText ? ` (first: ${printable(m.final.errorText)})` : ''}` : '';
        const turns = `pid ${m.pid ?? '-'}: ${p ? count(p.handled) : 'no'} turns`;
        if (m === failure.member) return [`process ${m.index}`, `${turns}, then it ${howItEnded(m)}${errors}`];
        const late = unstopped.includes(m) ? ', killed: it did not stop in time' : '';
        return [`process ${m.index}`, `${turns}, ${m.shardsAtEnd ?? 0} shards at the end${errors}${late}`];
      }),
      ['shards', `${view.shards}, ${moves}`],
      ['residency', `${count(total('loads'))} loads, ${count(total('evictions'))} evictions, hit rate ${percent(total('hits'), total('hits') + total('misses'))} (all processes)`],
      ['order', x.outOfOrder === 0 ? 'every agent handled its messages in acceptance order' : `${x.outOfOrder} turns out of acceptance order`],
      ['database', `${shown(o.url)}, schema "${o.schema}"`],
    ]) +
    '\n' +
    (exact ?
      'every accepted message handled exactly once: yes\n'
    : `every accepted message handled exactly once: no (${count(x.accepted - x.handled)} not handled: ${count(x.pending)} pending in their durable mailboxes` +
      `${x.inFlight ? `, ${x.inFlight} in flight` : ''}; ${noneTwice ? 'none handled twice' : `${x.twice} handled twice, ${x.unmatched} turn records without a message`})\n` +
      (interrupted && noneTwice ? '(stopped early: the pending messages are kept and run at the next start with --keep)\n' : ''));
  io.out(report);
  const failed = failure.member;
  if (failed) {
    io.err(`residency demo: ${name(failed)} ${howItEnded(failed)}; the other processes were stopped\n`);
    return 1;
  }
  if (unstopped.length > 0) return 1;
  if (interrupted) return noneTwice ? 0 : 1;
  return exact ? 0 : 1;
}
