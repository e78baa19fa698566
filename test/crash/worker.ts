/**
 * The child process of the crash test (test/crash/crash.test.ts):
 *
 *   node --import tsx test/crash/worker.ts <dbPath> <seed> <phase>
 *
 * CRASH_WRITER=thread opens the store with its writer on a worker thread
 * (`sqliteStore(path, { writer: 'thread' })`): the kill then lands wherever that thread is,
 * mid-transaction too. Otherwise (`main`) the writes run in the event loop.
 *
 * phase `churn`: opens a runtime on the SQLite file (small caps, so agents are evicted and
 * reloaded all the time), spawns AGENTS agents (idempotent: AgentExistsError is fine), then
 * sends a stream of messages whose ids and contents come from the seed, many sends at once
 * (group commit). It prints `ACK <agentId> <mid>` only once the send promise resolved. The
 * test kills it with SIGKILL at a random moment; if it is not killed it drains and prints
 * `DONE`.
 *
 * phase `recover`: opens the same file (recovery runs: turns in flight become `crashed`,
 * agents with pending messages are scheduled), sends nothing, waits until no message is
 * pending, prints `DONE` and exits 0 after `runtime.stop()`. It prints `FIN <agentId> <seq>
 * <outcome>` for every turn that ends, so the test can kill it again mid-recovery.
 *
 * Every message says what its turn does, decided by the sender from the seed, so the test
 * can check the outcome from the message alone:
 *   { type: 'work', mid, delay, fail?, forwardTo?, spawnChild? }
 * - `delay` (0–5): the turn awaits a setTimeout of that many ms (simulated work);
 * - `fail`: the turn throws (outcome `failed`, state unchanged, nothing sent);
 * - `forwardTo`: the turn sends `{ type: 'work', mid: 'f:' + mid, delay }` to that agent
 *   (delivered when the turn commits, exactly once);
 * - `spawnChild`: the turn spawns the agent `c-<mid>` (parent: this agent) and sends it
 *   `{ type: 'work', mid: 'c:' + mid }` (both created atomically with the commit).
 * - `remindIn` (1–15): the turn schedules `{ type: 'work', mid: 'r:' + mid }` to its own
 *   agent in that many ms (a durable timer, committed with the turn): it must arrive
 *   exactly once, whatever the kills, and only for a done turn.
 * The agent's state is `{ count, last }`: turns done and the mids of the last LAST of them.
 */
