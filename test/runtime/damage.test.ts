/**
 * Damage, not disaster: one agent whose stored record cannot be read is quarantined
 * (`failed`, with a StoreCorruptionError naming it and what is wrong); every other agent
 * keeps working and the runtime starts. A file that is not a residency database is
 * refused and left untouched.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/createRuntime.js';
import { StoreCorruptionError, StoreError } from '../../src/errors.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import { counterAgent, record, until, type Handled } from './helpers.js';

const dirs: string[] = [];
const tempDb = () => {
  const dir = mkdtempSync(join(tmpdir(), 'residency-damage-'));
  dirs.push(dir);
  return join(dir, 'db', 'residency.db');
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function seeded(path: string, handled: Handled) {
  const runtime = await createRuntime({ agents: [counterAgent(handled)], residentCap: 2, runningCap: 1, store: sqliteStore(path) });
  for (const id of ['a', 'b', 'c']) {
    await runtime.spawn('counter', { id });
    await runtime.ask(id, { type: 'inc', n: 1 });
  }
  await runtime.stop();
}

describe('damaged records', () => {
  for (const [what, damage] of [
    ['snapshot', "UPDATE snapshots SET snapshot = '{not json' WHERE agent_id = 'b'"],
    ['pending message', "UPDATE messages SET message = '{not json' WHERE agent_id = 'b' AND consumed = 0"],
  ] as const) {
    it(`quarantines only the agent whose ${what} cannot be read`, async () => {
      const path = tempDb();
      const handled: Handled = new Map();
      await seeded(path, handled);
      // A message waits for b (as if the process stopped before handling it); then b's
      // record is damaged behind the store's back.
      {
        const store = sqliteStore(path);
        await store.append([{ agentId: 'b', messageId: 'late', message: { type: 'inc', n: 2 }, at: 0 }]);
        await store.close();
      }
      const raw = new Database(path);
      raw.exec(damage);
      raw.close();

      const runtime = await createRuntime({ agents: [counterAgent(handled)], residentCap: 2, runningCap: 1, store: sqliteStore(path) });
      const failed = record(runtime, 'agent.failed');
      await until(() => failed.length === 1, 'b to be quarantined');
      expect(failed[0]!.id).toBe('b');
      expect(failed[0]!.error).toBeInstanceOf(StoreCorruptionError);
      expect(failed[0]!.error.message).toMatch(/Agent "b" cannot be loaded/);
      expect((await runtime.get('b')).state).toBe('failed');
      expect((await runtime.get('b')).mailbox).toBe(1); // kept, durable, waiting for a repair
      expect((await runtime.get('a')).state).toBe('unloaded');
      // Every other agent keeps working.
      expect((await runtime.ask('a', { type: 'inc', n: 2 })).state).toEqual({ count: 2, seen: [1, 2] });
      expect((await runtime.ask('c', { type: 'inc', n: 2 })).state).toEqual({ count: 2, seen: [1, 2] });
      await runtime.stop();
    });
  }

  it('refuses a file that is not a residency database and leaves it untouched', async () => {
    const path = tempDb();
    await seeded(path, new Map()); // create the folder
    const other = join(path, '..', 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)');
    db.close();
    const before = readFileSync(other);
    expect(() => sqliteStore(other)).toThrow(StoreError);
    expect(readFileSync(other).equals(before)).toBe(true);
    const garbage = join(path, '..', 'notes.txt');
    writeFileSync(garbage, 'hello, not a database at all, but long enough to have a header of one hundred bytes.......');
    expect(() => sqliteStore(garbage)).toThrow(StoreError);
  });
});
