/**
 * The crash test (invariant 4 across process death): a worker process (worker.ts) churns
 * messages through a small runtime on a SQLite file and is killed with SIGKILL at a random
 * moment; a second worker recovers on the same file and drains every pending message.
 * Then the file is read back with sqliteStore and checked:
 *
 * (a) every ACKed message is stored exactly once (one `accepted` entry in its agent's
 *     rollout) and handled exactly once (one `turn.finished` for its seq); the outcome is
 *     what the message asked for (`done`, or `failed` for a planned failure) or `crashed`,
 *     and `crashed` only for a turn that was in flight at the kill (read from a copy of
 *     the file taken right after the kill); every such turn is recorded `crashed`;
 *     nothing is pending after recovery. A third of the kill points crash a second time,
 *     during recovery (after some of its turns): its in-flight turns are allowed
 *     `crashed` too, and none of the first kill's turns may be in flight again;
 *     per agent, turns never overlap (turn.started / turn.finished alternate, same seq);
 * (b) per agent, the `turn.finished` seqs are strictly increasing and equal the accepted
 *     seqs in order; the worker's own messages were accepted in call order, and what is
 *     durable of them is a prefix of what it sent (group commits are atomic);
 * (c) every snapshot reads back, and a fromTurn agent's count equals its `done` turns and
 *     its `last` mids are those of its last `done` turns;
 * (d) messages sent by turns to other agents exist exactly when their turn was `done`
 *     (atomic outbox), once, and were handled exactly once; so do the sub-agents spawned
 *     by turns (with their parent) and the message each got from its parent's turn.
 *
 * Seeds: CRASH_SEED=<n> sets the first seed (kill point i uses n + i), CRASH_KILLS the
 * number of kill points, CRASH_PARALLEL how many run at once. Each seed decides the
 * worker's messages and the kill point (the moment still depends on the machine's timing).
 * Reproduce one: CRASH_SEED=<seed> CRASH_KILLS=1 npx vitest run test/crash
 *
 * Writers: each kill point's seed also picks where each process's store writes, in the
 * event loop or on a writer thread (`sqliteStore(path, { writer: 'thread' })`), for the
 * churn and for the recoveries apart (the log line's `writers=churn/recovery`): a kill
 * lands mid-transaction on either, and a file is recovered by the other kind too.
 */
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import type { AgentRecord, ListResult, Message, RolloutEntry } from '../../src/store/Store.js';
import { LAST, RUNNING_CAP, agentIds, plan, prng, type WorkState } from './worker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

const KILLS = Number(process.env.CRASH_KILLS ?? 50);
/** Kill points of the run with history pruning on. */
const PRUNED_KILLS = Number(process.env.CRASH_PRUNED_KILLS ?? 12);
const PARALLEL = Number(process.env.CRASH_PARALLEL ?? 2);
const FIRST_SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 1_000_000_000));
/** A safety bound on one worker run (it normally takes a second or two), not a timing assertion. */
const WORKER_BOUND_MS = 90_000;

interface WorkerRun {
  lines: string[];
  acks: { agentId: string; mid: string }[];
  code: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
  stderr: string;
}

/** Where a worker's store writes: in the event loop (`main`) or on a writer thread (`thread`). */
type Writer = 'main' | 'thread';

