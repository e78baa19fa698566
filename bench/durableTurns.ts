/**
 * Durable turns: how many turns per second the runtime finishes on `sqliteStore` (a real
 * temp file, WAL, synchronous FULL) when 4,000 messages arrive at once for 64 resident
 * agents, against bare better-sqlite3 writing the rows those turns write, in the same run.
 *
 * Runtime side: 64 agents of a trivial `fromTurn` logic (`{ n: state.n + 1 }`), all spawned,
 * loaded and resident before anything is measured (residentCap 64). A round sends 4,000
 * messages round-robin over the 64 agents, `send` without await in one synchronous loop,
 * and ends when 4,000 more `turn.finished` events have been seen: from the first send until
 * every turn finished. runningCap 64 and 8; each on `sqliteStore(file, { writer: 'main' })`
 * (writes on the event loop) and on `sqliteStore(file, { writer: 'thread' })` (writes on a
 * worker thread, the default).
 *
 * Bare side: the statements sqliteStore (as of this bench's writing) runs for one turn,
 * on a copy of its schema (same tables, indexes, foreign keys, pragmas):
 * - accept (`append`): idempotency lookup, the agent's seq counter, the message row, the
 *   `accepted` rollout entry;
 * - `beginTurn`: the message's `started_at`, the `turn.started` rollout entry;
 * - `commitTurn`: the agent check, the message consumed, the snapshot upsert, the
 *   `snapshot` and `turn.finished` rollout entries;
 * - every write transaction first reads the owner epoch (the store's fencing check).
 * Three shapes: the snapshot upserts alone, 64 per FULL transaction (the issue's anchor);
 * all rows of 64 turns in one FULL transaction (what one group commit per batch of turns
 * writes); and the same rows in the runtime's transactions before the engine rework of
 * issue 12 (one append of 64 accepts, then one transaction per `beginTurn` and one per
 * `commitTurn`), kept as the reference the rework was measured against.
 *
 * The runtime's store calls are counted by name; `batch` calls (the write buffer's group
 * commits since the rework) also count their ops, so the report says how many
 * transactions a turn costs and how full they are.
 *
 * The shared candidate (`turnsRun`) also serves the event-loop section (bench/eventLoop.ts).
 */
import os from 'node:os';
import Database from 'better-sqlite3';
import { createRuntime, defineAgent, fromTurn, memoryStore, sqliteStore, type Runtime, type Store } from '../src/index.js';
import type { AsyncCandidate } from './candidates.js';
import { fmt, inBenchFolder } from './harness.js';
import { compareIsolated, spec, type IsolatedMeasured } from './isolated.js';

export const AGENTS = 64;
export const MESSAGES = 4_000;
export const TURNS_TARGET = 10_000;

