/**
 * pg (node-postgres), loaded the first time a PostgreSQL store needs it rather than when
 * residency is imported: pg is an optional peer dependency, so `import … from 'residency'`
 * works without it, and only `postgresStore()` says that it needs it.
 *
 * Loaded as better-sqlite3 is (see ../sqliteDriver.ts): with a `require` made by
 * `createRequire`, from `import.meta.url` in the ES module build and when run from source,
 * from `__filename` in the CommonJS build. Only pg's types are imported statically.
 */

import { createRequire } from 'node:module';
import type pg from 'pg';
import { StoreError } from '../../errors.js';

/** The pg module: `Pool`, `Client`, `types`, `DatabaseError`, … */
export type PgDriver = typeof pg;

let driver: PgDriver | null = null;

/**
 * pg, loaded once. Throws a `StoreError` saying how to get it when it cannot be loaded.
 */
export function pgDriver(): PgDriver {
  if (driver !== null) return driver;
  let loaded: unknown;
  try {
    const url = (import.meta as { url?: string }).url;
    loaded = createRequire(url ?? __filename)('pg');
  } catch (cause) {
    throw new StoreError(
      'postgresStore needs the pg package (v8), an optional peer dependency of residency: npm install pg ' +
        `(it could not be loaded: ${cause instanceof Error ? cause.message : String(cause)})`,
      { cause },
    );
  }
  driver = ((loaded as { default?: unknown }).default ?? loaded) as PgDriver;
  return driver;
}

/** pg if a PostgreSQL store already loaded it, else null. */
export function loadedPgDriver(): PgDriver | null {
  return driver;
}