import { createRuntime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { AgentExistsError } from '../../src/errors.js';
import { fromTurn } from '../../src/fromTurn.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import type { Message } from '../../src/store/Store.js';
import { prng } from '../../src/prng.js';

export const AGENTS = 30;
export const RESIDENT_CAP = 4;
export const RUNNING_CAP = 2;
/** Messages sent by the churn phase when it is not killed first. */
export const CHURN_MESSAGES = 700;
/** How many mids of the last turns the state keeps. */
export const LAST = 4;

export const agentIds = (): string[] => Array.from({ length: AGENTS }, (_, i) => `a${String(i).padStart(2, '0')}`);

export interface WorkState {
  count: number;
  last: string[];
}

export { prng };

const work = defineAgent({
  type: 'work',
  logic: fromTurn<WorkState>(
    async ({ state, message, send, spawn, schedule }) => {
      const delay = typeof message.delay === 'number' ? message.delay : 0;
      if (delay > 0) await new Promise<void>((r) => setTimeout(r, delay));
      if (message.fail === true) throw new Error(`planned failure of ${String(message.mid)}`);
      if (typeof message.forwardTo === 'string') {
        send(message.forwardTo, { type: 'work', mid: `f:${String(message.mid)}`, delay: delay === 0 ? 0 : 1 });
      }
      if (message.spawnChild === true) {
        // A sub-agent, created with the commit of this turn, and a first message for it.
        const child = spawn('work', { id: `c-${String(message.mid)}` });
        send(child, { type: 'work', mid: `c:${String(message.mid)}`, delay: 0 });
      }
      if (typeof message.remindIn === 'number') {
        schedule({ type: 'work', mid: `r:${String(message.mid)}`, delay: 0 }, { delay: message.remindIn, key: `r:${String(message.mid)}` });
      }
      return { count: state.count + 1, last: [...state.last, String(message.mid)].slice(-LAST) };
    },
    { initialState: { count: 0, last: [] } },
  ),
});

/** The churn phase's messages, in send order: all of them follow from the seed. */
export function plan(seed: number): { to: string; message: Message }[] {
  const rnd = prng(seed);
  const ids = agentIds();
  const hot = ids.slice(0, 6);
  const pick = (list: string[]) => list[Math.floor(rnd() * list.length)]!;
  return Array.from({ length: CHURN_MESSAGES }, (_, i) => {
    const to = rnd() < 0.4 ? pick(hot) : pick(ids);
    const r = rnd();
    const message: Message = { type: 'work', mid: `p0-${i}`, delay: r < 0.5 ? 0 : Math.floor(rnd() * 6) };
    const x = rnd();
    if (x < 0.06) message.fail = true;
    else if (x < 0.3) message.forwardTo = pick(ids);
    else if (x < 0.34) message.spawnChild = true;
    else if (x < 0.42) message.remindIn = 1 + Math.floor(rnd() * 15);
    return { to, message };
  });
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  const [dbPath, seedText, phase] = process.argv.slice(2);
  const seed = Number(seedText);
  if (!dbPath || !Number.isInteger(seed) || (phase !== 'churn' && phase !== 'recover')) {
    process.stderr.write('usage: node --import tsx test/crash/worker.ts <dbPath> <seed> <churn|recover>\n');
    process.exit(64);
  }
  const store = sqliteStore(dbPath, { writer: process.env.CRASH_WRITER === 'thread' ? 'thread' : 'main' });
  // CRASH_KEEP_TURNS: history retention on (the crash test's run with pruning).
  const keep = process.env.CRASH_KEEP_TURNS;
  const history = keep === undefined ? 'all' : { keepTurns: Number(keep) };
  const runtime = await createRuntime({ agents: [work], residentCap: RESIDENT_CAP, runningCap: RUNNING_CAP, store, history });
  const errors: unknown[] = [];
  runtime.on('error', (e) => errors.push(e.error));
  let finished = 0;
  let wake: (() => void) | null = null;
  runtime.on('turn.finished', (e) => {
    finished++;
    // In recovery the test may kill again after some turns (a crash during recovery).
    if (phase === 'recover') say(`FIN ${e.id} ${e.seq} ${e.outcome}`);
    wake?.();
  });
  say('READY');

  // Spawning is idempotent across restarts (a kill may land in the middle of it).
  for (const id of agentIds()) {
    try {
      await runtime.spawn('work', { id });
    } catch (err) {
      if (!(err instanceof AgentExistsError)) throw err;
    }
    say(`SPAWNED ${id}`);
  }

  if (phase === 'churn') {
    const rnd = prng(seed ^ 0x5eed);
    const concurrency = 4 + Math.floor(rnd() * 29); // sends in flight at once
    // Acked but unhandled messages allowed: mostly small (constant eviction), sometimes a
    // large backlog so that recovery finds many agents with mail.
    const backlog = rnd() < 0.3 ? 150 + Math.floor(rnd() * 250) : 8 + Math.floor(rnd() * 50);
    const messages = plan(seed);
    let next = 0;
    let acked = 0;
    let inFlight = 0;
    const settled: Promise<void>[] = [];
    while (next < messages.length) {
      while (inFlight >= concurrency || acked + inFlight - finished > backlog) {
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
      const { to, message } = messages[next++]!;
      inFlight++;
      settled.push(
        runtime.send(to, message).then(() => {
          inFlight--;
          acked++;
          say(`ACK ${to} ${String(message.mid)}`);
          wake?.();
        }),
      );
      // Let a few sends gather before the next one (group commit), sometimes.
      if (rnd() < 0.2) await new Promise<void>((r) => setImmediate(r));
    }
    await Promise.all(settled);
  }

  // Drain: every pending message handled and every timer fired (bounded).
  const deadline = Date.now() + 60_000; // the test's bound on a worker run is 90 s
  for (;;) {
    if ((await store.agentsWithPending()).length === 0 && (await store.nextDeadline()) === null) break;
    if (Date.now() > deadline) {
      const stuck = await store.agentsWithPending();
      say(`STUCK ${stuck.join(',')} ${JSON.stringify(runtime.stats())}`);
      process.exit(2);
    }
    await new Promise<void>((r) => setTimeout(r, 10));
  }
  await runtime.stop();
  for (const e of errors) process.stderr.write(`runtime error: ${e instanceof Error ? e.stack : String(e)}\n`);
  say(`DONE ${finished} ${errors.length}`);
  process.exit(0);
}

// Only as a program: the test imports plan() and the constants.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
