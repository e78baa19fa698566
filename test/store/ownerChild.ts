/**
 * A child process for the ownership tests (test/store/ownership.test.ts):
 *
 *   node --import tsx test/store/ownerChild.ts <dbPath> <what>
 *
 * - `hold`: opens sqliteStore(dbPath), acquires it, prints `ready <pid> <epoch>` and waits
 *   (until killed).
 * - `try`: opens sqliteStore(dbPath), tries to acquire it, prints one JSON line
 *   `{ ok, epoch?, name?, code?, holder?, message? }` and exits.
 * - `open`: opens sqliteStore(dbPath) for writing, prints the same JSON line (`ok` when it
 *   opened) and exits (the file-permission tests run it as another user).
 * - `residency-wal`: creates a residency database with agent "alice", then kills itself
 *   (SIGKILL) before any checkpoint: its header and data are only in the `-wal` file.
 * - `foreign-wal`: creates another application's database in WAL mode (a table "notes"),
 *   then kills itself the same way: the file's own header still says "empty".
 */
import os from 'node:os';
import Database from 'better-sqlite3';
import { sqliteStore } from '../../src/store/sqliteStore.js';

const [file, what] = process.argv.slice(2);
if (file === undefined || what === undefined) throw new Error('usage: ownerChild.ts <dbPath> <hold|try|open|residency-wal|foreign-wal>');

function report(error: unknown, extra: Record<string, unknown> = {}): void {
  if (error === null) {
    console.log(JSON.stringify({ ok: true, ...extra }));
    return;
  }
  const e = error as { name?: string; code?: string; holder?: unknown; message?: string };
  console.log(JSON.stringify({ ok: false, name: e.name, code: e.code, holder: e.holder, message: e.message }));
}

const owner = { pid: process.pid, host: os.hostname(), since: Date.now() };

switch (what) {
  case 'hold': {
    const store = sqliteStore(file);
    const { epoch } = await store.acquire(owner);
    console.log(`ready ${process.pid} ${epoch}`);
    // Held as a runtime holds its store, until the test kills this process.
    setInterval(() => void store.kind, 60_000);
    break;
  }
  case 'try': {
    try {
      const store = sqliteStore(file);
      try {
        const { epoch } = await store.acquire(owner);
        report(null, { epoch });
      } finally {
        await store.close();
      }
    } catch (error) {
      report(error);
    }
    break;
  }
  case 'open': {
    try {
      await sqliteStore(file).close();
      report(null);
    } catch (error) {
      report(error);
    }
    break;
  }
  case 'residency-wal': {
    const store = sqliteStore(file);
    await store.createAgent({ id: 'alice', type: 'chat', parent: null, pinned: false, input: { n: 1 }, createdAt: 1 });
    process.kill(process.pid, 'SIGKILL');
    break;
  }
  case 'foreign-wal': {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me')");
    process.kill(process.pid, 'SIGKILL');
    break;
  }
  default:
    throw new Error(`unknown mode ${what}`);
}
