/**
 * A child process for test/store/lazyDriver.test.ts: imports the package root, runs an
 * agent on memoryStore, then opens sqliteStore(':memory:'), and prints one JSON line with
 * what happened. Run with test/store/withoutSqliteDriver.mjs preloaded to check that
 * residency works without better-sqlite3 until a SQLite store is asked for.
 */
import { createRequire } from 'node:module';

const out: Record<string, unknown> = {};
const describe = (error: unknown) => {
  const e = error as { name?: string; code?: string; message?: string };
  return { name: e?.name, code: e?.code, message: e?.message };
};

try {
  createRequire(import.meta.url)('better-sqlite3');
  out.require = 'loaded';
} catch (error) {
  out.require = describe(error);
}
try {
  await import('better-sqlite3');
  out.import = 'loaded';
} catch (error) {
  out.import = describe(error);
}

const { createRuntime, defineAgent, fromTurn, memoryStore, sqliteStore, StoreError } = await import('../../src/index.js');

const counter = defineAgent({
  type: 'counter',
  logic: fromTurn<{ n: number }>(async ({ state }) => ({ n: state.n + 1 }), { initialState: { n: 0 } }),
});
const runtime = await createRuntime({ agents: [counter], residentCap: 2, runningCap: 1, store: memoryStore() });
await runtime.spawn('counter', { id: 'c1', input: {} });
const answer = await runtime.ask('c1', { type: 'inc' });
out.memory = { outcome: answer.outcome, state: answer.state };
await runtime.stop();

try {
  const store = sqliteStore(':memory:');
  await store.createAgent({ id: 'a', type: 't', parent: null, pinned: false, input: null, createdAt: 0 });
  out.sqlite = { ok: true, found: (await store.getAgent('a'))?.id };
  await store.close();
} catch (error) {
  out.sqlite = { ok: false, isStoreError: error instanceof StoreError, ...describe(error) };
}

console.log(JSON.stringify(out));
