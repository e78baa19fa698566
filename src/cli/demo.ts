/**
 * `residency demo`: a swarm of agents on the real runtime and the embedded SQLite store.
 *
 * A few pinned root agents (statecharts) spawn the sub-agents (in batches, from their
 * turns, the way a coding agent spawns helpers); users send tasks to a skewed selection of agents; a task
 * is a simulated model call (jittered latency, occasional failure) that may pass work on
 * to a peer or report to its root. The resident cap is far below the number of agents,
 * so agents are evicted and reloaded all the time. When sending stops, the demo waits
 * (showing progress) until the work still pending is done. At the end the store itself
 * is read back to check that every accepted message was handled exactly once.
 *
 * `--db` is recreated at each run, but only when it is a residency database (or nothing):
 * any other file is refused and left as it is, unless `--force`.
 */
import fs from 'node:fs';
import { hostname } from 'node:os';
import nodePath from 'node:path';
import { assign, enqueueActions, setup } from 'xstate';
import { createRuntime, type Runtime } from '../createRuntime.js';
import { defineAgent } from '../defineAgent.js';
import { fromTurn } from '../fromTurn.js';
import { AgentExistsError, StoreLockedError } from '../errors.js';
import { sqliteStore } from '../store/sqliteStore.js';
import { serveInspector } from '../inspector/serveInspector.js';
import type { Store } from '../store/Store.js';
import { CliError, count, fields, ms, percent, percentile, printable, type Io } from './format.js';
import { examineDatabaseFile, notAFile } from './dbFile.js';
import { prng } from '../prng.js';

export interface DemoOptions {
  agents: number;
  residentCap: number;
  runningCap: number;
  /** Seconds of sending. */
  duration: number;
  db: string;
  /** Keep the database of an earlier run (else it is recreated). */
  keep: boolean;
  /** Replace the file at `db` even when it is not a residency database. */
  force?: boolean;
  seed: number;
  /** Serve the live inspector while the demo runs (`--inspect`). */
  inspect?: { port: number; host?: string };
}


/** A model call: waits `delay` ms, or rejects as soon as the turn is interrupted. */
function modelCall(delay: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, delay);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A simulated model call: 5–60 ms with a slow tail, failing (a 529) FAILURE_RATE of the time;
 * rejects as soon as the turn is interrupted. Resolves to its latency in ms.
 */
export async function simulatedModelCall(rand: () => number, signal: AbortSignal): Promise<number> {
  const latency = 5 + rand() * 55 + (rand() < 0.03 ? 100 + rand() * 150 : 0);
  await modelCall(latency, signal);
  if (rand() < FAILURE_RATE) throw new Error('model call failed: 529 overloaded (simulated)');
  return latency;
}

export const workerId = (i: number) => `agent-${String(i).padStart(4, '0')}`;
const SPAWN_BATCH = 25;
const FAILURE_RATE = 0.02;
export const MAX_HOPS = 2;

interface Exactness {
  agents: number;
  accepted: number;
  handled: number;
  outcomes: Record<string, number>;
  pending: number;
  inFlight: number;
  twice: number;
  unmatched: number;
  outOfOrder: number;
}

/** Reads every agent's rollout back from the store: each accepted message must have exactly one turn record. */
export async function checkExactlyOnce(store: Store): Promise<Exactness> {
  const r: Exactness = { agents: 0, accepted: 0, handled: 0, outcomes: {}, pending: 0, inFlight: 0, twice: 0, unmatched: 0, outOfOrder: 0 };
  r.inFlight = (await store.turnsInFlight()).length;
  let cursor: string | null = null;
  do {
    const page = await store.listAgents({ limit: 500, cursor });
    for (const agent of page.agents) {
      r.agents++;
      const finished = new Map<number, number>();
      const accepted = new Set<number>();
      let last = 0;
      for (const e of await store.rollout(agent.id)) {
        if (e.kind === 'accepted') accepted.add(e.seq);
        if (e.kind !== 'turn.finished') continue;
        finished.set(e.seq, (finished.get(e.seq) ?? 0) + 1);
        r.outcomes[e.outcome] = (r.outcomes[e.outcome] ?? 0) + 1;
        if (e.seq < last) r.outOfOrder++;
        last = Math.max(last, e.seq);
      }
      r.accepted += accepted.size;
      for (const seq of accepted) {
        const n = finished.get(seq) ?? 0;
        if (n >= 1) r.handled++;
        if (n > 1) r.twice++;
      }
      for (const seq of finished.keys()) if (!accepted.has(seq)) r.unmatched++;
      r.pending += await store.mailboxSize(agent.id);
    }
    cursor = page.cursor;
  } while (cursor !== null);
  return r;
}

