/**
 * The package as a user installs it: `npm run build` and `npm pack` (in a copy of the
 * package's build inputs, so that a concurrent build in the working tree cannot change the
 * tarball under us), then the tarball installed into a fresh project and used from there.
 *
 * - One runtime per install: an ES module and a CommonJS consumer of `residency`,
 *   `residency/testing` and `residency/internal` check that an error thrown by a test
 *   runtime is `instanceof` the root's error classes.
 * - fast-check is an optional peer of `residency/testing`, never bundled: the consumer's
 *   own fast-check is the one the eviction-transparency check samples with.
 * - The root exports the public API; the published types hold no `@internal` member and
 *   compile with `skipLibCheck` off, for `import` and for `require`.
 * - `npx residency demo` runs on the installed package and the embedded store.
 *
 * The install is offline, from the npm cache: the fresh project gets a lockfile made from
 * this repository's (so npm needs no registry metadata), and `--ignore-scripts` keeps
 * better-sqlite3 from being compiled again: its native module is copied from this
 * repository's node_modules. Only when the cache lacks something does npm go to the
 * registry (`--prefer-offline`). The test is skipped, saying why, only when `npm pack`
 * cannot run at all (no npm).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf } from '../../src/store/Cluster.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** What the root exports at least: the public API (DESIGN.md). */
const PUBLIC_API = [
  'AgentExistsError',
  'AgentNotFoundError',
  'AskTimeoutError',
  'DEFAULT_DB',
  'FencedError',
  'ResidencyError',
  'RuntimeStoppedError',
  'StoreCorruptionError',
  'StoreError',
  'StoreLockedError',
  'TurnFailedError',
  'UnknownAgentTypeError',
  'createRuntime',
  'defineAgent',
  'fromTurn',
  'lru',
  'manualClock',
  'memoryStore',
  'serveInspector',
  'serveStoredInspector',
  'sqliteStore',
  'systemClock',
];
/** Plumbing that was exported from the root and now lives in `residency/internal`. */
const PLUMBING = ['LinkedSet', 'agentEventFor', 'agentMachine', 'agentToSupervisor', 'lifecycleOf', 'supervisorBoundActions', 'supervisorEventFor', 'supervisorMachine', 'unmatchedWaiters', 'usedSlots'];

/** The environment of the child processes: none of the npm settings of a surrounding `npm test`. */
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env)
    .filter(([key]) => !/^npm_/i.test(key) && key !== 'INIT_CWD')
    .map(([key, value]) =>
      key === 'PATH' && value !== undefined
        ? [key, value.split(path.delimiter).filter((p) => !p.startsWith(ROOT)).join(path.delimiter)]
        : [key, value],
    ),
);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started at all (ENOENT, EACCES). */
  spawnError?: NodeJS.ErrnoException;
}

