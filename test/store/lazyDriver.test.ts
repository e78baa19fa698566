/**
 * better-sqlite3 is loaded only when a SQLite store is opened: the package root imports,
 * and a runtime on memoryStore runs, in a process where better-sqlite3 cannot be resolved
 * (neither by `require` nor by `import`: test/store/withoutSqliteDriver.mjs), and
 * sqliteStore() then throws a StoreError saying what to install. From source (run with
 * tsx: test/store/lazyDriverChild.ts) and from the ES module and CommonJS bundles that the
 * package's tsup config builds (test/store/lazyDriverBundleChild.mjs), since the bundler
 * rewrites how a module loads another. Each child prints one JSON line.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Options } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tsupConfig from '../../tsup.config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./lazyDriverChild.ts', import.meta.url));
const BUNDLE_CHILD = fileURLToPath(new URL('./lazyDriverBundleChild.mjs', import.meta.url));
const WITHOUT = fileURLToPath(new URL('./withoutSqliteDriver.mjs', import.meta.url));

function runChild(preload: string[], args: string[]): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...preload.flatMap((p) => ['--import', p]), ...args],
      { cwd: ROOT },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`the child failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, any>);
      },
    );
  });
}

describe('better-sqlite3 is loaded lazily', () => {
  it('without better-sqlite3: the root imports, a runtime runs on memoryStore, sqliteStore() throws a StoreError saying what to do', async () => {
    const out = await runChild(['tsx', WITHOUT], [CHILD]);
    // better-sqlite3 really is unresolvable in the child, both ways.
    expect(out.require).toMatchObject({ code: 'MODULE_NOT_FOUND' });
    expect(out.import).toMatchObject({ code: 'ERR_MODULE_NOT_FOUND' });
    expect(out.memory).toEqual({ outcome: 'done', state: { n: 1 } });
    expect(out.sqlite).toMatchObject({ ok: false, isStoreError: true, name: 'StoreError', code: 'STORE_ERROR' });
    expect(out.sqlite.message).toContain(
      'sqliteStore needs the better-sqlite3 package (v12): npm install better-sqlite3, or use memoryStore()',
    );
  });

  it('with better-sqlite3 (the control): the same child opens a SQLite store', async () => {
    const out = await runChild(['tsx'], [CHILD]);
    expect(out.require).toBe('loaded');
    expect(out.memory).toEqual({ outcome: 'done', state: { n: 1 } });
    expect(out.sqlite).toEqual({ ok: true, found: 'a' });
  });
});

describe('better-sqlite3 is loaded lazily by the built package', () => {
  // Inside node_modules so that the bundles resolve the package's dependencies as dist/ does.
  const outDir = path.join(ROOT, 'node_modules', '.cache', `residency-lazy-driver-${process.pid}`);

  beforeAll(async () => {
    const config = tsupConfig as Options;
    // The package's own build (formats, target, platform), for the root entry, without types.
    await build({ ...config, entry: { index: 'src/index.ts' }, outDir, dts: false, sourcemap: false, silent: true, config: false });
  });

  afterAll(() => {
    fs.rmSync(outDir, { recursive: true, force: true });
  });

  for (const file of ['index.js', 'index.cjs']) {
    it(`${file}: loads and runs memoryStore without better-sqlite3, and sqliteStore() says what to install`, async () => {
      const out = await runChild([WITHOUT], [BUNDLE_CHILD, path.join(outDir, file)]);
      expect(out).toMatchObject({ memory: 'a', createRuntime: 'function' });
      expect(out.sqlite).toMatchObject({ ok: false, isStoreError: true, code: 'STORE_ERROR' });
      expect(out.sqlite.message).toContain(
        'sqliteStore needs the better-sqlite3 package (v12): npm install better-sqlite3, or use memoryStore()',
      );
      expect(out.sqlite.message).toContain('made unresolvable by withoutSqliteDriver.mjs');
    });

    it(`${file}: with better-sqlite3, sqliteStore() opens a store`, async () => {
      const out = await runChild([], [BUNDLE_CHILD, path.join(outDir, file)]);
      expect(out).toMatchObject({ memory: 'a', sqlite: { ok: true, found: 'a' } });
    });
  }
});