/**
 * Readies the demo's database: removes a residency database of an earlier run (unless
 * `keep`), and refuses (writing nothing) a directory, a device, or a file that is not a
 * residency database (unless `force`).
 */
export async function prepareDatabase(path: string, o: { keep: boolean; force: boolean }): Promise<void> {
  const file = examineDatabaseFile(path);
  const usage = notAFile(path, file);
  if (usage) throw usage;
  if (file.kind === 'other' && !(o.force && !o.keep)) {
    throw new CliError(
      `"${path}" is not a residency database (${file.why}): the demo left it as it is. ` +
        (o.keep ? 'Pass the path of a residency database with --keep' : 'Pass another --db, or --force to replace it'),
    );
  }
  if (!o.keep && file.kind !== 'missing') await refuseIfOwned(path);
  try {
    if (!o.keep) for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${path}${suffix}`, { force: true });
    fs.mkdirSync(nodePath.dirname(nodePath.resolve(path)), { recursive: true });
  } catch (cause) {
    throw new CliError(`Cannot ready the demo's database "${path}": ${(cause as Error).message}`);
  }
}

/**
 * A database a live runtime owns is never deleted: its owner would go on writing into a
 * file that is gone, and everything in it would be lost. Checked by taking the lock.
 */
async function refuseIfOwned(path: string): Promise<void> {
  let store: Store;
  try {
    store = sqliteStore(path);
  } catch {
    return; // not openable as a residency database: the file checks above decided already
  }
  try {
    await store.acquire({ pid: process.pid, host: hostname(), since: Date.now() });
  } catch (err) {
    if (err instanceof StoreLockedError) {
      throw new CliError(`"${path}" is in use: ${err.message}. The demo left it as it is`);
    }
    throw err;
  } finally {
    await store.close().catch(() => {});
  }
}

