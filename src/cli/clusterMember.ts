/**
 * One process of the cluster demo (`residency demo --member <json>`, started by the parent in
 * clusterDemo.ts, whose header says what the processes say to each other): a runtime on
 * postgresStore with the demo's caps, sending tasks to agents of the whole population while
 * the cluster-wide backlog allows, and printing its JSON lines.
 */
import readline from 'node:readline';
import { createRuntime, type Runtime } from '../createRuntime.js';
import { defineAgent } from '../defineAgent.js';
import { fromTurn } from '../fromTurn.js';
import { postgresStore } from '../postgres.js';
import { prng } from '../prng.js';
import { SCHEMA_NAME } from '../store/postgres/schema.js';
import { MAX_HOPS, simulatedModelCall, workerId } from './demo.js';
import { printable, UsageError, type Io } from './format.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What a member is told (`demo --member <json>`). */
export interface MemberConfig {
  /** 1 to processes. */
  index: number;
  url: string;
  schema: string;
  shards: number;
  leaseTtl: number;
  processes: number;
  agents: number;
  residentCap: number;
  runningCap: number;
  seed: number;
}

/** A member's `progress` line (and the counts of its `final` one). */
export interface Progress {
  /** Tasks its users sent (durably accepted). */
  sent: number;
  /** Messages it had accepted: its users' tasks and the forwards of the turns it committed. */
  accepted: number;
  /** Turns it ran (finished: done, failed, interrupted, crashed). */
  handled: number;
  owned: number;
  resident: number;
  residentCap: number;
  running: number;
  runningCap: number;
  loads: number;
  evictions: number;
  hits: number;
  misses: number;
  errors: number;
}

/** Reads `--member`'s JSON (internal: written by the parent); a usage error when it is not a member config. */
export function memberConfig(text: string): MemberConfig {
  let c: Partial<Record<keyof MemberConfig, unknown>> = {};
  try {
    c = JSON.parse(text) as typeof c;
  } catch {
    // below
  }
  const int = (k: keyof MemberConfig, min: number) => Number.isInteger(c[k]) && (c[k] as number) >= min;
  const ok =
    typeof c === 'object' && c !== null &&
    (['index', 'shards', 'leaseTtl', 'processes', 'agents', 'residentCap', 'runningCap'] as const).every((k) => int(k, 1)) &&
    int('seed', 0) && typeof c.url === 'string' && typeof c.schema === 'string' && SCHEMA_NAME.test(c.schema);
  if (!ok) throw new UsageError('--member is internal: the demo starts its processes with it (use --postgres URL --processes N)');
  return c as MemberConfig;
}

