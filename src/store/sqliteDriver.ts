/**
 * better-sqlite3, loaded the first time a SQLite store needs it rather than when residency
 * is imported: `import { createRuntime, memoryStore } from 'residency'` works where the
 * native module is missing or cannot be built, and only `sqliteStore()` (and a runtime
 * left to its default store) says that it needs it.
 *
 * It is loaded with a `require` made by `createRequire` (better-sqlite3 is a CommonJS
 * package): from `import.meta.url` in the ES module build and when run from source, from
 * `__filename` in the CommonJS build (where the bundler leaves `import.meta` empty). The
 * bare `require` is never used: in the ES module build the bundler swaps it for a shim
 * that throws "Dynamic require … is not supported". Only better-sqlite3's types are
 * imported statically, and they leave no trace in the built code.
 */

import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from '../errors.js';

/** The better-sqlite3 module: the `Database` class, with `Database.SqliteError`. */
export type SqliteDriver = typeof BetterSqlite3;

let driver: SqliteDriver | null = null;

/**
 * better-sqlite3, loaded once. Throws a `StoreError` saying how to get it when it cannot
 * be loaded (not installed, or its native module not built for this Node).
 */
export function sqliteDriver(): SqliteDriver {
  if (driver !== null) return driver;
  let loaded: unknown;
  try {
    const url = (import.meta as { url?: string }).url;
    loaded = createRequire(url ?? __filename)('better-sqlite3');
  } catch (cause) {
    throw new StoreError(
      'sqliteStore needs the better-sqlite3 package (v12): npm install better-sqlite3, or use memoryStore() ' +
        `(it could not be loaded: ${cause instanceof Error ? cause.message : String(cause)})`,
      { cause },
    );
  }
  driver = ((loaded as { default?: unknown }).default ?? loaded) as SqliteDriver;
  return driver;
}

/** better-sqlite3 if a SQLite store already loaded it, else null (its errors cannot exist yet). */
export function loadedSqliteDriver(): SqliteDriver | null {
  return driver;
}
