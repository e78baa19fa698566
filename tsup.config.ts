import { defineConfig } from 'tsup';

/**
 * One runtime per install: the entries share their code through chunks (`splitting`, in
 * both formats), so `residency`, `residency/testing` and `residency/internal` load one copy
 * of every class (an error thrown by a test runtime is `instanceof` the root's error class).
 * Dependencies and peer dependencies stay external (tsup's default). Named as well: fast-check,
 * also a devDependency, never bundled (`residency/testing` loads the user's own copy, an
 * optional peer dependency), and better-sqlite3, an optional dependency, which tsup does not
 * treat as external by itself (it is loaded lazily, src/store/sqliteDriver.ts), and pg, an
 * optional peer dependency of `residency/postgres` (loaded lazily too, src/store/postgres/pgDriver.ts).
 */
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
    internal: 'src/internal.ts',
    postgres: 'src/postgres.ts',
    bin: 'src/bin.ts',
    // The SQLite writer thread (sqliteStore(path, { writer: 'thread' })): loaded by URL, next to the chunks.
    sqliteWriter: 'src/store/sqliteWriter.ts',
  },
  format: ['esm', 'cjs'],
  dts: {
    entry: {
      index: 'src/index.ts',
      'testing/index': 'src/testing/index.ts',
      internal: 'src/internal.ts',
      postgres: 'src/postgres.ts',
    },
    // Members marked `@internal` stay out of the published types.
    compilerOptions: { stripInternal: true },
  },
  external: ['fast-check', 'better-sqlite3', 'pg'],
  target: 'node20',
  platform: 'node',
  // The CommonJS chunks get `import.meta.url` from `__filename` (the store loads better-sqlite3 with it).
  shims: true,
  sourcemap: true,
  clean: true,
  splitting: true,
});
