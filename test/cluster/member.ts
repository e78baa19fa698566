/**
 * One process of the cluster test (test/cluster/cluster.test.ts):
 *
 *   node --import tsx test/cluster/member.ts <url> <schema> <name> <seed> <leaseTtl>
 *
 * Opens a runtime on postgresStore (a shared schema), then, until SIGUSR2, sends messages
 * to random agents of the whole population (most of them owned by other processes), a
 * few at once, and some asks. It prints one JSON line per event to stdout:
 *   {"ready":"<member id>"}                           once it owns its share
 *   {"ack":"<agentId>","mid":"<mid>","seq":n}          a send resolved (durably accepted)
 *   {"answer":"<agentId>","mid":"<mid>","count":n}     an ask was answered (from any process)
 *   {"sent":true}                                      sending is over
 *   {"stats":{...}}                                    its turn count and cluster view, at the end
 * SIGTERM stops the runtime gracefully (its shards are handed over) and exits 0.
 *
 * Every agent's turn awaits 0–4 ms (so kills land mid-turn), may forward a message to a
 * peer (delivered with the commit, exactly once), and keeps { count, mids } — the mids of
 * every turn it finished `done`, so the test can tell a lost update from a zombie.
 */
import { createRuntime, type Runtime } from '../../src/createRuntime.js';
import { FencedError } from '../../src/errors.js';
import { INTERNALS, type RuntimeInternals } from '../../src/runtime/internals.js';
import { prng } from '../../src/prng.js';
import { postgresStore } from '../../src/postgres.js';
import { agentIds, counter, SHARDS, type CountState } from './shared.js';

const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main(): Promise<void> {
  const [url, schema, name, seedText, ttlText] = process.argv.slice(2);
  const rand = prng(Number(seedText));
  // Named, so the test can drop this process's connections (a database restart, as seen from here).
  const connectionString = `${url!}${url!.includes('?') ? '&' : '?'}application_name=${schema!}`;
  const store = postgresStore({ connectionString, schema: schema!, shards: SHARDS, leaseTtl: Number(ttlText) });
  const runtime: Runtime = await createRuntime({ agents: [counter], residentCap: 8, runningCap: 3, store });
  let turns = 0;
  let fenced = 0;
  runtime.on('turn.finished', () => void turns++);
  runtime.on('error', (e) => {
    if (e.error instanceof FencedError) fenced++;
    process.stderr.write(`[${name}] error ${e.where}: ${e.error.message}\n`);
  });
  out({ ready: runtime.stats().cluster?.member });
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
    runtime.stop().then(
      () => {
        out({ stats: { turns, fenced, stopped: true } });
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`[${name}] stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  });

  const ids = agentIds();
  // Operations not answered yet (a diagnostic: one stuck for seconds is printed).
  const outstanding = new Map<string, { to: string; ask: boolean; since: number }>();
  const watch = setInterval(() => {
    const stuck = [...outstanding].filter(([, o]) => Date.now() - o.since > 3_000);
    if (stuck.length > 0) out({ stuck: stuck.slice(0, 5).map(([mid, o]) => ({ mid, ...o, owned: runtime.stats().cluster?.owned })) });
  }, 1_000);
  watch.unref();
  // SIGUSR1: what is in memory here (a diagnostic for a test that waits too long).
  process.on('SIGUSR1', () => {
    const internals = (runtime as unknown as Record<symbol, () => RuntimeInternals>)[INTERNALS]!();
    out({ dump: { stats: runtime.stats(), agents: internals.agents() } });
  });
  let sending = true;
  process.on('SIGUSR2', () => void (sending = false));
  let n = 0;
  while (!stopping && sending) {
    // A few sends at once (group commit), one after the other per batch (call order).
    const batch = Array.from({ length: 4 }, () => {
      const to = ids[Math.floor(rand() * ids.length)]!;
      const mid = `${name}-${n++}`;
      const forward = rand() < 0.1 ? { forwardTo: ids[Math.floor(rand() * ids.length)]! } : {};
      const message = { type: 'inc', mid, delay: Math.floor(rand() * 5), ...forward };
      const ask = rand() < 0.05;
      outstanding.set(mid, { to, ask, since: Date.now() });
      const done = () => outstanding.delete(mid);
      if (ask) {
        return runtime.ask(to, message).then(
          (r) => (done(), out({ ack: to, mid, ask: true, answer: (r.state as CountState).count })),
          (err: unknown) => (done(), out({ askFailed: to, mid, error: String((err as Error).message ?? err) })),
        );
      }
      return runtime.send(to, message).then((r) => (done(), out({ ack: to, mid, seq: r.seq })), (err: unknown) => {
        done();
        throw err;
      });
    });
    await Promise.all(batch).catch((err: unknown) => process.stderr.write(`[${name}] send failed: ${String(err)}\n`));
    await new Promise<void>((r) => setTimeout(r, 5));
  }
  out({ sent: true });
  // Stay a member (running turns for the shards it owns) until told to stop.
  setInterval(() => out({ alive: turns, owned: runtime.stats().cluster?.owned }), 500);
}

main().catch((err: unknown) => {
  process.stderr.write(`member failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
