/**
 * The reads of postgresStore: one statement each, values bound as parameters, JSON values
 * (jsonb) parsed anew by pg for every read, so a caller never shares an object with the
 * store. bigint columns are read as numbers (they count messages and turns: far below 2^53).
 *
 * A destroyed agent whose rows are still being deleted in the background has no `counters`
 * row and a `destroying` registry row: every read treats it as absent.
 */

import type pg from 'pg';
import { assertLimit } from '../../validate.js';
import { boundedLimit, checkDue, checkListFilters, DEFAULT_LIST_LIMIT, statsOfRow } from '../common.js';
import type { AgentRecord, AgentStats, ListOptions, ListResult, Message, RolloutEntry, StoredMessage, TimerRecord } from '../Store.js';
import type { PgDriver } from './pgDriver.js';

interface AgentRow {
  id: string;
  type: string;
  parent: string | null;
  pinned: boolean;
  input: unknown;
  created_at: number;
}

const AGENT_COLUMNS = 'a.id, a.type, a.parent, a.pinned, a.input, a.created_at';

function toRecord(row: AgentRow): AgentRecord {
  return { id: row.id, type: row.type, parent: row.parent, pinned: row.pinned, input: row.input, createdAt: row.created_at };
}

/** A limit as a LIMIT parameter: null (no limit) for Infinity. */
function limitOf(limit: number | undefined): number | null {
  return limit === undefined || limit === Number.POSITIVE_INFINITY ? null : boundedLimit(limit);
}

