/**
 * Temporary SQLite files and stores for the store tests: each test file calls
 * `sqliteFiles(prefix)` once, gets `dbFile()` (a fresh path in a folder of its own) and
 * `track(store)` (closed after each test); everything is removed after the file's tests.
 * Also the fixtures they share: an agent record, a raw connection, zeroed counters.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach } from 'vitest';
import type { AgentRecord, AgentStats, Store } from '../../src/store/Store.js';

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
