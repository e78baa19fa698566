/**
 * `residency ls`, `show` and `stats`: read a database left behind by a runtime (the
 * demo's, or yours) through the Store interface. No runtime runs it, so no agent is
 * resident: every agent is `unloaded`, its mailbox and rollout as they were stored.
 *
 * Readers never write: the database is opened read-only (never created, migrated or
 * checkpointed), so they also read one that a running runtime owns and writes. Stored
 * text is printed with its control characters escaped (see `printable`).
 *
 * Damage. An agent whose stored data cannot be read (its snapshot, mailbox or rollout
 * rejects with StoreCorruptionError: text that is not JSON, bytes flipped in a page of
 * the file) is left out of `ls` and `stats`, which name it and what is damaged and go
 * on with the others; `show` of it says so in one line. A record the store's listing
 * cannot read is left out by the store itself (it does not say which), so only `show`
 * names that one.
 */
import fs from 'node:fs';
import { AgentNotFoundError, StoreCorruptionError } from '../errors.js';
import { sqliteStore } from '../store/sqliteStore.js';
import type { AgentRecord, AgentStats, RolloutEntry, Store } from '../store/Store.js';
import { agentRow } from '../runtime/agentRows.js';
import { examineDatabaseFile, notAFile } from './dbFile.js';
import { CliError, count, damagedLine, damagedList, fields, jsonText, printable, table, time, type Damaged, type Io } from './format.js';

export { CliError } from './format.js';

export const NOT_RESIDENT_NOTE = 'nothing is resident in a stored database: no runtime is running it, so every agent is unloaded';

/**
 * Opens an existing residency database read-only. Refuses, before SQLite opens anything,
 * a missing path, a directory, and a file that is not a residency database.
 */
export function openReader(db: string): Store {
  const file = examineDatabaseFile(db);
  const usage = notAFile(db, file);
  if (usage) throw usage;
  if (file.kind === 'missing') throw new CliError(`No database at "${db}": run \`residency demo\` first, or pass --db <path>`);
  if (file.kind === 'other') {
    throw new CliError(`"${db}" is not a residency database (${file.why}): pass the path of a database a residency runtime wrote`);
  }
  return sqliteStore(db, { readonly: true });
}

