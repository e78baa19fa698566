/**
 * A residency database in which one agent ("b") cannot be read, for the readers' tests
 * (`residency ls`, `stats`, `show`, the inspectors): a runtime spawns a, b and c and asks
 * each once, stops, and then b's stored data is damaged behind the store's back.
 *
 * - `snapshot`, `rollout`, `record`: b's snapshot, rollout entries or record (its input)
 *   hold text that is not JSON;
 * - `pages`: bytes flipped in the pages of the file that hold b's rows only (SQLite then
 *   reads "database disk image is malformed" there).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { createRuntime } from '../../src/createRuntime.js';
import { sqliteStore } from '../../src/store/sqliteStore.js';
import { counterAgent } from '../runtime/helpers.js';

export type Damage = 'snapshot' | 'rollout' | 'record' | 'pages';

export const DAMAGE_SQL: Record<Exclude<Damage, 'pages'>, string> = {
  snapshot: "UPDATE snapshots SET snapshot = '{not json' WHERE agent_id = 'b'",
  rollout: "UPDATE rollout SET entry = '{x' WHERE agent_id = 'b'",
  record: "UPDATE agents SET input = '{x' WHERE id = 'b'",
};

/** What a reader says is damaged, for each kind of damage. */
export const DAMAGE_SAID: Record<Damage, RegExp> = {
  snapshot: /^its snapshot is not valid JSON \(.+\)$/,
  rollout: /^an entry of its rollout is not valid JSON \(.+\)$/,
  record: /^the input in its record is not valid JSON \(.+\)$/,
  pages: /^the database file is damaged where it keeps its (rollout|mailbox|snapshot) \(SQLite: database disk image is malformed\)$/,
};

/** Messages of a few KiB each, so that some pages of the file hold only b's. */
const PADDED = 12;
const marker = (id: string) => `${id}-pad-marker:`;

/** Writes the database at `path` (a new file), then damages b as `damage` says. */
export async function damagedDatabase(path: string, damage: Damage | null, options: { sql?: string } = {}): Promise<void> {
  const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store: sqliteStore(path) });
  for (const id of ['a', 'b', 'c']) {
    await runtime.spawn('counter', { id });
    await runtime.ask(id, { type: 'inc', n: 1 });
  }
  await runtime.stop();
  if (damage === 'pages') {
    // Waiting messages (accepted, in the mailbox and the rollout), one agent after the other.
    const store = sqliteStore(path);
    for (const id of ['a', 'b', 'c']) {
      for (let n = 0; n < PADDED; n++) {
        await store.append([{ agentId: id, messageId: `pad-${n}`, message: { type: 'pad', text: marker(id).padEnd(1_500, '.') }, at: 1_000 + n }]);
      }
    }
    // Closing the last connection checkpoints the write-ahead log: every page is in the file.
    await store.close();
    flipPagesOf(path, 'b', ['a', 'c']);
    return;
  }
  if (damage !== null || options.sql !== undefined) {
    const raw = new Database(path);
    raw.exec(options.sql ?? DAMAGE_SQL[damage as Exclude<Damage, 'pages'>]);
    raw.close();
  }
}

/** Overwrites the b-tree header of every page that holds `id`'s marker and none of the others'. */
function flipPagesOf(path: string, id: string, others: string[]): void {
  const bytes = readFileSync(path);
  const pageSize = bytes.readUInt16BE(16);
  const own = Buffer.from(marker(id));
  const theirs = others.map((o) => Buffer.from(marker(o)));
  let flipped = 0;
  // Page 1 (the schema) is left alone.
  for (let page = 1; page * pageSize < bytes.length; page++) {
    const body = bytes.subarray(page * pageSize, (page + 1) * pageSize);
    if (body.includes(own) && !theirs.some((t) => body.includes(t))) {
      body.fill(0xff, 0, 12);
      flipped++;
    }
  }
  if (flipped === 0) throw new Error(`no page holds only ${id}'s rows`);
  writeFileSync(path, bytes);
}
