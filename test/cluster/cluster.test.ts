/**
 * Scale-out on PostgreSQL: three processes (member.ts) on one schema, each sending to
 * agents of the whole population while they run the turns of the shards they own. Mid-run
 * one is killed (SIGKILL), one is paused (SIGSTOP) until its leases expired and another
 * process took its shards, then resumed (SIGCONT: the zombie), and one is stopped
 * gracefully (SIGTERM: it hands its shards over). Then the database itself is read back:
 *
 * - every acknowledged message is stored once and handled once (`done`, or `crashed` when
 *   its turn was in flight in a process that died), and so is every other accepted message
 *   (forwards from turns included), nothing pending or in flight at the end;
 * - per agent, turns are in acceptance order, and each caller's messages were accepted in
 *   call order;
 * - no turn was committed by a fenced owner: every agent's state (`count`, and the mids of
 *   its `done` turns in order) is exactly what its `done` turn records say — a zombie's
 *   commit from a stale state would show as a lost update or a double;
 * - a forward exists exactly when the turn that sent it was `done`;
 * - the shards of the killed process were taken over within leaseTtl + 2 s.
 *
 * Waits are for conditions read from the database or the processes (bounded), never fixed
 * sleeps as assertions. Without a PostgreSQL server the test skips (pgTest says so).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { postgresStore } from '../../src/postgres.js';
import type { RolloutEntry, Store } from '../../src/store/Store.js';
import { pgTest } from '../store/pgTest.js';
import { agentIds, SHARDS, type CountState } from './shared.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MEMBER = fileURLToPath(new URL('./member.ts', import.meta.url));
const LEASE_TTL = 1_500;

const pg = await pgTest('cluster');

interface Member {
  name: string;
  child: ChildProcess;
  id: string | null;
  lines: Record<string, unknown>[];
  stderr: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startMember(schema: string, name: string, seed: number): Member {
  const child = spawn(process.execPath, ['--import', 'tsx', MEMBER, pg.url, schema, name, String(seed), String(LEASE_TTL)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m: Member = {
    name,
    child,
    id: null,
    lines: [],
    stderr: '',
    exit: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o.ready === 'string') m.id = o.ready;
      m.lines.push(o);
    } catch {
      m.stderr += `[stdout] ${line}\n`;
    }
  });
  child.stderr!.on('data', (d: Buffer) => (m.stderr += d.toString()));
  return m;
}

/** Polls `check` every 25 ms until it returns true; fails after `boundMs` with `what`. */
let explain: (() => Promise<string>) | null = null;

async function until(what: string, check: () => Promise<boolean> | boolean, boundMs = 30_000): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > boundMs) throw new Error(`gave up waiting for ${what} after ${boundMs} ms${explain ? `: ${await explain()}` : ''}`);
    await new Promise<void>((r) => setTimeout(r, 25));
  }
}

async function ownersOf(schema: string): Promise<Map<string | null, number[]>> {
  const r = await pg.query<{ shard: number; owner: string | null; live: boolean }>(
    `select shard, owner, (expires_at > now()) as live from "${schema}".shard_leases order by shard`,
  );
  const out = new Map<string | null, number[]>();
  for (const row of r.rows) {
    const key = row.live ? row.owner : null;
    out.set(key, [...(out.get(key) ?? []), row.shard]);
  }
  return out;
}