export async function demo(o: DemoOptions, io: Io): Promise<number> {
  await prepareDatabase(o.db, { keep: o.keep, force: o.force === true });
  const rand = prng(o.seed);
  const roots = Math.max(1, Math.min(4, Math.floor(o.agents / 10)));
  const workers = o.agents - roots;
  const known: string[] = []; // worker ids spawned so far, in spawn order

  // A root is a statechart (its state shows lit in the inspector): `growing` while it
  // spawns its sub-agents in batches, `supervising` once all are spawned. Effects leave
  // it as emitted `agent.spawn` / `agent.send` events, carried out when the turn commits.
  type RootContext = { index: number; spawned: number; reports: number };
  const remaining = (c: RootContext) => Math.max(0, Math.ceil((workers - c.index) / roots) - c.spawned);
  const root = defineAgent({
    type: 'root',
    logic: setup({
      types: {} as {
        context: RootContext;
        input: { index: number };
        events: { type: 'grow' } | { type: 'report' };
        emitted: { type: 'agent.spawn'; agentType: string; id: string } | { type: 'agent.send'; to: string; message: { type: string; [k: string]: unknown } };
      },
      actions: {
        spawnBatch: enqueueActions(({ context, enqueue }) => {
          const batch = Math.min(SPAWN_BATCH, remaining(context));
          for (let n = 0; n < batch; n++) {
            const id = workerId(context.index + (context.spawned + n) * roots);
            enqueue.emit({ type: 'agent.spawn', agentType: 'worker', id });
            if (n === 0) enqueue.emit({ type: 'agent.send', to: id, message: { type: 'task', hops: 0, from: `root-${context.index}` } });
          }
          if (batch < remaining(context)) enqueue.emit({ type: 'agent.send', to: `root-${context.index}`, message: { type: 'grow' } });
          enqueue.assign({ spawned: context.spawned + batch });
        }),
        countReport: assign({ reports: ({ context }) => context.reports + 1 }),
      },
      guards: { lastBatch: ({ context }) => remaining(context) <= SPAWN_BATCH },
    }).createMachine({
      id: 'root',
      context: ({ input }) => ({ index: input.index, spawned: 0, reports: 0 }),
      initial: 'growing',
      on: { report: { actions: 'countReport' } },
      states: {
        growing: {
          on: {
            grow: [
              { guard: 'lastBatch', target: 'supervising', actions: 'spawnBatch' },
              { actions: 'spawnBatch' },
            ],
          },
        },
        supervising: {},
      },
    }),
  });

  const worker = defineAgent({
    type: 'worker',
    logic: fromTurn<{ tasks: number; tokens: number }>(
      async ({ state, message, signal, send, self }) => {
        const latency = await simulatedModelCall(rand, signal);
        const hops = typeof message.hops === 'number' ? message.hops : 0;
        if (hops < MAX_HOPS && known.length > 1 && rand() < 0.15) {
          const peer = known[Math.floor(rand() * known.length)]!;
          if (peer !== self) send(peer, { type: 'task', hops: hops + 1, from: self });
        }
        if (rand() < 0.03) send(`root-${Number(self.slice(6)) % roots}`, { type: 'report', from: self, tasks: state.tasks + 1 });
        return { tasks: state.tasks + 1, tokens: state.tokens + Math.round(latency * 20) };
      },
      { initialState: { tasks: 0, tokens: 0 } },
    ),
  });

  const runtime: Runtime = await createRuntime({
    agents: [root, worker],
    residentCap: o.residentCap,
    runningCap: o.runningCap,
    store: sqliteStore(o.db),
  });
  const inspector = o.inspect ? await serveInspector(runtime, o.inspect) : null;
  if (inspector) io.out(`inspector: ${inspector.url}\n`);

  // --- what happens, from the runtime's events ----------------------------------
  let accepted = 0;
  let handled = 0;
  const outcomes: Record<string, number> = {};
  const loadingSince = new Map<string, number>();
  const turnSince = new Map<string, number>();
  const reloads: number[] = [];
  const turns: number[] = [];
  let saturated = 0;
  let wake: (() => void) | null = null;
  runtime.on('message.accepted', () => void accepted++);
  runtime.on('agent.spawned', (e) => {
    if (e.type === 'worker') known.push(e.id);
  });
  runtime.on('agent.loading', (e) => void loadingSince.set(e.id, performance.now()));
  runtime.on('agent.loaded', (e) => {
    const t = loadingSince.get(e.id);
    loadingSince.delete(e.id);
    if (t !== undefined) reloads.push(performance.now() - t);
  });
  runtime.on('turn.started', (e) => void turnSince.set(`${e.id}#${e.seq}`, performance.now()));
  runtime.on('turn.finished', (e) => {
    handled++;
    outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
    const t = turnSince.get(`${e.id}#${e.seq}`);
    turnSince.delete(`${e.id}#${e.seq}`);
    if (t !== undefined) turns.push(performance.now() - t);
    wake?.();
  });
  runtime.on('residency.saturated', () => void saturated++);

  const progress = () => {
    const s = runtime.stats();
    return (
      `accepted ${count(accepted)}  handled ${count(handled)}  ` +
      `resident ${s.resident + s.loading + s.flushing}/${s.residentCap} (+${s.pinned} pinned)  running ${s.running}/${s.runningCap}  ` +
      `waiting ${s.waitingForSlot + s.waitingForPermit}  evictions ${count(s.evictions)}  reloads ${count(s.loads)}  ` +
      `hit rate ${percent(s.hits, s.hits + s.misses)}`
    );
  };

  // --- Ctrl-C: the first stops sending and stops the runtime; the second exits now ---
  let interrupted = false;
  let stopping = false;
  const onSigint = () => {
    if (interrupted) {
      io.err('\nresidency demo: second Ctrl-C, exiting now\n');
      process.exit(130);
    }
    interrupted = true;
    stopping = true;
    wake?.();
    io.err(`${io.isTTY ? '\n' : ''}residency demo: stopping (Ctrl-C again to exit at once)\n`);
  };
  process.on('SIGINT', onSigint);

  io.out(
    `residency demo: ${count(o.agents)} agents (${roots} pinned roots), resident cap ${o.residentCap}, running cap ${o.runningCap}, ` +
      `${o.duration} s of sending, seed ${o.seed}\n` + `store: sqliteStore('${printable(o.db)}')\n`,
  );
  const started = performance.now();
  const ticker = setInterval(
    () => (io.isTTY ? io.out(`\r${progress()}\x1b[K`) : io.out(`${progress()}\n`)),
    io.isTTY ? 200 : 1000,
  );
  let stopped: Promise<void> | null = null;
  try {
    for (let r = 0; r < roots; r++) {
      // With --keep the roots of an earlier run are there already: they go on where they were.
      await runtime.spawn('root', { id: `root-${r}`, input: { index: r }, pinned: true }).catch((err: unknown) => {
        if (!(err instanceof AgentExistsError)) throw err;
      });
    }
    await Promise.all(Array.from({ length: roots }, (_, r) => runtime.send(`root-${r}`, { type: 'grow' })));

    // Users: tasks to agents with a working set (most go to a few dozen agents that drift
    // slowly through the population, the rest anywhere), with a bounded backlog so the run
    // measures residency rather than an ever-growing queue.
    const hot = Math.max(1, Math.floor((o.residentCap * 3) / 4));
    let sends = 0;
    const backlog = Math.min(10_000, Math.max(2 * o.residentCap, 4 * o.runningCap));
    const until = started + o.duration * 1000;
    while (!stopping && performance.now() < until) {
      if (accepted - handled >= backlog || known.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 20);
        });
        wake = null;
        continue;
      }
      const batch = Math.min(16, backlog - (accepted - handled));
      await Promise.all(
        Array.from({ length: batch }, () => {
          const r = rand();
          const offset = Math.floor(sends++ / 25);
          const target =
            r < 0.02 ? `root-${Math.floor(rand() * roots)}`
            : r < 0.8 ? known[(offset + Math.floor(rand() * hot)) % known.length]!
            : known[Math.floor(rand() * known.length)]!;
          return runtime.send(target, target.startsWith('root') ? { type: 'report', from: 'user' } : { type: 'task', hops: 0, from: 'user' });
        }),
      );
    }
    // Wait for the work still pending (unless stopped), however long it takes, with the
    // progress line going on: every accepted message gets its turn before the check.
    if (!stopping) {
      io.out(
        `${io.isTTY ? '\r\x1b[K' : ''}sending stopped: waiting for the agents to handle what is pending ` +
          `(${count(Math.max(0, accepted - handled))} messages now; Ctrl-C to stop)\n`,
      );
    }
    let quiet = 0;
    while (!stopping && quiet < 3) {
      await new Promise<void>((resolve) => setTimeout(resolve, 25));
      const s = runtime.stats();
      quiet = handled >= accepted && s.running === 0 && s.waitingForPermit === 0 && s.waitingForSlot === 0 ? quiet + 1 : 0;
    }
    stopped = runtime.stop();
    await stopped;
  } finally {
    clearInterval(ticker);
    if (!stopped) await runtime.stop().catch(() => {});
    await inspector?.close();
  }
  const elapsed = (performance.now() - started) / 1000;
  if (io.isTTY) io.out(`\r${progress()}\x1b[K\n`);
  const s = runtime.stats();
  process.off('SIGINT', onSigint);

  // --- the check, from the store itself --------------------------------------------
  const store = sqliteStore(o.db, { readonly: true });
  const x = await checkExactlyOnce(store).finally(() => store.close());
  const exact = x.handled === x.accepted && x.twice === 0 && x.unmatched === 0 && x.pending === 0 && x.inFlight === 0;
  const noneTwice = x.twice === 0 && x.unmatched === 0;

  io.out(
    `\n${interrupted ? 'stopped by Ctrl-C' : 'done'} after ${elapsed.toFixed(1)} s\n` +
      fields([
        ['agents', `${count(x.agents)} in the store (${roots} pinned roots)`],
        ['messages', `${count(x.accepted)} accepted, ${count(x.handled)} handled (${Object.entries(x.outcomes).map(([k, v]) => `${count(v)} ${k}`).join(', ')})`],
        ['throughput', `${count(Math.round(handled / elapsed))} turns/s`],
        ['residency', `${count(s.loads)} loads, ${count(s.evictions)} evictions, hit rate ${percent(s.hits, s.hits + s.misses)} (${count(s.hits)} hits, ${count(s.misses)} misses), saturated ${count(saturated)} times`],
        ['reload latency', `p50 ${ms(percentile(reloads, 0.5))}  p99 ${ms(percentile(reloads, 0.99))}  (${count(reloads.length)} loads)`],
        ['turn latency', `p50 ${ms(percentile(turns, 0.5))}  p99 ${ms(percentile(turns, 0.99))}  (${count(turns.length)} turns)`],
        ['order', x.outOfOrder === 0 ? 'every agent handled its messages in acceptance order' : `${x.outOfOrder} turns out of acceptance order`],
        ['database', `${printable(o.db)} (try: residency ls --db ${printable(o.db)}, residency stats --db ${printable(o.db)})`],
      ]) +
      '\n',
  );
  if (exact) {
    io.out('every accepted message handled exactly once: yes\n');
  } else {
    io.out(
      `every accepted message handled exactly once: no (${count(x.accepted - x.handled)} not handled: ${count(x.pending)} pending in their durable mailboxes` +
        `${x.inFlight ? `, ${x.inFlight} in flight` : ''}; ${noneTwice ? 'none handled twice' : `${x.twice} handled twice, ${x.unmatched} turn records without a message`})\n`,
    );
    if (interrupted && noneTwice) io.out('(stopped early: the pending messages are kept and run at the next start with --keep)\n');
  }
  if (interrupted) return noneTwice ? 0 : 1;
  return exact ? 0 : 1;
}