/** Runs the worker; kills it with SIGKILL once it printed `killAfter` lines (when given). */
function runWorker(
  db: string,
  seed: number,
  phase: 'churn' | 'recover',
  killAfter: number | null,
  keepTurns: number | null,
  writer: Writer,
): Promise<WorkerRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, db, String(seed), phase], {
      cwd: ROOT,
      env: { ...process.env, CRASH_WRITER: writer, ...(keepTurns === null ? {} : { CRASH_KEEP_TURNS: String(keepTurns) }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: WorkerRun = { lines: [], acks: [], code: null, signal: null, killed: false, stderr: '' };
    const bound = setTimeout(() => {
      run.stderr += `\n[test] worker ${phase} still running after ${WORKER_BOUND_MS} ms: killed`;
      child.kill('SIGKILL');
    }, WORKER_BOUND_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (run.stderr += d));
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      run.lines.push(line);
      const m = /^ACK (\S+) (\S+)$/.exec(line);
      if (m) run.acks.push({ agentId: m[1]!, mid: m[2]! });
      if (killAfter !== null && !run.killed && run.lines.length >= killAfter) {
        run.killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    // 'close': the process exited and its stdout is fully read.
    child.on('close', (code, signal) => {
      clearTimeout(bound);
      run.code = code;
      run.signal = signal;
      resolve(run);
    });
  });
}

/**
 * The turns in flight at the kill and the number of pending messages, read from a copy
 * of the file (the original stays exactly as the crash left it).
 */
async function atKill(dir: string, db: string): Promise<{ inFlight: { agentId: string; seq: number }[]; pending: number }> {
  const copy = path.join(dir, 'at-kill.db');
  for (const suffix of ['', '-wal']) {
    fs.rmSync(copy + suffix, { force: true });
    if (fs.existsSync(db + suffix)) fs.copyFileSync(db + suffix, copy + suffix);
  }
  fs.rmSync(`${copy}-shm`, { force: true });
  const store = sqliteStore(copy);
  try {
    let pending = 0;
    for (const id of await store.agentsWithPending()) pending += await store.mailboxSize(id);
    return { inFlight: await store.turnsInFlight(), pending };
  } finally {
    await store.close();
  }
}

interface PointResult {
  seed: number;
  killAfter: number;
  /** The writers of the churn and of the recoveries. */
  writers: string;
  killed: boolean;
  recoverKilled: boolean;
  acks: number;
  durable: number;
  turns: number;
  crashed: number;
  failed: number;
  forwarded: number;
  /** Durable timers scheduled by done turns (each fired exactly once). */
  reminded: number;
  spawned: number;
  /** `turn.finished` events with outcome `crashed` that the recovering workers saw through runtime.on. */
  crashedEvents: number;
  evictions: number;
  loads: number;
  problems: string[];
  dir: string;
}

type Accepted = Extract<RolloutEntry, { kind: 'accepted' }>;
type Finished = Extract<RolloutEntry, { kind: 'turn.finished' }>;

async function killPoint(seed: number, keepTurns: number | null = null): Promise<PointResult> {
  const rnd = prng(seed ^ 0x6b111);
  // Lines: READY, 30 × SPAWNED, then ACKs. Mostly mid-churn; sometimes during startup.
  const killAfter = rnd() < 0.1 ? 1 + Math.floor(rnd() * 31) : 31 + 5 + Math.floor(rnd() * 196);
  // A third of the points crash again during recovery, somewhere in it (a fraction of its lines).
  const recoverKill = rnd() < 1 / 3 ? rnd() : null;
  // The store's writer, per process: the churn's, then the recoveries' (each file written by both kinds in turn, too).
  const churnWriter: Writer = rnd() < 0.5 ? 'main' : 'thread';
  const recoverWriter: Writer = rnd() < 0.5 ? 'main' : 'thread';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'residency-crash-'));
  const db = path.join(dir, 'residency.db');
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < 30) problems.push(text);
  };
  const result: PointResult = {
    seed, killAfter, writers: `${churnWriter}/${recoverWriter}`, killed: false, recoverKilled: false, acks: 0, durable: 0, turns: 0, crashed: 0, failed: 0, forwarded: 0, reminded: 0, spawned: 0, crashedEvents: 0, evictions: 0, loads: 0, problems, dir,
  };

  const churn = await runWorker(db, seed, 'churn', killAfter, keepTurns, churnWriter);
  result.killed = churn.signal === 'SIGKILL';
  result.acks = churn.acks.length;
  if (!result.killed && !(churn.code === 0 && churn.lines.at(-1)?.startsWith('DONE'))) {
    problem(`churn exited with code ${churn.code} signal ${churn.signal}: ${churn.stderr.slice(0, 2000)}`);
    return result;
  }
  if (churn.stderr.includes('runtime error')) problem(`churn reported runtime errors: ${churn.stderr.slice(0, 2000)}`);
  if (!fs.existsSync(db)) {
    problem('the database file does not exist after the churn phase');
    return result;
  }
  const { inFlight, pending } = await atKill(dir, db);
  if (inFlight.length > RUNNING_CAP) problem(`${inFlight.length} turns were in flight at the kill, more than runningCap ${RUNNING_CAP}: ${JSON.stringify(inFlight)}`);
  const inFlightKeys = new Set(inFlight.map((t) => `${t.agentId}#${t.seq}`));

  // Sometimes a second crash, somewhere in the first recovery.
  if (recoverKill !== null && pending > 0) {
    // Lines of recovery: READY, 30 × SPAWNED, then one FIN per turn (pending ones, and those they send).
    const first = await runWorker(db, seed, 'recover', 1 + Math.floor(recoverKill * (31 + pending)), keepTurns, recoverWriter);
    result.recoverKilled = first.signal === 'SIGKILL';
    if (!result.recoverKilled && (first.code !== 0 || !first.lines.at(-1)?.startsWith('DONE'))) {
      problem(`first recover exited with code ${first.code} signal ${first.signal}: ${first.stderr.slice(0, 2000)}`);
      return result;
    }
    result.crashedEvents += first.lines.filter((l) => /^FIN \S+ \d+ crashed$/.test(l)).length;
    if (first.stderr.includes('runtime error')) problem(`first recover reported runtime errors: ${first.stderr.slice(0, 2000)}`);
    if (result.recoverKilled) {
      const { inFlight: again } = await atKill(dir, db);
      if (again.length > RUNNING_CAP) problem(`${again.length} turns were in flight at the second kill: ${JSON.stringify(again)}`);
      for (const t of again) {
        const key = `${t.agentId}#${t.seq}`;
        if (inFlightKeys.has(key)) problem(`${key} was in flight at the first kill and again at the second: recovery re-ran it`);
        inFlightKeys.add(key);
      }
    }
  }

  const recover = await runWorker(db, seed, 'recover', null, keepTurns, recoverWriter);
  if (recover.code !== 0 || !recover.lines.at(-1)?.startsWith('DONE')) {
    problem(`recover exited with code ${recover.code} signal ${recover.signal}, last line ${JSON.stringify(recover.lines.at(-1))}: ${recover.stderr.slice(0, 2000)}`);
    return result;
  }
  result.crashedEvents += recover.lines.filter((l) => /^FIN \S+ \d+ crashed$/.test(l)).length;
  if (recover.stderr.includes('runtime error')) problem(`recover reported runtime errors: ${recover.stderr.slice(0, 2000)}`);
  if (keepTurns !== null) {
    // The history was pruned as it grew: check by the counters, which retention never
    // touches (every accepted message has exactly one turn, the state counts the done ones).
    checkCounters(db, result, problem);
    if (problems.length === 0) fs.rmSync(dir, { recursive: true, force: true });
    return result;
  }

  // --- read everything back -------------------------------------------------------
  const planned = plan(seed);
  const store = sqliteStore(db);
  try {
    if ((await store.agentsWithPending()).length > 0) problem(`messages still pending after recovery: ${JSON.stringify(await store.agentsWithPending())}`);
    if ((await store.turnsInFlight()).length > 0) problem(`turns still in flight after recovery: ${JSON.stringify(await store.turnsInFlight())}`);

    /** Where each mid was accepted: agent, seq, message, outcome. */
    const byMid = new Map<string, { agentId: string; seq: number; message: Message; outcome: string | undefined }[]>();
    // Every agent: the worker's 30 and the sub-agents spawned by turns.
    const records = new Map<string, AgentRecord>();
    for (let cursor: string | null = null; ; ) {
      const page: ListResult = await store.listAgents({ limit: 100, cursor });
      for (const r of page.agents) records.set(r.id, r);
      if ((cursor = page.cursor) === null) break;
    }
    for (const id of agentIds()) if (!records.has(id)) problem(`agent ${id} does not exist after recovery`);
    for (const id of records.keys()) {
      if (!agentIds().includes(id) && !/^c-p0-\d+$/.test(id)) problem(`unexpected agent ${id}`);
    }
    for (const id of records.keys()) {
      const rollout = await store.rollout(id);
      const accepted = rollout.filter((e): e is Accepted => e.kind === 'accepted');
      const finished = rollout.filter((e): e is Finished => e.kind === 'turn.finished');
      const started = rollout.filter((e) => e.kind === 'turn.started');
      result.evictions += rollout.filter((e) => e.kind === 'note' && e.note === 'evicted').length;
      result.loads += rollout.filter((e) => e.kind === 'note' && e.note === 'loaded').length;
      if ((await store.pending(id)).length > 0) problem(`${id}: mailbox not empty after recovery`);

      // (b) exactly once, in acceptance order.
      const acceptedSeqs = accepted.map((e) => e.seq);
      const finishedSeqs = finished.map((e) => e.seq);
      acceptedSeqs.forEach((s, i) => {
        if (s !== i + 1) problem(`${id}: accepted seqs are not 1, 2, 3…: ${JSON.stringify(acceptedSeqs)}`);
      });
      for (let i = 1; i < finishedSeqs.length; i++) {
        if (finishedSeqs[i]! <= finishedSeqs[i - 1]!) {
          problem(`${id}: turn.finished seqs not strictly increasing at #${i}: ${JSON.stringify(finishedSeqs)}`);
          break;
        }
      }
      if (JSON.stringify(acceptedSeqs) !== JSON.stringify(finishedSeqs)) {
        problem(`${id}: turn.finished seqs ${JSON.stringify(finishedSeqs)} differ from accepted seqs ${JSON.stringify(acceptedSeqs)}`);
      }
      // One turn at a time: started(s) finished(s) pairs, in order (a crashed turn is
      // recorded by recovery before any other turn of the agent starts).
      const turnLog = rollout.filter((e) => e.kind === 'turn.started' || e.kind === 'turn.finished') as (Finished | Extract<RolloutEntry, { kind: 'turn.started' }>)[];
      for (let i = 0; i < turnLog.length; i++) {
        const e = turnLog[i]!;
        const want = i % 2 === 0 ? 'turn.started' : 'turn.finished';
        if (e.kind !== want || (i % 2 === 1 && e.seq !== turnLog[i - 1]!.seq)) {
          problem(`${id}: turns overlap or are unpaired at entry ${i}: ${JSON.stringify(turnLog.slice(Math.max(0, i - 2), i + 2).map((x) => `${x.kind}#${x.seq}`))}`);
          break;
        }
      }
      const startCount = new Map<number, number>();
      for (const e of started) startCount.set(e.seq, (startCount.get(e.seq) ?? 0) + 1);
      for (const s of acceptedSeqs) {
        if (startCount.get(s) !== 1) problem(`${id}: message #${s} has ${startCount.get(s) ?? 0} turn.started entries, expected 1`);
      }

      const outcomeOf = new Map<number, string>();
      for (const f of finished) if (!outcomeOf.has(f.seq)) outcomeOf.set(f.seq, f.outcome);
      const done: string[] = [];
      let lastP0 = -1;
      for (const a of accepted) {
        const mid = String(a.message.mid);
        const outcome = outcomeOf.get(a.seq);
        const list = byMid.get(mid) ?? [];
        list.push({ agentId: id, seq: a.seq, message: a.message, outcome });
        byMid.set(mid, list);
        result.turns++;
        // (a) the outcome is what the message asked for, or crashed when in flight at the kill.
        const key = `${id}#${a.seq}`;
        const expected = a.message.fail === true ? 'failed' : 'done';
        if (outcome === 'crashed') {
          result.crashed++;
          if (!inFlightKeys.has(key)) problem(`${id}: message #${a.seq} (${mid}) was recorded crashed but was not in flight at the kill`);
        } else if (outcome !== expected) {
          problem(`${id}: message #${a.seq} (${mid}) finished ${String(outcome)}, expected ${expected}`);
        }
        if (inFlightKeys.has(key) && outcome !== 'crashed') problem(`${id}: message #${a.seq} (${mid}) was in flight at the kill but finished ${String(outcome)}, not crashed`);
        if (outcome === 'failed') result.failed++;
        if (outcome === 'done') done.push(mid);
        // The worker's messages: accepted in call order, as planned.
        const p0 = /^p0-(\d+)$/.exec(mid);
        if (p0) {
          const i = Number(p0[1]);
          if (i <= lastP0) problem(`${id}: worker message ${mid} accepted after p0-${lastP0} (call order broken)`);
          lastP0 = i;
          const want = planned[i];
          if (!want || want.to !== id || JSON.stringify(want.message) !== JSON.stringify(a.message)) {
            problem(`${id}: stored message ${JSON.stringify(a.message)} is not the planned ${JSON.stringify(want)}`);
          }
        }
      }

      // (c) the snapshot reads back and agrees with the done turns.
      const snapshot = (await store.loadSnapshot(id)) as { context?: { state?: WorkState } } | null;
      if (snapshot === null) {
        if (done.length > 0) problem(`${id}: no snapshot after ${done.length} done turns`);
      } else {
        const state = snapshot.context?.state;
        if (!state || state.count !== done.length) {
          problem(`${id}: snapshot count ${JSON.stringify(state?.count)} but ${done.length} done turns`);
        } else if (JSON.stringify(state.last) !== JSON.stringify(done.slice(-LAST))) {
          problem(`${id}: snapshot last ${JSON.stringify(state.last)} but the last done turns are ${JSON.stringify(done.slice(-LAST))}`);
        }
      }
    }

    // (a) every ACKed message stored once, at the agent it was sent to (and handled: above).
    for (const { agentId, mid } of churn.acks) {
      const at = byMid.get(mid) ?? [];
      if (at.length !== 1 || at[0]!.agentId !== agentId) {
        problem(`ACKed ${mid} to ${agentId} is stored ${at.length} times: ${JSON.stringify(at.map((x) => `${x.agentId}#${x.seq}`))}`);
      }
    }
    // Group commits are atomic and in call order: the durable worker messages are a prefix of the plan.
    const durable = [...byMid.keys()].filter((m) => m.startsWith('p0-')).map((m) => Number(m.slice(3))).sort((x, y) => x - y);
    result.durable = durable.length;
    durable.forEach((n, i) => {
      if (n !== i) problem(`durable worker messages are not a prefix of the plan: p0-${i} is missing but p0-${n} is stored`);
    });
    const lastAck = Math.max(-1, ...churn.acks.map((a) => Number(a.mid.slice(3))));
    if (durable.length <= lastAck) problem(`p0-${lastAck} was ACKed but only ${durable.length} worker messages are stored`);

    // (d) messages between agents: exactly one per done turn that forwarded, none otherwise;
    // sub-agents exist exactly for the done turns that spawned them, with their message.
    for (const [mid, at] of byMid) {
      if (at.length !== 1) problem(`${mid} accepted ${at.length} times: ${JSON.stringify(at.map((x) => `${x.agentId}#${x.seq}`))}`);
      const origin = at[0]!;
      if (mid.startsWith('c:')) {
        const from = byMid.get(mid.slice(2))?.[0];
        if (origin.agentId !== `c-${mid.slice(2)}` || !from || from.outcome !== 'done' || from.message.spawnChild !== true) {
          problem(`${mid} at ${origin.agentId} has no done turn that spawned its agent (origin ${JSON.stringify(from)})`);
        }
        continue;
      }
      if (origin.message.spawnChild === true) {
        const child = records.get(`c-${mid}`);
        const sent = byMid.get(`c:${mid}`) ?? [];
        if (origin.outcome === 'done') {
          result.spawned++;
          if (!child || child.parent !== origin.agentId || child.type !== 'work') {
            problem(`${mid} (done) should have spawned c-${mid} with parent ${origin.agentId}; found ${JSON.stringify(child)}`);
          }
          if (sent.length !== 1 || sent[0]!.agentId !== `c-${mid}`) problem(`${mid} (done) should have sent c:${mid} to c-${mid} once; found ${JSON.stringify(sent)}`);
        } else if (child || sent.length > 0) {
          problem(`${mid} finished ${String(origin.outcome)} yet c-${mid} exists or got its message`);
        }
      }
      if (mid.startsWith('r:')) {
        // A durable timer's message: at the agent whose done turn scheduled it.
        const from = byMid.get(mid.slice(2))?.[0];
        if (!from || from.outcome !== 'done' || typeof from.message.remindIn !== 'number' || from.agentId !== origin.agentId) {
          problem(`${mid} at ${origin.agentId} has no done turn that scheduled it (origin ${JSON.stringify(from)})`);
        }
        continue;
      }
      if (typeof origin.message.remindIn === 'number') {
        const fired = byMid.get(`r:${mid}`) ?? [];
        if (origin.outcome === 'done') {
          result.reminded++;
          if (fired.length !== 1 || fired[0]!.agentId !== origin.agentId) problem(`${mid} (done) should have had its timer fire once; found ${JSON.stringify(fired)}`);
        } else if (fired.length > 0) {
          problem(`${mid} finished ${String(origin.outcome)} yet its timer fired`);
        }
      }
      if (mid.startsWith('f:')) {
        const from = byMid.get(mid.slice(2))?.[0];
        if (!from || from.outcome !== 'done' || from.message.forwardTo !== origin.agentId) {
          problem(`${mid} at ${origin.agentId} has no done turn that sent it (origin ${JSON.stringify(from)})`);
        }
        continue;
      }
      if (typeof origin.message.forwardTo !== 'string') continue;
      const sent = byMid.get(`f:${mid}`) ?? [];
      if (origin.outcome === 'done') {
        result.forwarded++;
        if (sent.length !== 1 || sent[0]!.agentId !== origin.message.forwardTo) {
          problem(`${mid} (done) should have sent f:${mid} to ${origin.message.forwardTo} once; found ${JSON.stringify(sent.map((x) => `${x.agentId}#${x.seq}`))}`);
        }
      } else if (sent.length > 0) {
        problem(`${mid} finished ${String(origin.outcome)} yet its message f:${mid} was delivered`);
      }
    }
  } finally {
    await store.close();
  }
  if (problems.length === 0) fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

/** Exactly once, by the counters of every agent (what retention never prunes). */
function checkCounters(db: string, result: PointResult, problem: (text: string) => void): void {
  const raw = new Database(db, { readonly: true });
  try {
    const rows = raw.prepare('SELECT id, last_seq, turns, failed, crashed, interrupted, mailbox FROM agents').all() as {
      id: string; last_seq: number; turns: number; failed: number; crashed: number; interrupted: number; mailbox: number;
    }[];
    let rollout = 0;
    for (const r of rows) {
      result.turns += r.turns;
      result.crashed += r.crashed;
      result.failed += r.failed;
      if (r.mailbox !== 0) problem(`${r.id}: ${r.mailbox} messages still pending after recovery`);
      if (r.turns !== r.last_seq) problem(`${r.id}: ${r.last_seq} messages accepted but ${r.turns} turns recorded`);
      const text = raw.prepare('SELECT snapshot FROM snapshots WHERE agent_id = ?').pluck().get(r.id) as string | undefined;
      const done = r.turns - r.failed - r.crashed - r.interrupted;
      const count = text === undefined ? 0 : (JSON.parse(text) as { context: { state: WorkState } }).context.state.count;
      if (count !== done) problem(`${r.id}: snapshot count ${count} but ${done} done turns by the counters`);
      rollout += raw.prepare("SELECT count(*) FROM rollout WHERE agent_id = ? AND entry LIKE '%turn.finished%'").pluck().get(r.id) as number;
    }
    result.durable = rollout; // turn records kept (pruned)
  } finally {
    raw.close();
  }
}

describe('crash: SIGKILL at random moments, then recovery on the same SQLite file', () => {
  it(`keeps every accepted message handled exactly once, in order, across ${KILLS} kill points`, { timeout: 360_000 }, async () => {
    const started = Date.now();
    const seeds = Array.from({ length: KILLS }, (_, i) => FIRST_SEED + i);
    const results: PointResult[] = [];
    let next = 0;
    const lane = async () => {
      while (next < seeds.length) {
        const seed = seeds[next++]!;
        const r = await killPoint(seed);
        console.log(
          `crash seed=${seed} killAfter=${r.killAfter} writers=${r.writers} killed=${r.killed} recoverKilled=${r.recoverKilled} acks=${r.acks} durable=${r.durable} turns=${r.turns} ` +
            `crashed=${r.crashed} failed=${r.failed} forwarded=${r.forwarded} reminded=${r.reminded} spawned=${r.spawned} evictions=${r.evictions} loads=${r.loads}` +
            (r.problems.length > 0 ? ` PROBLEMS (db kept in ${r.dir}):\n  ${r.problems.join('\n  ')}` : ''),
        );
        results.push(r);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, lane));
    const sum = (f: (r: PointResult) => number) => results.reduce((n, r) => n + f(r), 0);
    console.log(
      `crash summary: ${results.length} kill points (${sum((r) => (r.killed ? 1 : 0))} killed, ` +
        `${sum((r) => (r.recoverKilled ? 1 : 0))} killed again during recovery; ` +
        `writers churn/recovery: ${['main/main', 'main/thread', 'thread/main', 'thread/thread'].map((w) => `${w} ${sum((r) => (r.writers === w ? 1 : 0))}`).join(', ')}), ${sum((r) => r.acks)} ACKs checked, ` +
        `${sum((r) => r.turns)} turns, ${sum((r) => r.crashed)} crashed turns (${sum((r) => r.crashedEvents)} crashed turn.finished events seen by runtime.on), ${sum((r) => r.failed)} failed, ` +
        `${sum((r) => r.forwarded)} forwarded, ${sum((r) => r.reminded)} timers fired, ${sum((r) => r.spawned)} sub-agents spawned, ${sum((r) => r.evictions)} evictions, ${sum((r) => r.loads)} loads, ` +
        `first seed ${FIRST_SEED}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    const failing = results.filter((r) => r.problems.length > 0);
    expect(
      failing.map((r) => `seed ${r.seed}: ${r.problems.join(' | ')}`),
      `failing seeds: ${failing.map((r) => r.seed).join(', ')}`,
    ).toEqual([]);
    expect(sum((r) => (r.killed ? 1 : 0))).toBe(results.length);
  });

  it('with history pruning on (keepTurns 3), nothing is lost or doubled: checked by the counters', { timeout: 240_000 }, async () => {
    const seeds = Array.from({ length: PRUNED_KILLS }, (_, i) => FIRST_SEED + 10_000 + i);
    const results: PointResult[] = [];
    let next = 0;
    const lane = async () => {
      while (next < seeds.length) results.push(await killPoint(seeds[next++]!, 3));
    };
    await Promise.all(Array.from({ length: PARALLEL }, lane));
    const sum = (f: (r: PointResult) => number) => results.reduce((n, r) => n + f(r), 0);
    console.log(`crash with pruning: ${results.length} kill points, ${sum((r) => r.turns)} turns, ${sum((r) => r.durable)} turn records kept, first seed ${FIRST_SEED + 10_000}`);
    expect(sum((r) => r.durable)).toBeLessThan(sum((r) => r.turns)); // pruning did prune
    const failing = results.filter((r) => r.problems.length > 0);
    expect(failing.map((r) => `seed ${r.seed}: ${r.problems.join(' | ')}`)).toEqual([]);
  });
});
