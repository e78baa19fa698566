/**
 * PostgreSQL for the tests: the server named by RESIDENCY_PG_URL (default: the local one,
 * postgres://postgres@127.0.0.1:5432/test), a fresh schema per store so tests never see
 * each other's rows, and the schemas dropped after the file's tests.
 *
 * Without a reachable server the PostgreSQL tests skip, and say so: `pgAvailable` is
 * decided once, before the tests are collected (top-level await in the test file):
 *
 *   const pg = await pgTest('conformance');
 *   describe.skipIf(!pg.available)('postgresStore', () => { … pg.schema() … });
 *
 * `.ci/run` starts the server when it is not running and sets RESIDENCY_PG_REQUIRED=1, so
 * there a missing server fails the run instead of skipping.
 */
import pg from 'pg';
import { afterAll } from 'vitest';

export const PG_URL = process.env.RESIDENCY_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<string | null> | undefined;

/** `null` when the server answers, else why not. */
function probe(): Promise<string | null> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
      return null;
    } catch (err) {
      return (err as Error).message || String(err);
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return reachable;
}

export interface PgTest {
  available: boolean;
  url: string;
  /** A fresh schema name for this file (dropped after its tests): `<prefix>_<n>_<pid>`. */
  schema(): string;
  /** Runs SQL on a connection of its own (inspection and fault injection in tests). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export async function pgTest(prefix: string): Promise<PgTest> {
  if (!/^[a-z][a-z0-9_]{0,20}$/.test(prefix)) throw new TypeError(`pgTest: bad prefix ${JSON.stringify(prefix)}`);
  const why = await probe();
  if (why !== null) {
    if (process.env.RESIDENCY_PG_REQUIRED === '1') throw new Error(`PostgreSQL is required here but not reachable at ${PG_URL}: ${why}`);
    console.warn(`SKIPPED: the PostgreSQL tests of "${prefix}" need a server at ${PG_URL} (set RESIDENCY_PG_URL): ${why}`);
  }
  const schemas: string[] = [];
  let n = 0;
  const admin = why === null ? new pg.Pool({ connectionString: PG_URL, max: 2 }) : null;
  admin?.on('error', () => {});
  afterAll(async () => {
    if (!admin) return;
    for (const s of schemas) await admin.query(`drop schema if exists "${s}" cascade`).catch(() => {});
    await admin.end();
  });
  return {
    available: why === null,
    url: PG_URL,
    schema() {
      const s = `t_${prefix}_${n++}_${process.pid}`;
      schemas.push(s);
      return s;
    },
    query(sql, params) {
      if (!admin) throw new Error('PostgreSQL is not reachable');
      return admin.query(sql, params as unknown[]);
    },
  };
}