/** One process of the cluster demo: see the header. Resolves to its exit code once its runtime stopped. */
export async function clusterMember(c: MemberConfig, io: Io): Promise<number> {
  const out = (o: unknown) => io.out(`${JSON.stringify(o)}\n`);
  const rand = prng(c.seed);
  const ids = Array.from({ length: c.agents }, (_, i) => workerId(i));
  /** Forwards of the turn running now, per agent (one turn at a time per agent). */
  const forwards = new Map<string, number>();

  const worker = defineAgent({
    type: 'worker',
    logic: fromTurn<{ tasks: number; tokens: number }>(
      async ({ state, message, signal, send, self }) => {
        const latency = await simulatedModelCall(rand, signal);
        const hops = typeof message.hops === 'number' ? message.hops : 0;
        if (hops < MAX_HOPS && rand() < 0.15) {
          // A peer by id, wherever it lives: delivered when this turn commits.
          const peer = ids[Math.floor(rand() * ids.length)]!;
          if (peer !== self) {
            send(peer, { type: 'task', hops: hops + 1, from: self });
            forwards.set(self, 1);
          }
        }
        return { tasks: state.tasks + 1, tokens: state.tokens + Math.round(latency * 20) };
      },
      { initialState: { tasks: 0, tokens: 0 } },
    ),
  });

  // Commands from the parent, one per line on stdin: join, go, pause, stop (sending).
  let joined!: () => void;
  const joining = new Promise<void>((resolve) => (joined = resolve));
  let go = false;
  /** A pause to acknowledge (a `paused` line) once the sends in flight have resolved. */
  let pauseAsked = false;
  let sendingOver = false;
  let requested = false;
  const onSigterm = () => void stop();
  const noop = () => {};
  process.on('SIGTERM', onSigterm);
  process.on('SIGINT', noop); // the parent stops this process
  // The parent is gone (EPIPE): stop gracefully all the same.
  process.stdout.on('error', noop);
  process.stderr.on('error', noop);
  const input = readline.createInterface({ input: process.stdin });
  input.on('line', (l) => {
    switch (l.trim()) {
      case 'join':
        joined();
        break;
      case 'go':
        go = true;
        break;
      case 'pause':
        go = false;
        pauseAsked = true;
        break;
      case 'stop':
        sendingOver = true;
        break;
    }
  });
  input.on('close', () => void stop()); // the parent is gone

  let runtime: Runtime | null = null;
  let sent = 0;
  let accepted = 0;
  let handled = 0;
  let errors = 0;
  let errorText: string | undefined;
  let ownedAtStop: number | null = null;
  const error = (where: string, err: unknown) => {
    errors++;
    const text = `${where}: ${(err as Error)?.message ?? String(err)}`;
    errorText ??= text;
    io.err(`[process ${c.index}] ${printable(text)}\n`);
  };
  const snapshot = (): Progress => {
    const s = runtime?.stats();
    return {
      sent, accepted, handled, owned: ownedAtStop ?? s?.cluster?.owned ?? 0,
      resident: s ? s.resident + s.loading + s.flushing : 0, residentCap: s?.residentCap ?? c.residentCap,
      running: s?.running ?? 0, runningCap: s?.runningCap ?? c.runningCap,
      loads: s?.loads ?? 0, evictions: s?.evictions ?? 0, hits: s?.hits ?? 0, misses: s?.misses ?? 0, errors,
    };
  };

  let finished!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finished = resolve));
  let stopping: Promise<void> | null = null;
  /** SIGTERM, or the parent gone: the runtime stops gracefully (its shards are handed over). */
  function stop(): void {
    sendingOver = true;
    requested = true;
    joined();
    if (runtime === null) return; // not joined: nothing to stop
    stopping ??= (async () => {
      ownedAtStop = runtime!.stats().cluster?.owned ?? 0;
      let code = 0;
      try {
        await runtime!.stop();
      } catch (err) {
        error('stop', err);
        code = 1;
      }
      out({ final: { ...snapshot(), ...(errorText ? { errorText } : {}) }, cluster: runtime!.stats().cluster ?? null });
      finished(code);
    })();
  }

  // Opened now (it connects), joined when the parent says so.
  const store = postgresStore({ connectionString: c.url, schema: c.schema, shards: c.shards, leaseTtl: c.leaseTtl });
  let ticker: NodeJS.Timeout | null = null;
  try {
    await joining;
    if (requested) {
      await store.close().catch(() => {});
      out({ final: snapshot() });
      return 0;
    }
    try {
      runtime = await createRuntime({ agents: [worker], residentCap: c.residentCap, runningCap: c.runningCap, store });
    } catch (err) {
      await store.close().catch(() => {});
      throw err;
    }
    runtime.on('turn.finished', (e) => {
      handled++;
      if (e.outcome === 'done') accepted += forwards.get(e.id) ?? 0;
      forwards.delete(e.id);
    });
    runtime.on('error', (e) => error(e.where, e.error));
    runtime.on('agent.failed', (e) => error(`agent ${e.id} quarantined`, e.error));
    out({ ready: runtime.stats().cluster?.member ?? null, pid: process.pid });
    ticker = setInterval(() => out({ progress: snapshot(), cluster: runtime!.stats().cluster ?? null }), 250);
    if (requested) stop();

    // The backlog of the whole cluster (messages pending in every shard), read from the
    // store: each of the n processes sends its part of what keeps it under n × the SQLite
    // demo's bound (n told by this process's share of the shards).
    const base = Math.min(10_000, Math.max(2 * c.residentCap, 4 * c.runningCap));
    const allShards = Array.from({ length: c.shards }, (_, i) => i);
    let budget = 0;
    const backlog = (async () => {
      while (!sendingOver) {
        try {
          const n = Math.max(1, Math.round(c.shards / Math.max(1, runtime!.stats().cluster?.owned ?? 0)));
          const withMail = await store.cluster!.withPending(allShards);
          let pending = 0;
          if (withMail.length > 0) for (const s of (await store.agentStats(withMail)).values()) pending += s.mailbox;
          budget = Math.max(0, Math.floor((n * base - pending) / n));
        } catch (err) {
          if (!sendingOver) error('backlog', err);
        }
        await sleep(100);
      }
    })();

    // Users: tasks to agents of the whole population (most owned by other processes), most
    // of them to a working set that drifts through it (the same one in every process).
    const hot = Math.max(1, Math.floor((c.residentCap * 3) / 4) * c.processes);
    while (!sendingOver) {
      if (pauseAsked && !go) {
        pauseAsked = false;
        out({ paused: true }); // its sends in flight have resolved
      }
      if (!go || budget <= 0) {
        await sleep(10);
        continue;
      }
      const batch = Math.min(16, budget);
      budget -= batch;
      const offset = Math.floor(Date.now() / 40);
      await Promise.all(
        Array.from({ length: batch }, () => {
          const target = rand() < 0.8 ? ids[(offset + Math.floor(rand() * hot)) % ids.length]! : ids[Math.floor(rand() * ids.length)]!;
          return runtime!.send(target, { type: 'task', hops: 0, from: `user-${c.index}` }).then(
            () => void (sent++, accepted++),
            (err: unknown) => {
              if (!requested) error('send', err);
            },
          );
        }),
      );
    }
    await backlog;
    out({ sent });
    return await done;
  } finally {
    if (ticker) clearInterval(ticker);
    process.off('SIGTERM', onSigterm);
    process.off('SIGINT', noop);
    process.stdout.off('error', noop);
    process.stderr.off('error', noop);
    input.close();
    process.stdin.destroy();
  }
}