/** The reads of the store in schema `S` (quoted). */
export function makeReads(driver: PgDriver, S: string) {
  const bigints = (value: string): number => Number(value);
  /** pg's parsers, but bigint (int8) as a number. */
  const types: pg.CustomTypesConfig = {
    getTypeParser: ((oid: number, format?: string) =>
      oid === 20 ? bigints : driver.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
  };
  async function q<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[]): Promise<R[]> {
    const { rows } = await pool.query<R>({ text, values, types });
    return rows;
  }
  const live = `EXISTS (SELECT 1 FROM ${S}.counters c WHERE c.agent_id = $1)`;
  const inShards = (alias: string, n: number, shards: number[] | null) => (shards === null ? '' : ` AND ${alias}.shard = ANY($${n}::int[])`);

  return {
    checkLimit(limit: number): void {
      if (limit !== Number.POSITIVE_INFINITY) assertLimit(limit, 'limit');
    },
    checkDue,

    async getAgent(pool: pg.Pool, id: string): Promise<AgentRecord | null> {
      const rows = await q<AgentRow>(pool, `SELECT ${AGENT_COLUMNS} FROM ${S}.agents a WHERE a.id = $1 AND NOT a.destroying`, [id]);
      return rows[0] === undefined ? null : toRecord(rows[0]);
    },

    async getAgents(pool: pg.Pool, ids: readonly string[]): Promise<AgentRecord[]> {
      if (ids.length === 0) return [];
      const rows = await q<AgentRow>(pool, `SELECT ${AGENT_COLUMNS} FROM ${S}.agents a WHERE a.id = ANY($1::text[]) AND NOT a.destroying`, [
        [...new Set(ids)],
      ]);
      return rows.map(toRecord);
    },

    async listAgents(pool: pg.Pool, options: ListOptions): Promise<ListResult> {
      const { type, parent, pinned, hasMail, limit = DEFAULT_LIST_LIMIT, cursor = null } = options;
      assertLimit(limit, 'limit');
      checkListFilters(options);
      const pageSize = boundedLimit(limit);
      const values: unknown[] = [];
      const where = ['NOT a.destroying'];
      const bind = (value: unknown) => {
        values.push(value);
        return `$${values.length}`;
      };
      if (type !== undefined) where.push(`a.type = ${bind(type)}`);
      if (parent !== undefined) where.push(`a.parent = ${bind(parent)}`);
      if (pinned !== undefined) where.push(`a.pinned = ${bind(pinned)}`);
      if (hasMail !== undefined) {
        where.push(`${hasMail ? '' : 'NOT '}EXISTS (SELECT 1 FROM ${S}.counters c WHERE c.agent_id = a.id AND c.mailbox > 0)`);
      }
      if (cursor !== null) where.push(`a.id > ${bind(cursor)}`);
      // One more row than asked tells whether a next page exists.
      const rows = await q<AgentRow>(
        pool,
        `SELECT ${AGENT_COLUMNS} FROM ${S}.agents a WHERE ${where.join(' AND ')} ORDER BY a.id LIMIT ${bind(pageSize + 1)}`,
        values,
      );
      const page = rows.slice(0, pageSize);
      return { agents: page.map(toRecord), cursor: rows.length > pageSize ? page[page.length - 1]!.id : null };
    },

    async agentStats(pool: pg.Pool, ids: readonly string[]): Promise<Map<string, AgentStats>> {
      const out = new Map<string, AgentStats>();
      if (ids.length === 0) return out;
      const rows = await q<AgentStats & { id: string; last_active_at: number | null }>(
        pool,
        `SELECT agent_id AS id, turns, failed, crashed, interrupted, mailbox, timers, last_active_at FROM ${S}.counters WHERE agent_id = ANY($1::text[])`,
        [[...new Set(ids)]],
      );
      for (const row of rows) out.set(row.id, statsOfRow(row));
      return out;
    },

    async pending(pool: pg.Pool, agentId: string, limit: number): Promise<StoredMessage[]> {
      const rows = await q<{ seq: number; message_id: string; message: Message; at: number; reply_to: string | null }>(
        pool,
        `SELECT m.seq, m.message_id, m.message, m.at, m.reply_to FROM ${S}.messages m ` +
          `WHERE m.agent_id = $1 AND NOT m.consumed AND ${live} ORDER BY m.seq LIMIT $2`,
        [agentId, limitOf(limit)],
      );
      return rows.map((row) => ({
        agentId,
        seq: row.seq,
        messageId: row.message_id,
        message: row.message,
        at: row.at,
        ...(row.reply_to === null ? {} : { replyTo: row.reply_to }),
      }));
    },

    async mailState(pool: pg.Pool, agentId: string): Promise<{ mailbox: number; lastSeq: number } | null> {
      const rows = await q<{ mailbox: number; last_seq: number }>(pool, `SELECT mailbox, last_seq FROM ${S}.counters WHERE agent_id = $1`, [agentId]);
      return rows[0] === undefined ? null : { mailbox: rows[0].mailbox, lastSeq: rows[0].last_seq };
    },

    async mailboxSize(pool: pg.Pool, agentId: string): Promise<number> {
      const rows = await q<{ mailbox: number }>(pool, `SELECT mailbox FROM ${S}.counters WHERE agent_id = $1`, [agentId]);
      return rows[0]?.mailbox ?? 0;
    },

    async loadSnapshot(pool: pg.Pool, agentId: string): Promise<unknown> {
      const rows = await q<{ snapshot: unknown }>(pool, `SELECT snapshot FROM ${S}.snapshots WHERE agent_id = $1`, [agentId]);
      return rows[0] === undefined ? null : rows[0].snapshot;
    },

    async rollout(pool: pg.Pool, agentId: string, limit: number | undefined): Promise<RolloutEntry[]> {
      const bounded = limitOf(limit);
      if (bounded === null) {
        const rows = await q<{ entry: RolloutEntry }>(
          pool,
          `SELECT r.entry FROM ${S}.rollout r WHERE r.agent_id = $1 AND ${live} ORDER BY r.id`,
          [agentId],
        );
        return rows.map((row) => row.entry);
      }
      const rows = await q<{ entry: RolloutEntry }>(
        pool,
        `SELECT r.entry FROM ${S}.rollout r WHERE r.agent_id = $1 AND ${live} ORDER BY r.id DESC LIMIT $2`,
        [agentId, bounded],
      );
      return rows.map((row) => row.entry).reverse();
    },

    /** Agents with pending messages, of these shards (null: all). */
    async agentsWithPending(pool: pg.Pool, shards: number[] | null): Promise<string[]> {
      if (shards !== null && shards.length === 0) return [];
      const rows = await q<{ id: string }>(
        pool,
        `SELECT x.agent_id AS id FROM ${S}.counters x WHERE x.mailbox > 0${inShards('x', 1, shards)}`,
        shards === null ? [] : [shards],
      );
      return rows.map((row) => row.id);
    },

    /** Turns begun and never committed, of these shards (null: all). */
    async turnsInFlight(pool: pg.Pool, shards: number[] | null): Promise<{ agentId: string; seq: number }[]> {
      if (shards !== null && shards.length === 0) return [];
      return q<{ agentId: string; seq: number }>(
        pool,
        `SELECT m.agent_id AS "agentId", m.seq FROM ${S}.messages m JOIN ${S}.counters x ON x.agent_id = m.agent_id ` +
          `WHERE NOT m.consumed AND m.started_at IS NOT NULL${inShards('x', 1, shards)} ORDER BY m.agent_id, m.seq`,
        shards === null ? [] : [shards],
      );
    },

    async dueTimers(pool: pg.Pool, now: number, limit: number, shards: number[] | null): Promise<TimerRecord[]> {
      if (shards !== null && shards.length === 0) return [];
      const rows = await q<{ agent_id: string; key: string; at: number; message: Message }>(
        pool,
        `SELECT t.agent_id, t.key, t.at, t.message FROM ${S}.timers t WHERE t.at <= $1::float8${inShards('t', 3, shards)} ` +
          'ORDER BY t.at, t.agent_id, t.key LIMIT $2',
        shards === null ? [now, boundedLimit(limit)] : [now, boundedLimit(limit), shards],
      );
      return rows.map((row) => ({ agentId: row.agent_id, key: row.key, at: row.at, message: row.message }));
    },

    async nextDeadline(pool: pg.Pool, shards: number[] | null): Promise<number | null> {
      if (shards !== null && shards.length === 0) return null;
      const rows = await q<{ at: number | null }>(
        pool,
        `SELECT min(t.at) AS at FROM ${S}.timers t WHERE true${inShards('t', 1, shards)}`,
        shards === null ? [] : [shards],
      );
      return rows[0]?.at ?? null;
    },

    async timers(pool: pg.Pool, agentId: string, limit: number): Promise<TimerRecord[]> {
      const rows = await q<{ key: string; at: number; message: Message }>(
        pool,
        `SELECT t.key, t.at, t.message FROM ${S}.timers t WHERE t.agent_id = $1 ORDER BY t.at, t.key LIMIT $2`,
        [agentId, limitOf(limit)],
      );
      return rows.map((row) => ({ agentId, key: row.key, at: row.at, message: row.message }));
    },
  };
}
