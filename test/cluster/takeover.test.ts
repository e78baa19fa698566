/**
 * A process that takes shards over with much mail waiting (found by the scale-out demo):
 * the recovery of those shards reads counts agent by agent while the poll and the hints
 * already run their turns. Counts read before must not be trusted later: no agent may be
 * quarantined for "a turn with an empty mailbox", and every message runs once.
 */
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { postgresStore } from '../../src/postgres.js';
import { pgTest } from '../store/pgTest.js';

const pg = await pgTest('takeover');

describe.skipIf(!pg.available)('taking shards over with mail waiting', () => {
  it('runs every message once and quarantines nobody', async () => {
    const schema = pg.schema();
    const opts = { connectionString: pg.url, schema, shards: 16, leaseTtl: 3_000 };
    // A member that holds every shard and runs nothing; B joins and gets half of them, all with mail.
    const a = postgresStore(opts);
    await a.acquire({ pid: process.pid, host: 'a', since: Date.now() });
    const ids = Array.from({ length: 1_500 }, (_, i) => `ag-${i}`);
    await a.batch(ids.map((id) => ({ op: 'createAgent' as const, record: { id, type: 'w', parent: null, pinned: false, input: null, createdAt: 0 } })));
    await a.append(ids.map((id, i) => ({ agentId: id, messageId: `m${i}`, message: { type: 't' }, at: 0 })));
    const w = defineAgent({ type: 'w', logic: fromTurn<{ n: number }>(async ({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }) });
    const b = await createRuntime({ agents: [w], residentCap: 4, runningCap: 4, store: postgresStore(opts) });
    const failed: string[] = [];
    b.on('agent.failed', (e) => failed.push(`${e.id}: ${e.error.message}`));
    try {
      const member = b.stats().cluster!.member!;
      const mailOfB = async () =>
        Number(
          (
            await pg.query(
              `select count(*) as n from "${schema}".counters c join "${schema}".shard_leases l on l.shard = c.shard
                where c.mailbox > 0 and l.owner = $1`,
              [member],
            )
          ).rows[0]!.n,
        );
      const start = Date.now();
      for (;;) {
        const owned = b.stats().cluster!.owned;
        if (owned > 0 && (await mailOfB()) === 0) break;
        if (Date.now() - start > 60_000) throw new Error(`B still has mail after 60 s (${failed.length} quarantined: ${failed.slice(0, 3).join('; ')})`);
        await new Promise<void>((r) => setTimeout(r, 50));
      }
      expect(failed).toEqual([]);
      // Exactly once: every agent of B's shards ran its one message once.
      const done = await pg.query(`select count(*) as n from "${schema}".counters c join "${schema}".shard_leases l on l.shard = c.shard where l.owner = $1 and c.turns <> 1`, [member]);
      expect(Number(done.rows[0]!.n)).toBe(0);
    } finally {
      await b.stop();
      await a.close();
    }
  });
});
