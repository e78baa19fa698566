/**
 * A child process for test/store/lazyDriver.test.ts: loads a built bundle of the package
 * root (`require` for .cjs, `import` for .js), puts an agent on memoryStore, opens
 * sqliteStore(':memory:') and prints one JSON line with what happened.
 *
 *   node [--import ./withoutSqliteDriver.mjs] lazyDriverBundleChild.mjs <bundle>
 */
import { createRequire } from 'node:module';

const bundle = process.argv[2];
const residency = bundle.endsWith('.cjs') ? createRequire(import.meta.url)(bundle) : await import(bundle);
const record = (id) => ({ id, type: 't', parent: null, pinned: false, input: null, createdAt: 0 });
const out = {};

const memory = residency.memoryStore();
await memory.createAgent(record('a'));
out.memory = (await memory.getAgent('a'))?.id ?? null;
out.createRuntime = typeof residency.createRuntime;

try {
  const store = residency.sqliteStore(':memory:');
  await store.createAgent(record('a'));
  out.sqlite = { ok: true, found: (await store.getAgent('a'))?.id };
  await store.close();
} catch (error) {
  out.sqlite = { ok: false, isStoreError: error instanceof residency.StoreError, code: error?.code, message: error?.message };
}
console.log(JSON.stringify(out));