/** Opens an existing database read-only (never creates or writes one), runs `fn`, closes it. */
export async function withStore<T>(db: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = openReader(db);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

interface Row {
  id: string;
  type: string;
  parent: string | null;
  pinned: boolean;
  state: 'unloaded';
  resident: false;
  mailbox: number;
  turns: number;
  lastActiveAt: number;
}

/**
 * What `ls` and `stats` read of one agent, in O(1) whatever its history: its counters,
 * and its snapshot and last rollout entry (read only to find damage).
 */
async function readAgent(store: Store, id: string): Promise<AgentStats | undefined> {
  const stats = (await store.agentStats([id])).get(id);
  await store.rollout(id, { limit: 1 });
  await store.loadSnapshot(id);
  return stats;
}

/** `read`, or the damage it found (a StoreCorruptionError); other failures are thrown. */
async function orDamage<T>(id: string, read: () => Promise<T>): Promise<{ ok: T } | { damaged: Damaged }> {
  try {
    return { ok: await read() };
  } catch (err) {
    if (err instanceof StoreCorruptionError) return { damaged: { id, error: err.what } };
    throw err;
  }
}

/** The row of an agent of a stored database (nothing runs it: unloaded), by the runtime's one row builder. */
function row(rec: AgentRecord, stats: AgentStats | undefined): Row {
  const r = agentRow(rec, stats, null);
  return { ...r, state: 'unloaded', resident: false, lastActiveAt: r.lastActiveAt ?? rec.createdAt };
}

async function* allAgents(store: Store, type?: string): AsyncGenerator<AgentRecord> {
  let cursor: string | null = null;
  do {
    const page = await store.listAgents({ type, limit: 500, cursor });
    yield* page.agents;
    cursor = page.cursor;
  } while (cursor !== null);
}

export async function ls(o: { db: string; type?: string; resident: boolean; json: boolean }, io: Io): Promise<number> {
  const { rows, damaged } = await withStore(o.db, async (store) => {
    const out = { rows: [] as Row[], damaged: [] as Damaged[] };
    if (o.resident) return out;
    for await (const rec of allAgents(store, o.type)) {
      const read = await orDamage(rec.id, () => readAgent(store, rec.id));
      if ('ok' in read) out.rows.push(row(rec, read.ok));
      else out.damaged.push(read.damaged);
    }
    return out;
  });
  if (o.json) {
    io.out(`${jsonText({ agents: rows, damaged, ...(o.resident ? { note: NOT_RESIDENT_NOTE } : {}) })}\n`);
    return 0;
  }
  if (o.resident) {
    io.out(`no resident agents: ${NOT_RESIDENT_NOTE}\n`);
    return 0;
  }
  io.out(
    `${table(
      ['ID', 'TYPE', 'PARENT', 'PINNED', 'STATE', 'MAILBOX', 'TURNS', 'LAST ACTIVE'],
      rows.map((r) => [printable(r.id), printable(r.type), r.parent === null ? '-' : printable(r.parent), r.pinned ? 'yes' : 'no', r.state, r.mailbox, r.turns, time(r.lastActiveAt)]),
    )}\n${count(rows.length)} agents${o.type ? ` of type ${printable(o.type)}` : ''} (stored: none resident)\n`,
  );
  if (damaged.length > 0) io.out(`${damagedLine(damaged)}\n`);
  return 0;
}

/** One rollout entry in a line, stored text escaped. */
function describeEntry(e: RolloutEntry): string {
  return printable(describeRaw(e));
}

function describeRaw(e: RolloutEntry): string {
  switch (e.kind) {
    case 'accepted':
      return `#${e.seq} accepted ${JSON.stringify(e.message)}`;
    case 'turn.started':
      return `#${e.seq} turn started`;
    case 'turn.finished':
      return `#${e.seq} turn ${e.outcome} in ${e.durationMs} ms${e.error ? `: ${e.error}` : ''}`;
    case 'output':
      return `#${e.seq} output ${JSON.stringify(e.output)}`;
    case 'snapshot':
      return `#${e.seq} snapshot saved${e.value === undefined ? '' : ` · state ${JSON.stringify(e.value)}`}`;
    case 'note':
      return `${e.note}${e.reason ? ` (${e.reason})` : ''}`;
    default:
      // A kind this version does not know (a newer writer, or a damaged file).
      return JSON.stringify(e);
  }
}

export async function show(o: { db: string; id: string; json: boolean; last: number }, io: Io): Promise<number> {
  const read = await withStore(o.db, (store) =>
    orDamage(o.id, async () => {
      const rec = await store.getAgent(o.id);
      if (!rec) return null;
      const children = (await store.listAgents({ parent: o.id, limit: 1000 })).agents.map((a) => a.id);
      return {
        info: row(rec, await readAgent(store, o.id)),
        input: rec.input,
        createdAt: rec.createdAt,
        children,
        mailbox: await store.pending(o.id, 20),
        rollout: await store.rollout(o.id, { limit: o.last }),
        // How much history is kept: the turns still in the rollout (bounded by the runtime's
        // retention policy), against the counter of every turn the agent finished.
        keptTurns: (await store.rollout(o.id)).filter((e) => e.kind === 'turn.finished').length,
      };
    }),
  );
  if ('damaged' in read) {
    throw new CliError(`Agent "${o.id}" cannot be read: ${read.damaged.error}. The database is damaged there: other agents can still be read (residency ls)`);
  }
  const found = read.ok;
  if (!found) throw new CliError(new AgentNotFoundError(o.id).message);
  if (o.json) {
    io.out(`${jsonText(found)}\n`);
    return 0;
  }
  const { info } = found;
  const children = found.children.map(printable);
  io.out(
    `${fields([
      ['id', printable(info.id)],
      ['type', printable(info.type)],
      ['parent', info.parent === null ? '-' : printable(info.parent)],
      ['pinned', info.pinned ? 'yes' : 'no'],
      ['state', `${info.state} (stored database: nothing is resident)`],
      ['created', time(found.createdAt)],
      ['last active', time(info.lastActiveAt)],
      ['turns', info.turns],
      ['history', found.keptTurns === info.turns ? `all ${info.turns} turns kept` : `the last ${found.keptTurns} of ${info.turns} turns kept (older ones pruned by the retention policy)`],
      ['mailbox', info.mailbox === 0 ? 'empty' : `${info.mailbox} pending`],
      ['children', children.length === 0 ? '-' : `${children.length}: ${children.slice(0, 8).join(', ')}${children.length > 8 ? ', …' : ''}`],
    ])}\n`,
  );
  if (found.mailbox.length > 0) {
    io.out(`\nmailbox (oldest first)\n${found.mailbox.map((m) => `  #${m.seq} ${time(m.at)} ${printable(JSON.stringify(m.message))}`).join('\n')}\n`);
  }
  io.out(`\nrollout (last ${found.rollout.length} entries)\n${found.rollout.map((e) => `  ${time(e.at)}  ${describeEntry(e)}`).join('\n')}\n`);
  return 0;
}

export async function stats(o: { db: string; json: boolean }, io: Io): Promise<number> {
  const s = await withStore(o.db, async (store) => {
    const byType: Record<string, number> = {};
    const outcomes: Record<string, number> = {};
    const damaged: Damaged[] = [];
    let agents = 0, pinned = 0, accepted = 0, pending = 0, withMail = 0;
    for await (const rec of allAgents(store)) {
      const read = await orDamage(rec.id, () => readAgent(store, rec.id));
      if ('damaged' in read) {
        damaged.push(read.damaged);
        continue;
      }
      agents++;
      if (rec.pinned) pinned++;
      byType[rec.type] = (byType[rec.type] ?? 0) + 1;
      // From the counters (O(1) per agent, exact whatever the history kept): every accepted
      // message is handled (a turn of some outcome) or pending.
      const c = read.ok ?? { turns: 0, failed: 0, crashed: 0, interrupted: 0, mailbox: 0, lastActiveAt: null };
      const done = c.turns - c.failed - c.crashed - c.interrupted;
      for (const [k, n] of [['done', done], ['failed', c.failed], ['crashed', c.crashed], ['interrupted', c.interrupted]] as const) {
        if (n > 0) outcomes[k] = (outcomes[k] ?? 0) + n;
      }
      accepted += c.turns + c.mailbox;
      const n = c.mailbox;
      pending += n;
      if (n > 0) withMail++;
    }
    const inFlight = (await store.turnsInFlight()).length;
    const handled = Object.values(outcomes).reduce((a, b) => a + b, 0);
    return {
      db: o.db,
      bytes: fs.statSync(o.db).size,
      agents, pinned, byType,
      damaged,
      resident: 0,
      note: NOT_RESIDENT_NOTE,
      messages: { accepted, handled, pending, agentsWithPending: withMail, turnsInFlight: inFlight },
      outcomes,
    };
  });
  if (o.json) {
    io.out(`${jsonText(s)}\n`);
    return 0;
  }
  io.out(
    `${fields([
      ['database', `${printable(s.db)} (${count(Math.round(s.bytes / 1024))} KiB)`],
      [
        'agents',
        `${count(s.agents)} (${Object.entries(s.byType).sort(([a], [b]) => a.localeCompare(b)).map(([t, n]) => `${count(n)} ${printable(t)}`).join(', ') || 'none'}), ${count(s.pinned)} pinned` +
          (s.damaged.length > 0 ? `; ${count(s.damaged.length)} more could not be read` : ''),
      ],
      ...(s.damaged.length > 0 ? [['unreadable', damagedList(s.damaged)] as const] : []),
      ['resident', `0: ${s.note}`],
      ['messages', `${count(s.messages.accepted)} accepted, ${count(s.messages.handled)} handled, ${count(s.messages.pending)} pending (in ${count(s.messages.agentsWithPending)} mailboxes)`],
      ['turns', Object.entries(s.outcomes).map(([k, n]) => `${count(n)} ${printable(k)}`).join(', ') || 'none'],
      ['in flight', `${count(s.messages.turnsInFlight)} (recorded crashed at the next start)`],
    ])}\n`,
  );
  return 0;
}
