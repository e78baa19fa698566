/**
 * `residency demo --postgres URL --processes N` (src/cli/clusterDemo.ts): the demo as three
 * processes of the command on one PostgreSQL schema, run through `main()` in-process (the
 * members are child processes of this one), checked from what it prints and from the
 * database: every accepted message handled exactly once, each process ran turns, shards
 * moved. And its usage errors, and a schema that is not a residency schema refused untouched.
 * Without a PostgreSQL server the PostgreSQL tests skip (pgTest says so); the usage errors
 * need none.
 */
import { describe, expect, it } from 'vitest';
import { cli } from '../runCli.js';
import { pgTest } from '../store/pgTest.js';

const pg = await pgTest('clusterdemo');

describe.skipIf(!pg.available)('residency demo --postgres', () => {
  it('runs three processes on one schema: each runs turns, shards move, every accepted message handled exactly once', async () => {
    const schema = pg.schema();
    const r = await cli(
      'demo', '--postgres', pg.url, '--schema', schema, '--processes', '3',
      '--agents', '60', '--cap', '8', '--running', '3', '--duration', '2', '--seed', '11',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^residency demo: 60 agents on 3 processes, resident cap 8 and running cap 3 in each, 2 s of sending, seed 11$/m);
    expect(r.out).toMatch(/^process 1 \(pid \d+\) joined: it owns 64 shards$/m);
    expect(r.out).toMatch(/^agents +60 in the store$/m);
    const processes = [...r.out.matchAll(/^process (\d+) +pid \d+: ([\d,]+) turns, (\d+) shards at the end$/gm)];
    expect(processes.map((p) => Number(p[1]))).toEqual([1, 2, 3]);
    for (const p of processes) expect(Number(p[2]!.replace(/,/g, ''))).toBeGreaterThan(0);
    expect(processes.reduce((n, p) => n + Number(p[3]), 0)).toBe(64);
    const moves = Number(/^shards +64, ([\d,]+) moves/m.exec(r.out)?.[1]?.replace(/,/g, ''));
    expect(moves).toBeGreaterThan(0);
    expect(r.out.trimEnd().split('\n').at(-1)).toBe('every accepted message handled exactly once: yes');

    // The database says the same: what was accepted was handled, by turns of the three processes.
    const agents = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".agents`);
    expect(agents.rows[0]!.n).toBe(60);
    const left = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".messages WHERE NOT consumed`);
    expect(left.rows[0]!.n).toBe(0);
    const leases = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".shard_leases WHERE owner IS NOT NULL AND expires_at > now()`);
    expect(leases.rows[0]!.n).toBe(0); // every process stopped and handed its shards back
  });

  it('refuses a schema that is not a residency schema, and leaves it as it is', async () => {
    const schema = pg.schema();
    await pg.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".notes (body text); INSERT INTO "${schema}".notes VALUES ('keep me')`);
    const r = await cli('demo', '--postgres', pg.url, '--schema', schema, '--duration', '0');
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(
      `residency: schema "${schema}" is not a residency schema (it has no meta table, and holds notes): the demo left it as it is. ` +
        'Pass another --schema, or --force to replace it\n',
    );
    const kept = await pg.query<{ body: string }>(`SELECT body FROM "${schema}".notes`);
    expect(kept.rows).toEqual([{ body: 'keep me' }]);
    const tables = await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1', [schema]);
    expect(tables.rows[0]!.n).toBe(1);
  });
});

describe('residency demo --postgres: bad arguments', () => {
  const url = 'postgres://postgres@127.0.0.1:5432/test';
  it.each([
    [['demo', '--processes', '3'], /--processes runs the demo on PostgreSQL: pass --postgres URL too/],
    [['demo', '--schema', 'mine'], /--schema names a PostgreSQL schema: pass --postgres URL too/],
    [['demo', '--postgres', url, '--db', 'demo.db'], /--db is the SQLite demo's file and --postgres runs it on PostgreSQL: pass one of them/],
    [['demo', '--postgres', 'mysql://root@localhost/test'], /Expected --postgres to be a postgres:\/\/ or postgresql:\/\/ URL .*, got `mysql:\/\/root@localhost\/test`/],
    [['demo', '--postgres', '127.0.0.1:5432'], /Expected --postgres to be a postgres:\/\/ or postgresql:\/\/ URL/],
    [['demo', '--postgres', ''], /Expected --postgres to be a postgres:\/\/ or postgresql:\/\/ URL/],
    [['demo', '--postgres', url, '--processes', '0'], /Expected --processes to be an integer from 1 to 16, got `0`/],
    [['demo', '--postgres', url, '--processes', '17'], /Expected --processes to be an integer from 1 to 16, got `17`/],
    [['demo', '--postgres', url, '--schema', 'Mixed-Case'], /Expected --schema to be a schema name of lower case letters, digits and underscores/],
    [['demo', '--postgres', url, '--schema', 'public'], /--schema public is not the demo's to recreate/],
    [['demo', '--postgres', url, '--inspect'], /--inspect serves the inspector of one runtime/],
    [['demo', '--postgres', url, '--keep', '--force'], /--keep keeps the database and --force replaces it/],
    [['demo', '--member', '{}'], /--member is internal/],
  ])('%j exits 2 with the usage', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toContain('usage: residency <command>');
    expect(r.out).toBe('');
  });
});
