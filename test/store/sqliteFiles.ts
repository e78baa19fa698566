/**
 * Temporary SQLite files and stores for the store tests: each test file calls
 * `sqliteFiles(prefix)` once, gets `dbFile()` (a fresh path in a folder of its own) and
 * `track(store)` (closed after each test); everything is removed after the file's tests.
 * Also the fixtures they share: an agent record, a raw connection, zeroed counters, and
 * whether another process holds SQLite's shared-lock range of a file.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach } from 'vitest';
import type { AgentRecord, AgentStats, Store } from '../../src/store/Store.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';

export function sqliteFiles(prefix: string): { dbFile: () => string; track: (store: Store) => Store } {
  const tempDirs: string[] = [];
  const open: Store[] = [];
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close().catch(() => {});
  });
  afterAll(() => {
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    dbFile() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `residency-${prefix}-`));
      tempDirs.push(dir);
      return path.join(dir, 'agents.db');
    },
    track(store) {
      open.push(store);
      return store;
    },
  };
}

export function agent(id: string, fields: Partial<AgentRecord> = {}): AgentRecord {
  return { id, type: 'counter', parent: null, pinned: false, input: { start: 0 }, createdAt: 1_000, ...fields };
}

/** Runs `work` on a raw connection to the file, then closes it. */
export function withRaw<T>(file: string, work: (db: Database.Database) => T): T {
  const db = new Database(file);
  try {
    return work(db);
  } finally {
    db.close();
  }
}

/** The counters of an agent that never did anything. */
export const NO_ACTIVITY: AgentStats = { turns: 0, failed: 0, crashed: 0, interrupted: 0, mailbox: 0, timers: 0, lastActiveAt: null };

/**
 * Whether another process could take a write lock on SQLite's shared-lock byte range of
 * the file ('free'), or a process holds a lock there ('held'); null without python3.
 * (POSIX F_GETLK, asked from a child process: a process never conflicts with itself.)
 */
export function sharedRange(file: string): 'free' | 'held' | null {
  const script = [
    'import fcntl, os, struct, sys',
    'fd = os.open(sys.argv[1], os.O_RDWR)',
    'lock = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0x40000002, 510, 0)',
    'print("free" if struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, lock))[0] == fcntl.F_UNLCK else "held")',
  ].join('\n');
  try {
    return execFileSync('python3', ['-c', script, file]).toString().trim() as 'free' | 'held';
  } catch {
    return null;
  }
}

/**
 * sqliteStore with its writes on the calling thread (`writer: 'main'`): for the tests of that
 * store's own internals (WAL and fsync counts, busy timeouts, settings), and for tests that
 * step a manual clock a fixed number of turns of the event loop. sqliteThreadStore.test.ts
 * covers the writer thread, the default.
 */
export const sqliteStoreOnThisThread: typeof sqliteStore = (path, options) => sqliteStore(path, { writer: 'main', ...options });