describe.skipIf(!pg.available)('three processes on one PostgreSQL schema', () => {
  it('kill, pause (zombie) and graceful stop: every message handled once, in order, no fenced commit, takeover within leaseTtl + 2 s', async () => {
    const schema = pg.schema();
    const admin: Store = postgresStore({ connectionString: pg.url, schema, shards: SHARDS, leaseTtl: LEASE_TTL });
    const members: Member[] = [];
    try {
      for (const id of agentIds()) await admin.createAgent({ id, type: 'counter', parent: null, pinned: false, input: null, createdAt: Date.now() });
      const [a, b, c] = ['a', 'b', 'c'].map((name, i) => startMember(schema, name, 1_000 + i));
      members.push(a!, b!, c!);
      explain = async () => {
        const owners = [...(await ownersOf(schema))].map(([id, shards]) => `${members.find((m) => m.id === id)?.name ?? String(id)}: ${shards.length}`);
        for (const m of members) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGUSR1');
        await new Promise<void>((r) => setTimeout(r, 300));
        const pending = (await admin.agentsWithPending()).join(',');
        const inFlight = JSON.stringify(await admin.turnsInFlight());
        const dumps = members.map((m) => `${m.name}: ${JSON.stringify(m.lines.filter((l) => 'dump' in l).at(-1) ?? null)}`).join('\n');
        return `pending ${pending}; in flight ${inFlight}\n${dumps}\nowners ${owners.join(', ')}\n${members.map((m) => `--- ${m.name} (${m.id}) stderr ---\n${m.stderr.slice(-2_000)}\nlast lines: ${JSON.stringify(m.lines.slice(-3))}\nstuck: ${JSON.stringify(m.lines.filter((l) => 'stuck' in l).slice(-2))}`).join('\n')}`;
      };
      await until('three members ready', () => members.every((m) => m.id !== null));
      await until('shards spread over three members', async () => {
        const owners = await ownersOf(schema);
        return members.every((m) => (owners.get(m.id) ?? []).length >= Math.floor(SHARDS / 3) - 1);
      });
      await until('a few hundred messages acknowledged', () => members.reduce((n, m) => n + m.lines.filter((l) => 'ack' in l).length, 0) > 300);

      // 1. SIGKILL a: its shards go to b and c once its leases expire.
      const killedShards = (await ownersOf(schema)).get(a!.id) ?? [];
      expect(killedShards.length).toBeGreaterThan(0);
      a!.child.kill('SIGKILL');
      await a!.exit;
      const takeover = await until('the killed process\'s shards taken over', async () => {
        const owners = await ownersOf(schema);
        return killedShards.every((s) => [b!.id, c!.id].some((id) => (owners.get(id) ?? []).includes(s)));
      });
      expect(takeover).toBeLessThan(LEASE_TTL + 2_000);

      // 2. SIGSTOP c until b holds every shard (c's leases expired and were taken), then resume it: a zombie.
      c!.child.kill('SIGSTOP');
      await until('b owns every shard while c is paused', async () => ((await ownersOf(schema)).get(b!.id) ?? []).length === SHARDS);
      c!.child.kill('SIGCONT');
      await until('c owns shards again after resuming', async () => ((await ownersOf(schema)).get(c!.id) ?? []).length > 0);

      // 3. Every connection of the processes drops (as in a database restart) while they send.
      const dropped = await pg.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1`, [schema]);
      expect(dropped.rowCount).toBeGreaterThan(0);
      const ackedBefore = members.reduce((n, m) => n + m.lines.filter((l) => 'ack' in l).length, 0);
      await until('messages acknowledged after the connections dropped', () => members.reduce((n, m) => n + m.lines.filter((l) => 'ack' in l).length, 0) > ackedBefore + 50);

      // 4. Sending ends; b stops gracefully and hands its shards over to c.
      for (const m of [b!, c!]) m.child.kill('SIGUSR2');
      await until('b and c done sending', () => [b!, c!].every((m) => m.lines.some((l) => l.sent === true)));
      b!.child.kill('SIGTERM');
      expect((await b!.exit).code).toBe(0);
      await until('c owns every shard', async () => ((await ownersOf(schema)).get(c!.id) ?? []).length === SHARDS);
      await until('nothing pending or in flight', async () => (await admin.agentsWithPending()).length === 0 && (await admin.turnsInFlight()).length === 0, 60_000);
      c!.child.kill('SIGTERM');
      expect((await c!.exit).code).toBe(0);

      // --- the check, from the database ---
      const acked = members.flatMap((m) => m.lines.filter((l) => typeof l.ack === 'string').map((l) => ({ member: m.name, agentId: l.ack as string, mid: l.mid as string, seq: l.seq as number | undefined })));
      expect(acked.length).toBeGreaterThan(300);
      const byMid = new Map<string, { agentId: string; seq: number; outcome: string | null; count: number }>();
      const problems: string[] = [];
      for (const id of agentIds()) {
        const rollout: RolloutEntry[] = await admin.rollout(id);
        const accepted = new Map<number, string>();
        const finished: { seq: number; outcome: string }[] = [];
        for (const e of rollout) {
          if (e.kind === 'accepted') {
            const mid = String(e.message.mid);
            const seen = byMid.get(mid);
            if (seen) seen.count++;
            else byMid.set(mid, { agentId: id, seq: e.seq, outcome: null, count: 1 });
            accepted.set(e.seq, mid);
          } else if (e.kind === 'turn.finished') finished.push({ seq: e.seq, outcome: e.outcome });
        }
        // Once each, in acceptance order.
        const seqs = finished.map((f) => f.seq);
        if (JSON.stringify(seqs) !== JSON.stringify([...accepted.keys()].sort((x, y) => x - y))) problems.push(`${id}: turns ${seqs.join(',')} vs accepted ${[...accepted.keys()].join(',')}`);
        for (const f of finished) {
          const mid = accepted.get(f.seq);
          if (mid !== undefined) byMid.get(mid)!.outcome = f.outcome;
          if (f.outcome !== 'done' && f.outcome !== 'crashed') problems.push(`${id}#${f.seq}: outcome ${f.outcome}`);
        }
        // No fenced commit: the state is exactly what the done turns say.
        const done = finished.filter((f) => f.outcome === 'done').map((f) => accepted.get(f.seq)!);
        const state = ((await admin.loadSnapshot(id)) as { context?: { state: CountState } } | null)?.context?.state ?? { count: 0, mids: [] };
        if (state.count !== done.length || JSON.stringify(state.mids) !== JSON.stringify(done)) {
          problems.push(`${id}: state count ${state.count} (${state.mids.length} mids) but ${done.length} done turns`);
        }
      }
      for (const a of acked) {
        const m = byMid.get(a.mid);
        if (!m) problems.push(`acked ${a.mid} to ${a.agentId} is not stored`);
        else if (m.count !== 1) problems.push(`${a.mid} stored ${m.count} times`);
        else if (m.outcome === null) problems.push(`${a.mid} never handled`);
      }
      // Forwards: exactly when the turn that sent them was done.
      for (const [mid, m] of byMid) {
        if (!mid.startsWith('f:')) continue;
        const origin = byMid.get(mid.slice(2));
        if (!origin || origin.outcome !== 'done') problems.push(`${mid} exists but its turn was ${origin?.outcome ?? 'not found'}`);
        if (m.count !== 1) problems.push(`${mid} stored ${m.count} times`);
      }
      // Mail counts never ran ahead of the store (each message counted once, in whichever process).
      for (const m of members) if (m.stderr.includes('had no message left')) problems.push(`${m.name}: a mailbox count ran ahead of the store`);
      // Each caller's sends to one agent were accepted in call order.
      for (const m of members) {
        const last = new Map<string, number>();
        for (const l of m.lines) {
          if (typeof l.ack !== 'string' || typeof l.seq !== 'number') continue;
          const before = last.get(l.ack) ?? 0;
          if (l.seq <= before) problems.push(`${m.name}: ${l.mid as string} to ${l.ack} accepted as #${l.seq} after #${before}`);
          last.set(l.ack, l.seq);
        }
      }
      expect(problems, members.map((m) => `--- ${m.name} stderr ---\n${m.stderr.slice(-3_000)}`).join('\n')).toEqual([]);
      const crashed = [...byMid.values()].filter((m) => m.outcome === 'crashed').length;
      const turnsBy = members.map((m) => `${m.name} ${JSON.stringify(m.lines.find((l) => 'stats' in l)?.stats ?? 'killed')}`).join(', ');
      console.log(
        `cluster test: ${byMid.size} messages (${acked.length} acked), ${crashed} crashed, takeover after kill ${Math.round(takeover)} ms (leaseTtl ${LEASE_TTL}), ` +
          `${dropped.rowCount} connections dropped; processes: ${turnsBy}`,
      );
    } finally {
      for (const m of members) {
        if (m.child.exitCode === null && m.child.signalCode === null) {
          m.child.kill('SIGCONT');
          m.child.kill('SIGKILL');
        }
      }
      await admin.close();
    }
  });
});
