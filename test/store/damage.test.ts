/**
 * Damage inside an SQLite file: bytes flipped in a page that holds one agent's rows make
 * SQLite throw SQLITE_CORRUPT ("database disk image is malformed") when it reads that
 * page. sqliteStore turns that into StoreCorruptionError for reads about that agent (the
 * runtime quarantines it), leaves it out of multi-agent reads, and keeps every other
 * agent working.
 *
 * The pages are found by scanning the closed file for a distinctive string stored in one
 * agent's rows; a page is damaged only when it holds that agent's string and no other
 * agent's, and its b-tree page header is overwritten (SQLite checks it on every read).
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StoreCorruptionError } from '../../src/errors.js';
import type { AgentRecord, AppendRequest, Store } from '../../src/store/Store.js';

import { sqliteFiles, sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const { dbFile, track } = sqliteFiles('damage');

const PAGE_SIZE = 4096;
/** The agents, in the order they are written: the damaged one ("alice") is neither first nor last. */
const AGENTS = ['bob', 'alice', 'carol'];
/** Enough messages that some leaf pages of the mailbox table hold only alice's. */
const MESSAGES = 24;

/** Text that fills most of a page, starting with a string found nowhere else. */
function pad(id: string, what: string, size: number): string {
  return `${id}-${what}-marker:`.padEnd(size, '.');
}

function record(id: string): AgentRecord {
  return { id, type: 'counter', parent: 'root', pinned: false, input: { pad: pad(id, 'input', 3_000) }, createdAt: 1_000 };
}

function message(id: string, n: number): AppendRequest {
  return { agentId: id, messageId: `m${n}`, message: { type: 'inc', pad: pad(id, 'message', 1_500) }, at: 2_000 + n };
}

async function build(): Promise<string> {
  const file = dbFile();
  const store = sqliteStore(file);
  for (const id of AGENTS) {
    await store.createAgent(record(id));
    for (let n = 1; n <= MESSAGES; n++) await store.append([message(id, n)]);
    await store.commitTurn({ agentId: id, seq: 1, outcome: 'done', snapshot: { pad: pad(id, 'snapshot', 3_000) }, at: 3_000, durationMs: 1 });
  }
  // Closing the last connection checkpoints the WAL: every page is in the file itself.
  await store.close();
  return file;
}

/** Overwrites the b-tree header of every page that holds `alice-<what>-marker` and no other agent's. Returns their number. */
function damage(file: string, what: string): number {
  const bytes = fs.readFileSync(file);
  const own = Buffer.from(`alice-${what}-marker`);
  const others = AGENTS.filter((id) => id !== 'alice').map((id) => Buffer.from(`${id}-${what}-marker`));
  let damaged = 0;
  // Page 1 (the schema) is left alone.
  for (let page = 1; page * PAGE_SIZE < bytes.length; page++) {
    const body = bytes.subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    if (body.includes(own) && !others.some((other) => body.includes(other))) {
      body.fill(0xff, 0, 12);
      damaged++;
    }
  }
  fs.writeFileSync(file, bytes);
  return damaged;
}

