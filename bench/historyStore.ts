/**
 * Bounded history (issue 13 §1), measured on the store alone: `npx tsx bench/historyStore.ts`.
 * A measurement, not a test: it prints numbers and checks nothing.
 *
 * On a temp SQLite file (sqliteStore, WAL, synchronous FULL), one agent receives and handles
 * 50,000 messages, each turn one group commit of its own kind would write: the message
 * appended, its turn begun, then committed with a snapshot, one output and the retention
 * policy `{ keepTurns: 1000 }`; 100 turns per transaction (group commit). 1,000 other
 * agents with one handled message each make the listings real pages. Then it prints:
 * - the database file's size while open (and its WAL's, which checkpoints bound, not the
 *   history) and after close (the WAL checkpointed into it and gone);
 * - the rows left (rollout entries and message rows of the agent) and its counters;
 * - the median time of `getAgent` + `agentStats([id])` (what `runtime.get` reads), of
 *   `listAgents({ limit: 100 })` + `agentStats` of its page (what `runtime.list` reads),
 *   of `rollout(id, { limit: 100 })` and of `mailboxSize(id)`;
 * - `destroyAgent` of the agent: the call, and the background deletion until it ends.
 * The same run with `'all'` (nothing pruned) follows, for the size and the destroy of a
 * 200,000-entry history.
 *
 * Options: `--turns N` (default 50,000), `--keep N` (default 1,000).
 */
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import type { Retention, Store, StoreOp } from '../src/store/Store.js';
import { sqlitePurged, sqliteStore } from '../src/store/sqliteStore.js';

const argv = process.argv.slice(2);
function option(name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i < 0 ? fallback : Number(argv[i + 1]);
}
const TURNS = option('--turns', 50_000);
const KEEP = option('--keep', 1_000);
const OTHERS = 1_000;
const PER_BATCH = 100;
const REPEAT = 200;

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 10; i++) await work();
  const samples: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const t0 = performance.now();
    await work();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
const ms = (t: number) => `${t.toFixed(3)} ms`;
const size = (file: string) => (fs.existsSync(file) ? fs.statSync(file).size : 0);

async function fill(store: Store, retain: Retention): Promise<number> {
  const t0 = performance.now();
  for (let first = 1; first <= TURNS; first += PER_BATCH) {
    const ops: StoreOp[] = [];
    for (let seq = first; seq < first + PER_BATCH && seq <= TURNS; seq++) {
      const at = 1_700_000_000_000 + seq;
      ops.push({
        op: 'append',
        request: { agentId: 'big', messageId: `m-${seq}`, message: { type: 'user.message', text: `message number ${seq}, some words` }, at },
      });
      ops.push({ op: 'beginTurn', agentId: 'big', seq, at });
      ops.push({
        op: 'commitTurn',
        commit: {
          agentId: 'big',
          seq,
          outcome: seq % 50 === 0 ? 'failed' : 'done',
          snapshot: { n: seq, summary: 'a state of a few hundred bytes '.repeat(6) },
          outputs: [{ reply: `answer ${seq}` }],
          retain,
          at,
          durationMs: 1,
        },
      });
    }
    await store.batch(ops);
  }
  return performance.now() - t0;
}

async function run(retain: Retention): Promise<void> {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'residency-history-'));
  const file = nodePath.join(dir, 'agents.db');
  try {
    let store = sqliteStore(file);
    const ops: StoreOp[] = [{ op: 'createAgent', record: { id: 'big', type: 'chat', parent: null, pinned: false, input: null, createdAt: 0 } }];
    for (let i = 0; i < OTHERS; i++) {
      const id = `agent-${String(i).padStart(4, '0')}`;
      ops.push({ op: 'createAgent', record: { id, type: 'chat', parent: 'big', pinned: false, input: { i }, createdAt: 0 } });
      ops.push({ op: 'append', request: { agentId: id, messageId: 'm1', message: { type: 'hi' }, at: 1 } });
      ops.push({ op: 'commitTurn', commit: { agentId: id, seq: 1, outcome: 'done', snapshot: { i }, at: 2, durationMs: 1, retain } });
    }
    await store.batch(ops);
    const fillMs = await fill(store, retain);
    const open = size(file);
    const wal = size(`${file}-wal`);
    await store.close();
    const closed = size(file);

    store = sqliteStore(file);
    const rolloutRows = (await store.rollout('big')).length;
    const stats = (await store.agentStats(['big'])).get('big')!;
    const get = await timed(async () => {
      await store.getAgent('big');
      await store.agentStats(['big']);
    });
    const list = await timed(async () => {
      const page = await store.listAgents({ limit: 100 });
      await store.agentStats(page.agents.map((a) => a.id));
    });
    const rollout = await timed(() => store.rollout('big', { limit: 100 }));
    const mailbox = await timed(() => store.mailboxSize('big'));
    let t0 = performance.now();
    await store.destroyAgent('big');
    const destroy = performance.now() - t0;
    t0 = performance.now();
    await sqlitePurged(store);
    const purge = performance.now() - t0;
    await store.close();

    const policy = retain === 'all' ? "'all'" : `{ keepTurns: ${retain.keepTurns} }`;
    console.log(`\nretain ${policy}: ${TURNS.toLocaleString('en')} turns to one agent, ${OTHERS} other agents`);
    console.log(`  fill                               ${(fillMs / 1000).toFixed(2)} s (${Math.round(TURNS / (fillMs / 1000)).toLocaleString('en')} turns/s)`);
    console.log(`  database file, open (and its WAL)  ${mb(open)} (${mb(wal)})`);
    console.log(`  database after close               ${mb(closed)}`);
    console.log(`  rollout entries kept               ${rolloutRows.toLocaleString('en')}`);
    console.log(`  counters                           ${JSON.stringify(stats)}`);
    console.log(`  getAgent + agentStats              ${ms(get)}`);
    console.log(`  listAgents(100) + agentStats(page) ${ms(list)}`);
    console.log(`  rollout({ limit: 100 })            ${ms(rollout)}`);
    console.log(`  mailboxSize                        ${ms(mailbox)}`);
    console.log(`  destroyAgent (the call)            ${ms(destroy)}`);
    console.log(`  then its rows in the background    ${ms(purge)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}, medians of ${REPEAT} runs`);
await run({ keepTurns: KEEP });
await run('all');