/** The trivial turn: one increment. */
const nAgent = defineAgent({
  type: 'n',
  logic: fromTurn<{ n: number }>(({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }),
});
const GO = { type: 'go' } as const;
const turnAgentId = (i: number) => `n-${i}`;

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/**
 * Counts the calls of every method of the store by name (before the runtime sees it), so
 * the report can say how many store calls (transactions, for the writing ones) a turn made,
 * whatever methods the store has.
 */
function countCalls(store: Store): Map<string, number> {
  const counts = new Map<string, number>();
  // `batch` also counts its ops (under `batch.ops`): the size of each group commit.
  const batch = store.batch?.bind(store);
  if (batch) {
    store.batch = (ops) => {
      counts.set('batch.ops', (counts.get('batch.ops') ?? 0) + ops.length);
      return batch(ops);
    };
  }
  const names = new Set<string>();
  for (let o: object | null = store; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const name of Object.getOwnPropertyNames(o)) if (name !== 'constructor') names.add(name);
  }
  const s = store as unknown as Record<string, unknown>;
  for (const name of names) {
    const f = s[name];
    if (typeof f !== 'function') continue;
    s[name] = function (this: unknown, ...args: unknown[]) {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return (f as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  return counts;
}

export interface TurnsArg {
  /** `sqlite-thread`: sqliteStore with its writer on a worker thread (`{ writer: 'thread' }`). */
  store: 'memory' | 'sqlite' | 'sqlite-thread';
  /** sqlite stores only: the file (in a temp folder the section removes). */
  file?: string;
  runningCap: number;
  /** `broadcast`: all sends in one synchronous loop; `yield`: `await setImmediate` every 100 sends. */
  mode: 'broadcast' | 'yield';
  /** Runs the 1 ms timer and records its lateness. */
  ticker: boolean;
  /** Rounds (warm-up included) not recorded in the percentiles. */
  skipRuns: number;
}

/**
 * A runtime with 64 resident `n` agents; a round sends `ops` messages round-robin
 * without await and waits for `ops` more `turn.finished` events. With `ticker`, a
 * repeating `setTimeout(tick, 1)` records its lateness (actual − expected firing time,
 * `performance.now()`) from the first send (`yield`) or from the end of the sender's
 * synchronous loop (`broadcast`) until every turn finished: the firing pending at that
 * moment is waited for and counted (it tells how long the last stretch blocked the loop).
 */
function turnsRun(arg: TurnsArg): AsyncCandidate {
  let runtime!: Runtime;
  let counts = new Map<string, number>();
  let finished = 0;
  let failed = 0;
  let waits: { n: number; resolve: () => void }[] = [];
  let sent = 0;
  let runs = 0;
  let loadsAfterSetup = 0;
  let sendErrors = 0;
  const lateness: number[] = [];
  const senderLoops: number[] = [];
  const roundMs: number[] = [];
  let measuredTurns = 0;
  let callsBefore = new Map<string, number>();
  const until = (n: number) =>
    finished >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          waits.push({ n, resolve });
          waits.sort((a, b) => a.n - b.n);
        });

  /** Starts the 1 ms ticker; `stop()` resolves after the firing pending at that moment. */
  function startTicker(into: number[]): { stop(): Promise<void> } {
    let stopping: (() => void) | null = null;
    let expected = performance.now() + 1;
    const tick = () => {
      const now = performance.now();
      into.push(Math.max(0, now - expected));
      if (stopping) return stopping();
      expected = now + 1;
      setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
    return { stop: () => new Promise<void>((resolve) => (stopping = resolve)) };
  }

  return {
    async setup() {
      const store =
        arg.store === 'memory'
          ? memoryStore()
          : sqliteStore(arg.file!, { synchronous: 'FULL', writer: arg.store === 'sqlite-thread' ? 'thread' : 'main' });
      counts = countCalls(store);
      runtime = await createRuntime({ agents: [nAgent], store, residentCap: AGENTS, runningCap: arg.runningCap });
      runtime.on('turn.finished', (e) => {
        finished++;
        if (e.outcome !== 'done') failed++;
        while (waits.length > 0 && finished >= waits[0]!.n) waits.shift()!.resolve();
      });
      for (let i = 0; i < AGENTS; i++) await runtime.spawn('n', { id: turnAgentId(i) });
      const loaded = until(AGENTS);
      for (let i = 0; i < AGENTS; i++) void runtime.send(turnAgentId(i), GO);
      await loaded;
      sent = AGENTS;
      const s = runtime.stats();
      loadsAfterSetup = s.loads;
      if (s.resident !== AGENTS) throw new Error(`${s.resident} agents resident after setup, expected ${AGENTS}`);
    },
    async run(ops) {
      const measured = runs++ >= arg.skipRuns;
      if (measured && measuredTurns === 0) callsBefore = new Map(counts);
      const target = finished + ops;
      const done = until(target);
      const samples: number[] = [];
      const onError = () => void sendErrors++;
      const t0 = performance.now();
      let ticker: { stop(): Promise<void> } | null = null;
      if (arg.mode === 'broadcast') {
        for (let k = 0; k < ops; k++) runtime.send(turnAgentId(k % AGENTS), GO).catch(onError);
        const t1 = performance.now();
        if (measured) senderLoops.push(t1 - t0);
        if (arg.ticker) ticker = startTicker(samples);
      } else {
        if (arg.ticker) ticker = startTicker(samples);
        for (let k = 0; k < ops; k++) {
          runtime.send(turnAgentId(k % AGENTS), GO).catch(onError);
          if ((k + 1) % 100 === 0) await new Promise<void>((r) => setImmediate(r));
        }
      }
      await done;
      const t2 = performance.now();
      if (ticker) await ticker.stop();
      sent += ops;
      if (measured) {
        lateness.push(...samples);
        roundMs.push(t2 - t0);
        measuredTurns += ops;
      }
    },
    async check() {
      if (failed > 0) throw new Error(`${failed} turns failed`);
      if (sendErrors > 0) throw new Error(`${sendErrors} sends rejected`);
      // Store calls per measured turn, by method (only those called while measured; read before the checks below call the store).
      const perTurn: Record<string, number> = {};
      for (const [name, n] of counts) {
        const d = n - (callsBefore.get(name) ?? 0);
        if (d > 0 && measuredTurns > 0) perTurn[`calls.${name}`] = d / measuredTurns;
      }
      // One more message each (read back by ask): the counts include it.
      let total = 0;
      for (let i = 0; i < AGENTS; i++) total += ((await runtime.ask(turnAgentId(i), GO)).state as { n: number }).n;
      if (total !== sent + AGENTS) throw new Error(`agents counted ${total}, sent ${sent + AGENTS}`);
      const s = runtime.stats();
      if (s.loads !== loadsAfterSetup) throw new Error(`${s.loads - loadsAfterSetup} agents were reloaded while measured`);
      const facts: Record<string, number> = {
        count: lateness.length,
        p50: percentile(lateness, 50),
        p99: percentile(lateness, 99),
        max: percentile(lateness, 100),
        senderLoopP50: percentile(senderLoops, 50),
        senderLoopMax: percentile(senderLoops, 100),
        roundP50: percentile(roundMs, 50),
        reloads: s.loads - loadsAfterSetup,
      };
      return { ...facts, ...perTurn };
    },
  };
}

// --- bare better-sqlite3 ------------------------------------------------------------------

/** sqliteStore's schema (version 2) as of this bench's writing, copied: the bare side stays fixed while the store changes. */
const SCHEMA = `
  CREATE TABLE agents (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, parent TEXT, pinned INTEGER NOT NULL, input TEXT NOT NULL,
    created_at REAL NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX agents_by_type ON agents (type, id);
  CREATE INDEX agents_by_parent ON agents (parent, id);
  CREATE TABLE messages (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE, seq INTEGER NOT NULL, message_id TEXT NOT NULL,
    message TEXT, at REAL NOT NULL, consumed INTEGER NOT NULL DEFAULT 0, started_at REAL, PRIMARY KEY (agent_id, seq)
  ) STRICT, WITHOUT ROWID;
  CREATE UNIQUE INDEX messages_by_message_id ON messages (agent_id, message_id);
  CREATE INDEX messages_pending ON messages (agent_id, seq) WHERE consumed = 0;
  CREATE INDEX messages_in_flight ON messages (agent_id, seq) WHERE consumed = 0 AND started_at IS NOT NULL;
  CREATE TABLE snapshots (agent_id TEXT PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE, snapshot TEXT NOT NULL) STRICT;
  CREATE TABLE rollout (id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE, entry TEXT NOT NULL) STRICT;
  CREATE INDEX rollout_by_agent ON rollout (agent_id);
  CREATE TABLE owner (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL, pid INTEGER, host TEXT, since REAL) STRICT;
  INSERT INTO owner (id, epoch) VALUES (1, 1);
`;

export type BareShape = 'snapshots' | 'grouped' | 'today';

/**
 * Bare better-sqlite3 on a copy of sqliteStore's schema, synchronous FULL, 64 agents; one
 * op is one turn (round-robin over the agents):
 * - `snapshots`: one snapshot upsert per turn, 64 per transaction;
 * - `grouped`: every row of a turn (accept, begin, commit), 64 turns per transaction;
 * - `today`: the same rows in the runtime's transactions of today: the 64 accepts in one,
 *   then each `beginTurn` and each `commitTurn` in its own.
 */
function bareTurns(arg: { file: string; shape: BareShape }): AsyncCandidate {
  let db!: Database.Database;
  let round!: (turns: number) => void;
  let turns = 0;
  return {
    setup() {
      db = new Database(arg.file, { timeout: 5_000 });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      db.exec(SCHEMA);
      const insertAgent = db.prepare(
        'INSERT INTO agents (id, type, parent, pinned, input, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
      );
      db.transaction(() => {
        for (let i = 0; i < AGENTS; i++) insertAgent.run(turnAgentId(i), 'n', null, 0, 'null', Date.now());
      }).immediate();
      const sql = {
        fence: db.prepare('SELECT epoch, pid, host, since FROM owner WHERE id = 1'),
        agentExists: db.prepare('SELECT 1 FROM agents WHERE id = ?').pluck(),
        nextSeq: db.prepare('UPDATE agents SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq').pluck(),
        findMessage: db.prepare('SELECT seq FROM messages WHERE agent_id = ? AND message_id = ?').pluck(),
        insertMessage: db.prepare('INSERT INTO messages (agent_id, seq, message_id, message, at) VALUES (?, ?, ?, ?, ?)'),
        startTurn: db.prepare('UPDATE messages SET started_at = ? WHERE agent_id = ? AND seq = ? AND consumed = 0'),
        consume: db.prepare('UPDATE messages SET consumed = 1, message = NULL WHERE agent_id = ? AND seq = ? AND consumed = 0'),
        saveSnapshot: db.prepare(
          'INSERT INTO snapshots (agent_id, snapshot) VALUES (?, ?) ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot',
        ),
        addEntry: db.prepare('INSERT INTO rollout (agent_id, entry) VALUES (?, ?)'),
      };
      const counters = new Array<number>(AGENTS).fill(0);
      /** The persisted snapshot the runtime writes for a `fromTurn` agent, as JSON text. */
      const snapshotOf = (n: number) =>
        JSON.stringify({ status: 'active', value: 'idle', historyValue: {}, context: { state: { n } }, children: {} });
      const message = JSON.stringify(GO);
      const tx = <A extends unknown[]>(work: (...a: A) => void) =>
        db.transaction((...a: A) => {
          sql.fence.get();
          work(...a);
        });
      const accept = (agent: string, k: number): number => {
        const messageId = `${Date.now().toString(36)}-${k.toString(36)}`;
        const at = Date.now();
        if (sql.findMessage.get(agent, messageId) !== undefined) throw new Error('duplicate');
        const seq = sql.nextSeq.get(agent) as number;
        sql.insertMessage.run(agent, seq, messageId, message, at);
        sql.addEntry.run(agent, `{"kind":"accepted","seq":${seq},"messageId":${JSON.stringify(messageId)},"message":${message},"at":${at}}`);
        return seq;
      };
      const begin = (agent: string, seq: number) => {
        const at = Date.now();
        if (sql.startTurn.run(at, agent, seq).changes !== 1) throw new Error('not pending');
        sql.addEntry.run(agent, JSON.stringify({ kind: 'turn.started', seq, at }));
      };
      const commit = (agent: string, seq: number, i: number) => {
        const at = Date.now();
        if (sql.agentExists.get(agent) === undefined) throw new Error('no agent');
        if (sql.consume.run(agent, seq).changes !== 1) throw new Error('not pending');
        sql.saveSnapshot.run(agent, snapshotOf(++counters[i]!));
        sql.addEntry.run(agent, JSON.stringify({ kind: 'snapshot', seq, at }));
        sql.addEntry.run(agent, JSON.stringify({ kind: 'turn.finished', seq, outcome: 'done', at, durationMs: 0 }));
      };
      const snapshots = tx((from: number, count: number) => {
        for (let k = from; k < from + count; k++) sql.saveSnapshot.run(turnAgentId(k % AGENTS), snapshotOf(++counters[k % AGENTS]!));
      });
      const grouped = tx((from: number, count: number) => {
        for (let k = from; k < from + count; k++) {
          const agent = turnAgentId(k % AGENTS);
          const seq = accept(agent, k);
          begin(agent, seq);
          commit(agent, seq, k % AGENTS);
        }
      });
      const acceptAll = tx((from: number, count: number, seqs: number[]) => {
        for (let k = from; k < from + count; k++) seqs.push(accept(turnAgentId(k % AGENTS), k));
      });
      const beginOne = tx(begin);
      const commitOne = tx(commit);
      round = (ops) => {
        for (let done = 0; done < ops; done += AGENTS) {
          const from = turns + done;
          const count = Math.min(AGENTS, ops - done);
          if (arg.shape === 'snapshots') snapshots.immediate(from, count);
          else if (arg.shape === 'grouped') grouped.immediate(from, count);
          else {
            const seqs: number[] = [];
            acceptAll.immediate(from, count, seqs);
            seqs.forEach((seq, j) => beginOne.immediate(turnAgentId((from + j) % AGENTS), seq));
            seqs.forEach((seq, j) => commitOne.immediate(turnAgentId((from + j) % AGENTS), seq, (from + j) % AGENTS));
          }
        }
        turns += ops;
      };
    },
    run(ops) {
      round(ops);
    },
    check() {
      const snapshots = db.prepare('SELECT count(*) FROM snapshots').pluck().get() as number;
      if (snapshots !== AGENTS) throw new Error(`bare: ${snapshots} snapshots`);
      if (arg.shape !== 'snapshots') {
        const pending = db.prepare('SELECT count(*) FROM messages WHERE consumed = 0').pluck().get() as number;
        const rollout = db.prepare('SELECT count(*) FROM rollout').pluck().get() as number;
        if (pending !== 0 || rollout !== 4 * turns) throw new Error(`bare: ${pending} pending, ${rollout} rollout rows for ${turns} turns`);
      }
      return {};
    },
  };
}

export const turnsFactories = { turnsRun, bareTurns } as const;

// --- the section ------------------------------------------------------------------------

const ROUNDS = 5;

export async function benchDurableTurns(): Promise<string> {
  return inBenchFolder('turns', async (file, load) => {
    const base = { store: 'sqlite', mode: 'broadcast', ticker: false, skipRuns: 1 } as const;
    const thread = { ...base, store: 'sqlite-thread' } as const;
    const specs = [
      spec(`runtime, runningCap 64`, 'turnsRun', { ...base, file: file('rt64'), runningCap: 64 }, MESSAGES),
      spec(`runtime, runningCap 8`, 'turnsRun', { ...base, file: file('rt8'), runningCap: 8 }, MESSAGES),
      spec(`runtime, runningCap 64, writer thread`, 'turnsRun', { ...thread, file: file('rt64-thread'), runningCap: 64 }, MESSAGES),
      spec(`runtime, runningCap 8, writer thread`, 'turnsRun', { ...thread, file: file('rt8-thread'), runningCap: 8 }, MESSAGES),
      spec('bare: snapshot upserts alone, 64 per transaction', 'bareTurns', { file: file('bare-snapshots'), shape: 'snapshots' }, 64_000),
      spec("bare: every row of a turn, 64 turns per transaction", 'bareTurns', { file: file('bare-grouped'), shape: 'grouped' }, 16_000),
      spec('bare: every row of a turn, in the transactions of the runtime before the rework (1 + 2 per turn)', 'bareTurns', { file: file('bare-today'), shape: 'today' }, 2_048),
    ];
    const measured = await compareIsolated(specs, { rounds: ROUNDS, warmup: 1, parallelSetup: false });
    return render(measured, load());
  });
}

function render(m: IsolatedMeasured[], load: string): string {
  const [rt64, rt8, th64, th8, snap, grouped, today] = m as [
    IsolatedMeasured,
    IsolatedMeasured,
    IsolatedMeasured,
    IsolatedMeasured,
    IsolatedMeasured,
    IsolatedMeasured,
    IsolatedMeasured,
  ];
  const x = (a: IsolatedMeasured, b: IsolatedMeasured) => `${fmt(a.opsPerSec / b.opsPerSec, 3)}×`;
  const calls = (r: IsolatedMeasured) =>
    Object.entries(r.facts)
      .filter(([k]) => k.startsWith('calls.') && k !== 'calls.batch.ops')
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => {
        const name = k.slice(6);
        const ops = name === 'batch' && r.facts['calls.batch.ops'] ? ` (${fmt(r.facts['calls.batch.ops']! / v, 1)} ops each)` : '';
        return `\`${name}\` ${v >= 0.1 ? fmt(v, 2) : `1 per ${fmt(1 / v, 1)} turns`}${ops}`;
      })
      .join(', ');
  /** Store transactions per turn: every writing call is one (a `batch` is one group commit). */
  const writes = ['batch', 'append', 'beginTurn', 'commitTurn', 'note', 'createAgent', 'destroyAgent'];
  const txPerTurn = (r: IsolatedMeasured) => writes.reduce((sum, w) => sum + (r.facts[`calls.${w}`] ?? 0), 0);
  const tx = (r: IsolatedMeasured) => {
    const t = txPerTurn(r);
    return t >= 0.1 ? `${fmt(t, 2)} per turn` : `1 per ${fmt(1 / t, 1)} turns`;
  };
  const row = (r: IsolatedMeasured, extra: string) => `| ${r.name} | ${fmt(r.nsPerOp / 1000, 1)} µs | ${fmt(r.opsPerSec)} | ${fmt(r.gcShare * 100)} % | ${extra} |`;
  const verdictOf = (a: IsolatedMeasured, b: IsolatedMeasured) => {
    const best = a.opsPerSec >= b.opsPerSec ? a : b;
    return best.opsPerSec >= TURNS_TARGET
      ? `**met**: ${fmt(best.opsPerSec)}/s (${best.name.replace('runtime, ', '')})`
      : `**missed**: at best ${fmt(best.opsPerSec)}/s (${best.name.replace('runtime, ', '')}), ${fmt(TURNS_TARGET / best.opsPerSec, 1)}× short`;
  };
  return [
    '## Durable turns',
    '',
    `Turns per second on \`sqliteStore(<temp file>)\` (WAL, \`synchronous=FULL\`, every file in ${os.tmpdir()}), ${AGENTS} agents`,
    'of a trivial `fromTurn` logic (`({ state }) => ({ n: state.n + 1 })`), all spawned, loaded and resident before',
    `anything is measured (residentCap ${AGENTS}; no load happens while measured, checked). A round sends ${fmt(MESSAGES)} messages`,
    `round-robin over the ${AGENTS} agents, \`send\` without await in one synchronous loop, and is timed from the first send`,
    `until the ${fmt(MESSAGES)}th \`turn.finished\` event; each turn is accepted (\`append\`), begun and committed.`,
    `Every candidate in its own process on its own file (bench/isolated.ts); medians of ${ROUNDS} rounds after a warm-up`,
    `round, rounds alternating. Load average ${load}, on ${os.cpus().length} cores. The runtime runs on the store`,
    "as `sqliteStore(file, { writer: 'main' })` makes it (its writes in the calling thread, on the event loop) and, in the rows \"writer thread\",",
    "as `sqliteStore(file)` makes it (the default, `{ writer: 'thread' }`: every write transaction on a worker thread; reads on the main",
    'thread through a read-only connection), side by side in the same run.',
    '',
    'The bare side runs the statements sqliteStore runs for a turn, on a copy of its schema (same tables,',
    'indexes, foreign keys, WAL, FULL): the accept (idempotency lookup, the agent\'s seq counter, the message row,',
    'the `accepted` rollout entry), the begin (the message\'s `started_at`, the `turn.started` entry), the commit',
    '(agent check, message consumed, snapshot upsert, the `snapshot` and `turn.finished` entries), and in every',
    'write transaction the read of the owner epoch (the fencing check). The snapshot is the one the runtime writes',
    'for this logic (`{"status":"active","value":"idle","historyValue":{},"context":{"state":{"n":…}},"children":{}}`).',
    '',
    '| case | per turn | turns/s | GC | store calls per turn |',
    '| --- | ---: | ---: | ---: | --- |',
    row(rt64, calls(rt64)),
    row(rt8, calls(rt8)),
    row(th64, calls(th64)),
    row(th8, calls(th8)),
    row(snap, '1 upsert; 1/64 transaction'),
    row(grouped, '11 statements; 1/64 transaction'),
    row(today, '11 statements; 2 + 1/64 transactions (before the rework)'),
    '',
    `- target ≥ ${fmt(TURNS_TARGET)} durable turns/s: writer on the main thread ${verdictOf(rt64, rt8)}; writer thread ${verdictOf(th64, th8)}.`,
    `- writer thread / main thread: **${x(th64, rt64)}** (runningCap 64), **${x(th8, rt8)}** (runningCap 8).`,
    `- runtime / bare, every row of a turn grouped 64 turns per transaction: **${x(rt64, grouped)}** (runningCap 64), **${x(rt8, grouped)}** (runningCap 8).`,
    `- runtime / bare snapshot upserts alone (64 per transaction): **${x(rt64, snap)}** (runningCap 64), **${x(rt8, snap)}** (runningCap 8).`,
    `- runtime / bare rows in the transactions of the runtime before the rework (two synced commits per turn): **${x(rt64, today)}** (runningCap 64), **${x(rt8, today)}** (runningCap 8).`,
    `- store transactions (synced commits) the runtime wrote while measured: ${tx(rt64)} (runningCap 64), ${tx(rt8)} (runningCap 8);`,
    `  with the writer thread ${tx(th64)} (runningCap 64), ${tx(th8)} (runningCap 8);`,
    '  every write goes through `store.batch` (the write buffer: one group commit per turn of the event loop, at most 96 ops),',
    '  and a turn\'s commit carries the begin of the agent\'s next turn (`CommitTurn.next`).',
  ].join('\n');
}
