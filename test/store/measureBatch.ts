/**
 * Measures group commit on sqliteStore (not a test: no timing is asserted anywhere).
 *
 *   npx tsx test/store/measureBatch.ts [folder] [rounds]
 *
 * For 64 agents with one pending message each, per round:
 * - batch: one `batch` of 64 × (beginTurn, commitTurn) = 128 ops, one transaction;
 * - separate commitTurn: 64 `commitTurn` calls, one transaction each;
 * - separate beginTurn + commitTurn: 128 calls (what a turn writes without group commit).
 * Each commit carries a small snapshot and one output. It prints the median time per
 * round and per turn, at synchronous=FULL (the default) and NORMAL, on a temp file in
 * `folder` (default: the OS temp folder).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AgentRecord, CommitTurn, Store, StoreOp } from '../../src/store/Store.js';
import { sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const N = 64;
const folder = process.argv[2] ?? os.tmpdir();
const rounds = Number(process.argv[3] ?? 30);

type Variant = 'batch' | 'separate commitTurn' | 'separate beginTurn + commitTurn';

function agent(id: string): AgentRecord {
  return { id, type: 'chat', parent: null, pinned: false, input: null, createdAt: 0 };
}

function commit(agentId: string, seq: number): CommitTurn {
  return {
    agentId,
    seq,
    outcome: 'done',
    snapshot: { history: ['hello', 'world'], turn: seq },
    outputs: [{ said: `reply ${seq}` }],
    at: seq,
    durationMs: 1,
  };
}

async function round(store: Store, variant: Variant, seq: number): Promise<number> {
  // The messages of this round, appended outside the timed part.
  await store.append(Array.from({ length: N }, (_, i) => ({ agentId: `a${i}`, messageId: `m${seq}`, message: { type: 'user' }, at: seq })));
  const start = performance.now();
  if (variant === 'batch') {
    const ops: StoreOp[] = [];
    for (let i = 0; i < N; i++) {
      ops.push({ op: 'beginTurn', agentId: `a${i}`, seq, at: seq });
      ops.push({ op: 'commitTurn', commit: commit(`a${i}`, seq) });
    }
    const results = await store.batch(ops);
    if (!results.every((r) => r.ok)) throw new Error('an op failed');
  } else {
    for (let i = 0; i < N; i++) {
      if (variant === 'separate beginTurn + commitTurn') await store.beginTurn(`a${i}`, seq, seq);
      await store.commitTurn(commit(`a${i}`, seq));
    }
  }
  return performance.now() - start;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function measure(synchronous: 'FULL' | 'NORMAL'): Promise<void> {
  const dir = fs.mkdtempSync(path.join(folder, 'residency-measure-'));
  try {
    const store = sqliteStore(path.join(dir, 'agents.db'), { synchronous });
    for (let i = 0; i < N; i++) await store.createAgent(agent(`a${i}`));
    const variants: Variant[] = ['batch', 'separate commitTurn', 'separate beginTurn + commitTurn'];
    const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    let seq = 0;
    // Interleaved, so that the file's growth and the machine's noise hit every variant alike.
    for (let r = 0; r < rounds + 2; r++) {
      for (const variant of variants) {
        const ms = await round(store, variant, ++seq);
        if (r >= 2) times.get(variant)!.push(ms); // two warm-up rounds
      }
    }
    await store.close();
    const base = median(times.get('batch')!);
    console.log(`synchronous=${synchronous}, ${N} turns per round, median of ${rounds} rounds, file in ${folder}`);
    for (const variant of variants) {
      const m = median(times.get(variant)!);
      console.log(
        `  ${variant.padEnd(32)} ${m.toFixed(2).padStart(8)} ms/round  ${((m * 1000) / N).toFixed(0).padStart(6)} µs/turn  ×${(m / base).toFixed(1)}`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await measure('FULL');
await measure('NORMAL');
