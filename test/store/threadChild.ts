/**
 * A child process for test/store/sqliteThreadStore.test.ts:
 *
 *   node --import tsx test/store/threadChild.ts <dbPath> <what>
 *
 * - `unclosed`: opens sqliteStore(dbPath, { writer: 'thread' }), starts a write without
 *   awaiting it, prints `written` when it resolves and ends its code there, never closing
 *   the store: the process must stay alive until the write is done, then exit by itself
 *   (an idle writer thread keeps no process alive).
 * - `hold`: opens the store with its writer thread, acquires it, prints `ready <pid> <epoch>`
 *   and waits (until killed).
 */
import os from 'node:os';
import { sqliteStore } from '../../src/store/sqliteStore.js';

const [file, what] = process.argv.slice(2);
if (file === undefined || what === undefined) throw new Error('usage: threadChild.ts <dbPath> <unclosed|hold>');

const store = sqliteStore(file, { writer: 'thread' });
switch (what) {
  case 'unclosed':
    void store
      .createAgent({ id: 'alice', type: 'chat', parent: null, pinned: false, input: null, createdAt: 1 })
      .then(() => console.log('written'));
    break;
  case 'hold': {
    const { epoch } = await store.acquire({ pid: process.pid, host: os.hostname(), since: Date.now() });
    console.log(`ready ${process.pid} ${epoch}`);
    setInterval(() => void store.kind, 60_000);
    break;
  }
  default:
    throw new Error(`unknown mode ${what}`);
}