async function expectCorrupt(call: Promise<unknown>): Promise<void> {
  const error = await call.then(
    () => new Error('resolved'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreCorruptionError);
  expect(error).toMatchObject({ code: 'STORE_CORRUPTION', agentId: 'alice' });
  expect((error as StoreCorruptionError).what).toMatch(/^the database file is damaged where it keeps its .* \(SQLite: database disk image is malformed\)/);
}

/** Everything bob and carol do still works: reads, listings, appends, turns, spawns, notes. */
async function expectOthersWork(store: Store): Promise<void> {
  for (const id of ['bob', 'carol']) {
    expect(await store.getAgent(id)).toEqual(record(id));
    expect(await store.loadSnapshot(id)).toEqual({ pad: pad(id, 'snapshot', 3_000) });
    expect((await store.pending(id)).map((m) => m.seq)).toEqual(Array.from({ length: MESSAGES - 1 }, (_, i) => i + 2));
    expect(await store.mailboxSize(id)).toBe(MESSAGES - 1);
    expect((await store.rollout(id)).length).toBe(MESSAGES + 2);
  }
  const next = MESSAGES + 1;
  expect((await store.append([message('carol', next)]))[0]).toMatchObject({ seq: next, duplicate: false });
  await store.commitTurn({ agentId: 'carol', seq: next, outcome: 'done', snapshot: { n: next }, at: 4_000, durationMs: 1 });
  expect(await store.loadSnapshot('carol')).toEqual({ n: next });
  await store.beginTurn('bob', 2, 4_000);
  await store.commitTurn({ agentId: 'bob', seq: 2, outcome: 'done', at: 4_000, durationMs: 1 });
  await store.createAgent({ ...record('dave'), input: null });
  await store.note('dave', { kind: 'note', note: 'spawned', at: 5_000 });
  expect((await store.rollout('dave')).map((e) => e.kind)).toEqual(['note']);
}

describe('sqliteStore: a damaged page quarantines the agent whose rows it holds', () => {
  it("bytes flipped in alice's record page: getAgent(alice) rejects StoreCorruptionError; listings leave her out", async () => {
    const file = await build();
    expect(damage(file, 'input')).toBeGreaterThan(0);
    const store = sqliteStore(file);
    track(store);
    await expectCorrupt(store.getAgent('alice'));
    // Her other rows live on sound pages.
    expect((await store.pending('alice')).length).toBe(MESSAGES - 1);
    expect((await store.getAgents(['alice', 'bob', 'carol'])).map((a) => a.id).sort()).toEqual(['bob', 'carol']);
    expect(await store.listAgents()).toEqual({ agents: [record('bob'), record('carol')], cursor: null });
    expect(await store.listAgents({ parent: 'root', type: 'counter' })).toEqual({ agents: [record('bob'), record('carol')], cursor: null });
    // So do the counters, and the filters that read them.
    expect([...(await store.agentStats(['alice', 'bob', 'carol'])).keys()].sort()).toEqual(['bob', 'carol']);
    expect(await store.listAgents({ hasMail: true, pinned: false })).toEqual({ agents: [record('bob'), record('carol')], cursor: null });
    // Paging one by one neither skips nor repeats an agent, and ends.
    const first = await store.listAgents({ limit: 1 });
    expect(first).toEqual({ agents: [record('bob')], cursor: 'bob' });
    expect(await store.listAgents({ limit: 1, cursor: first.cursor })).toEqual({ agents: [record('carol')], cursor: null });
    await expectOthersWork(store);
    expect((await store.listAgents()).agents.map((a) => a.id)).toEqual(['bob', 'carol', 'dave']);
  });

  it("bytes flipped in alice's snapshot page: loadSnapshot(alice) rejects StoreCorruptionError", async () => {
    const file = await build();
    expect(damage(file, 'snapshot')).toBeGreaterThan(0);
    const store = sqliteStore(file);
    track(store);
    await expectCorrupt(store.loadSnapshot('alice'));
    expect(await store.getAgent('alice')).toEqual(record('alice'));
    await expectOthersWork(store);
  });

  it("bytes flipped in the pages of alice's messages: pending and rollout of alice reject StoreCorruptionError", async () => {
    const file = await build();
    expect(damage(file, 'message')).toBeGreaterThan(0);
    const store = sqliteStore(file);
    track(store);
    await expectCorrupt(store.pending('alice'));
    await expectCorrupt(store.rollout('alice'));
    expect(await store.getAgent('alice')).toEqual(record('alice'));
    expect(await store.listAgents()).toEqual({ agents: AGENTS.map(record).sort((a, b) => (a.id < b.id ? -1 : 1)), cursor: null });
    await expectOthersWork(store);
  });
});