function run(command: string, args: string[], cwd: string, timeout = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      const e = error as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && typeof e.code === 'string') resolve({ code: -1, stdout, stderr, spawnError: e });
      else resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} failed (${r.spawnError?.message ?? `exit ${r.code}`})\n${r.stdout}\n${r.stderr}`);
  return r;
}

function lastJsonLine(r: Run): Record<string, any> {
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, any>;
}

function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile());
}

/**
 * A lockfile for a project that depends on the tarball and on fast-check, made of this
 * repository's lock entries (the package's dependency tree, resolved as here), so that an
 * offline install needs nothing but the npm cache.
 */
function consumerLock(pkg: any, tarball: string, fastCheckRange: string): unknown {
  const repo = readJson(path.join(ROOT, 'package-lock.json')).packages as Record<string, Record<string, any>>;
  const packages: Record<string, Record<string, any>> = {};
  const find = (from: string, name: string): string | undefined => {
    for (let base = from; ; ) {
      const at = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (repo[at]) return at;
      if (!base) return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  const visit = (from: string, names: string[]) => {
    for (const name of names) {
      const at = find(from, name);
      if (at === undefined || packages[at]) continue;
      const { dev, optional, devOptional, peer, ...entry } = repo[at]!;
      packages[at] = entry;
      visit(at, Object.keys({ ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies }));
    }
  };
  visit('', [...Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }), 'fast-check']);
  const integrity = `sha512-${createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`;
  const own = Object.fromEntries(
    ['version', 'license', 'dependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines']
      .filter((k) => pkg[k] !== undefined)
      .map((k) => [k, pkg[k]]),
  );
  return {
    name: 'consumer',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'consumer', version: '1.0.0', dependencies: { residency: `file:${path.basename(tarball)}`, 'fast-check': fastCheckRange } },
      'node_modules/residency': { ...own, resolved: `file:${path.basename(tarball)}`, integrity },
      ...packages,
    },
  };
}

describe('the packed package, installed into a fresh project', () => {
  let tmp = '';
  let app = '';
  let installed = '';
  /** Why the test is skipped: npm pack could not run. */
  let unavailable: string | null = null;
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      timings[name] = Math.round(performance.now() - t0);
    }
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'residency-package-'));
    const version = await run(NPM, ['--version'], tmp);
    if (version.spawnError) {
      unavailable = `npm pack cannot run here (${version.spawnError.message})`;
      console.warn(`test/package: skipped: ${unavailable}`);
      return;
    }

    // The package's build inputs, copied, with this repository's node_modules.
    const pkg = readJson(path.join(ROOT, 'package.json'));
    const stage = path.join(tmp, 'package');
    fs.mkdirSync(stage);
    const inputs = new Set(['package.json', 'tsup.config.ts', 'src', 'machines', ...(pkg.files as string[]).filter((f) => f !== 'dist')]);
    for (const f of fs.readdirSync(ROOT)) if (/^tsconfig.*\.json$/.test(f)) inputs.add(f);
    for (const f of inputs) if (fs.existsSync(path.join(ROOT, f))) fs.cpSync(path.join(ROOT, f), path.join(stage, f), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(stage, 'node_modules'), 'dir');

    await timed('build', async () => ok(await run(NPM, ['run', 'build'], stage, 180_000), 'npm run build'));
    const pack = await timed('pack', () => run(NPM, ['pack', '--pack-destination', tmp, '--json'], stage));
    if (pack.spawnError) {
      unavailable = `npm pack cannot run here (${pack.spawnError.message})`;
      console.warn(`test/package: skipped: ${unavailable}`);
      return;
    }
    ok(pack, 'npm pack');
    const tarball = path.join(tmp, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);

    // A fresh project that depends on the tarball and on the user's own fast-check.
    app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.renameSync(tarball, path.join(app, path.basename(tarball)));
    const fastCheckRange = pkg.devDependencies['fast-check'] as string;
    fs.writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, dependencies: { residency: `file:${path.basename(tarball)}`, 'fast-check': fastCheckRange } }, null, 2),
    );
    fs.writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify(consumerLock(pkg, path.join(app, path.basename(tarball)), fastCheckRange), null, 2));
    const flags = ['--no-audit', '--no-fund', '--ignore-scripts'];
    let install = await timed('install', () => run(NPM, ['install', '--offline', ...flags], app));
    if (install.code !== 0) {
      console.warn(`test/package: the offline install failed, trying the registry:\n${install.stderr}`);
      install = await timed('install', () => run(NPM, ['install', '--prefer-offline', ...flags], app));
    }
    ok(install, 'npm install');
    installed = path.join(app, 'node_modules', 'residency');

    // better-sqlite3 without its install script has no native module: this repository's
    // (built for this Node) is copied in, or the whole package linked if the versions differ.
    const ours = path.join(ROOT, 'node_modules', 'better-sqlite3');
    const theirs = path.join(app, 'node_modules', 'better-sqlite3');
    if (fs.existsSync(theirs) && readJson(path.join(theirs, 'package.json')).version === readJson(path.join(ours, 'package.json')).version) {
      fs.mkdirSync(path.join(theirs, 'build', 'Release'), { recursive: true });
      fs.copyFileSync(path.join(ours, 'build', 'Release', 'better_sqlite3.node'), path.join(theirs, 'build', 'Release', 'better_sqlite3.node'));
    } else {
      fs.rmSync(theirs, { recursive: true, force: true });
      fs.symlinkSync(ours, theirs, 'dir');
    }

    for (const f of fs.readdirSync(FIXTURES)) fs.copyFileSync(path.join(FIXTURES, f), path.join(app, f));
  }, 300_000);

  afterAll(() => {
    if (Object.keys(timings).length > 0) console.log(`test/package: ${Object.entries(timings).map(([k, ms]) => `${k} ${ms} ms`).join(', ')}`);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('ships one copy of the runtime, without fast-check, and types without @internal members', (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const files = filesUnder(path.join(installed, 'dist'));
    for (const entry of ['index.js', 'index.cjs', 'testing/index.js', 'testing/index.cjs', 'internal.js', 'internal.cjs', 'postgres.js', 'postgres.cjs', 'bin.js']) {
      expect(files, entry).toContain(entry);
      // The entries are small: the runtime is in chunks they share.
      expect(fs.statSync(path.join(installed, 'dist', entry)).size, entry).toBeLessThan(64 * 1024);
    }
    const code = files.filter((f) => /\.c?js$/.test(f)).map((f) => fs.readFileSync(path.join(installed, 'dist', f), 'utf8'));
    // fast-check (and pure-rand, which it brings) is loaded from the user's install, never bundled.
    expect(code.some((c) => /import\("fast-check"\)|require\("fast-check"\)/.test(c))).toBe(true);
    expect(code.some((c) => c.includes('pure-rand'))).toBe(false);
    // pg (for residency/postgres) is the user's too: loaded at run time, never bundled.
    expect(code.some((c) => /"pg"/.test(c))).toBe(true);
    expect(code.some((c) => c.includes('pg-protocol') || c.includes('pg-pool'))).toBe(false);
    const manifest = readJson(path.join(installed, 'package.json'));
    expect(manifest.peerDependencies).toHaveProperty('fast-check');
    expect(manifest.peerDependencies).toHaveProperty('pg');
    expect(manifest.peerDependenciesMeta).toEqual({ 'fast-check': { optional: true }, pg: { optional: true } });
    expect(manifest.dependencies).not.toHaveProperty('fast-check');
    const types = files.filter((f) => /\.d\.c?ts$/.test(f)).map((f) => fs.readFileSync(path.join(installed, 'dist', f), 'utf8'));
    expect(types.length).toBeGreaterThan(0);
    for (const t of types) expect(t).not.toContain('@internal');
  });

  for (const consumer of ['consumer.mjs', 'consumer.cjs']) {
    it(`${consumer}: one runtime across residency, residency/testing and residency/internal`, async (ctx) => {
      if (unavailable) ctx.skip(unavailable);
      const out = lastJsonLine(ok(await run(process.execPath, [consumer], app), consumer));
      // The root is the public API: its names, more error classes at most, none of the plumbing.
      expect(out.root).toEqual(expect.arrayContaining(PUBLIC_API));
      expect((out.root as string[]).filter((name) => !PUBLIC_API.includes(name) && !/^[A-Z]\w*Error$/.test(name))).toEqual([]);
      for (const name of PLUMBING) {
        expect(out.root, name).not.toContain(name);
        expect(out.internal, name).toContain(name);
      }
      expect(out.testing).toEqual(expect.arrayContaining(['checkEvictionTransparency', 'createTestRuntime', 'explore']));
      expect(out.notFound).toEqual({ name: 'AgentNotFoundError', code: 'AGENT_NOT_FOUND', rootClass: true, rootBase: true });
      expect(out.ask).toEqual({ n: 1 });
      if (consumer === 'consumer.mjs') {
        expect(out).toMatchObject({ transparent: true, sameFastCheck: true });
        expect(out.pgMissing).toEqual({ name: 'StoreError', sameClass: true, npmInstall: true });
        expect(out.shard).toBe(shardOf('alice', 256));
      }
      else expect(out.sqlite).toBe('a');
    });
  }

  it('its published types compile with skipLibCheck off, for import and for require', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        },
        files: ['types.mts', 'types.cts'],
      }),
    );
    const tsc = await timed('tsc', () => run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app));
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
  });

  it('bundled into an application of its own (esbuild), sqliteStore(path) works: it writes on the calling thread when the writer entry is not there', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const { build } = await import('esbuild');
    const out = path.join(app, 'bundle', 'app.mjs');
    await build({ entryPoints: [path.join(app, 'bundled.mjs')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: out, external: ['better-sqlite3'], absWorkingDir: app, logLevel: 'silent', banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
    // better-sqlite3 stays a package, found in the app's node_modules above the bundle.
    const r = ok(await run(process.execPath, [out], app), 'node bundle/app.mjs');
    expect(lastJsonLine(r)).toEqual({ n: 5, writerEntryNextToBundle: false });
  });

  it('npx residency demo runs on the installed package and its embedded store', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const db = path.join(tmp, 'demo.db');
    const demo = await timed('demo', () => run(NPX, ['--no', 'residency', 'demo', '--agents', '100', '--duration', '2', '--db', db], app));
    ok(demo, 'npx residency demo');
    expect(demo.stdout.trimEnd().split('\n').at(-1)).toBe('every accepted message handled exactly once: yes');
  });
});
