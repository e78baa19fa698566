/**
 * The write ops of postgresStore, ready for the schema's functions (schema.ts): each op's
 * values are serialized to JSON once, before its transaction starts, and put together as
 * the JSON text `apply_op` and `apply_batch` read. A value JSON cannot hold, or one
 * PostgreSQL's jsonb cannot (the character U+0000, a lone surrogate), fails its own op
 * only, with a `StoreError`, as sqliteStore's do.
 *
 * Also here: what the functions' errors and PostgreSQL's own mean for the contract.
 */

import { AgentExistsError, AgentNotFoundError, ResidencyError, StoreError } from '../../errors.js';
import { describeValue } from '../../validate.js';
import { shardOf } from '../Cluster.js';
import { checkCancel, checkFire, checkTimer, commitTimers, keptTurns, notPending, pruneBatch } from '../common.js';
import type { AgentRecord, AppendRequest, CommitTurn, StoreOp, TimerRecord } from '../Store.js';
import { ERR } from './schema.js';

/**
 * A write op ready to run: `json`, its text for `apply_op`; `action`, what it does, for its
 * error messages; `owner`, the shard an owner write (beginTurn, commitTurn, note, fire)
 * checks its lease on, with its agent (null for a client write).
 */
export interface PreparedOp {
  op: StoreOp['op'] | 'appendAll';
  action: string;
  json: string;
  owner: { shard: number; agentId: string } | null;
}

/** Rows of each table that destroyAgent deletes in its own transaction, and then each background step. */
export const PURGE_BATCH = 500;

/** JSON text of a value on its way in; a value JSON (or jsonb) cannot hold is refused. */
export function toJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw new StoreError(`Cannot store ${what}: it is not JSON (${messageOf(cause)}). Store JSON values only`, { cause });
  }
  if (text === undefined) {
    throw new StoreError(`Cannot store ${what}: it is not JSON (${describeValue(value)}). Store JSON values only`);
  }
  return text;
}

/**
 * An escape JSON.stringify writes for what PostgreSQL's jsonb (and text) cannot hold: U+0000,
 * and a lone surrogate (paired ones are written as they are). Preceded by an even number of
 * backslashes, so an escaped backslash followed by "u0000" is not one.
 */
const UNSTORABLE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** Refuses an op whose text PostgreSQL cannot store. */
function storable(json: string, action: string): string {
  if (UNSTORABLE.test(json)) {
    throw new StoreError(
      `Cannot ${action}: it holds the character U+0000 or a lone surrogate (in an id or a value), which PostgreSQL cannot store. ` +
        'Remove it (or encode it) before storing',
    );
  }
  return json;
}

const J = JSON.stringify;

/** A JSON object from fields whose values are JSON text already (undefined: left out). */
function object(fields: Record<string, string | undefined>): string {
  let out = '';
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined) continue;
    out += `${out === '' ? '' : ','}${J(key)}:${value}`;
  }
  return `{${out}}`;
}

/** A number as JSON (NaN and infinities are null, as JSON.stringify writes them). */
function num(value: unknown): string {
  return typeof value === 'number' ? J(value) : toJson(value, 'a number');
}

function recordJson(record: AgentRecord, shards: number, what: string): string {
  if (record === null || typeof record !== 'object') {
    throw new TypeError(`Expected \`record\` to be an agent record, got ${describeValue(record)}`);
  }
  const { id, type, parent, pinned, input, createdAt } = record;
  return object({
    id: J(id),
    shard: J(shardOf(String(id), shards)),
    type: J(type),
    parent: J(parent ?? null),
    pinned: pinned ? 'true' : 'false',
    input: toJson(input, what),
    createdAt: num(createdAt),
  });
}

function messageJson(request: AppendRequest): string {
  const { agentId, messageId, message, at, replyTo } = request;
  return object({
    agentId: J(agentId),
    messageId: J(messageId),
    message: toJson(message, `message "${messageId}" to agent "${agentId}"`),
    at: num(at),
    replyTo: typeof replyTo === 'string' ? J(replyTo) : undefined,
  });
}

function timerFields(timer: TimerRecord): Record<string, string> {
  const { agentId, key, at, message } = timer;
  return { key: J(key), at: num(at), message: toJson(message, `the message of timer "${key}" of agent "${agentId}"`) };
}

function timerJson(timer: TimerRecord): string {
  return object(timerFields(timer));
}

/** The messages of one `append` call, all or none (rule 1): results in request order. */
export function prepareAppend(batch: readonly AppendRequest[]): PreparedOp {
  const action = 'append messages';
  const json = object({ op: J('append'), one: 'false', messages: `[${batch.map(messageJson).join(',')}]` });
  return { op: 'appendAll', action, json: storable(json, action), owner: null };
}

/** Serializes an op before its transaction; a value that cannot be stored throws its own error. */
/**
 * `member`: the member id of the store's owner, when acquired. Its commits carry a token
 * (member, time, duration, outcome) so that the same commit written again — after its
 * acknowledgement was lost with the connection — is recognized and answered with what it
 * did the first time instead of failing as a commit of a consumed message.
 */
export function prepareOp(op: StoreOp, shards: number, member: string | null = null): PreparedOp {
  const prepared = prepareRaw(op, shards, member);
  prepared.json = storable(prepared.json, prepared.action);
  return prepared;
}

function prepareRaw(op: StoreOp, shards: number, member: string | null): PreparedOp {
  switch (op.op) {
    case 'createAgent': {
      const id = op.record?.id;
      return {
        op: 'createAgent',
        action: `create agent "${id}"`,
        json: object({ op: J('createAgent'), record: recordJson(op.record, shards, `the input of agent "${id}"`) }),
        owner: null,
      };
    }
    case 'destroyAgent':
      return {
        op: 'destroyAgent',
        action: `destroy agent "${op.id}"`,
        json: object({ op: J('destroyAgent'), id: J(op.id), purge: J(PURGE_BATCH) }),
        owner: null,
      };
    case 'append': {
      const { agentId, messageId } = op.request;
      return {
        op: 'append',
        action: `append message "${messageId}" to agent "${agentId}"`,
        json: object({ op: J('append'), one: 'true', messages: `[${messageJson(op.request)}]` }),
        owner: null,
      };
    }
    case 'beginTurn':
      return {
        op: 'beginTurn',
        action: `begin a turn of agent "${op.agentId}"`,
        json: object({ op: J('beginTurn'), agentId: J(op.agentId), seq: num(op.seq), at: num(op.at) }),
        owner: { shard: shardOf(String(op.agentId), shards), agentId: op.agentId },
      };
    case 'commitTurn': {
      const { agentId, seq } = op.commit;
      return {
        op: 'commitTurn',
        action: `commit the turn of agent "${agentId}" on message #${seq}`,
        json: commitJson(op.commit, shards, member),
        owner: { shard: shardOf(String(agentId), shards), agentId },
      };
    }
    case 'note':
      return {
        op: 'note',
        action: `write a note for agent "${op.agentId}"`,
        json: object({ op: J('note'), agentId: J(op.agentId), entry: toJson(op.entry, `a note for agent "${op.agentId}"`) }),
        owner: { shard: shardOf(String(op.agentId), shards), agentId: op.agentId },
      };
    case 'schedule': {
      checkTimer(op.timer);
      const { agentId, key } = op.timer;
      return {
        op: 'schedule',
        action: `schedule timer "${key}" of agent "${agentId}"`,
        json: object({ op: J('schedule'), agentId: J(agentId), ...timerFields(op.timer) }),
        owner: null,
      };
    }
    case 'cancel':
      checkCancel(op.agentId, op.key);
      return {
        op: 'cancel',
        action: `cancel timer "${op.key}" of agent "${op.agentId}"`,
        json: object({ op: J('cancel'), agentId: J(op.agentId), key: J(op.key) }),
        owner: null,
      };
    case 'fire': {
      checkFire(op);
      const { agentId, key, at, messageId, firedAt } = op;
      return {
        op: 'fire',
        action: `fire timer "${key}" of agent "${agentId}"`,
        json: object({ op: J('fire'), agentId: J(agentId), key: J(key), at: num(at), messageId: J(messageId), firedAt: num(firedAt) }),
        owner: { shard: shardOf(agentId, shards), agentId },
      };
    }
  }
}

function commitJson(turn: CommitTurn, shards: number, member: string | null): string {
  const { agentId, seq, outcome, at, durationMs, error } = turn;
  const what = `the turn of agent "${agentId}" on message #${seq}`;
  const keep = keptTurns(turn.retain);
  const { cancel, schedule } = commitTimers(turn);
  const next = turn.next;
  return object({
    op: J('commitTurn'),
    agentId: J(agentId),
    seq: num(seq),
    token: member === null ? undefined : J(`${member}/${String(at)}/${String(durationMs)}/${String(outcome)}`),
    outcome: J(outcome),
    at: num(at),
    keep: keep === null ? undefined : J(keep),
    prune: J(pruneBatch(turn)),
    outputs: `[${(turn.outputs ?? []).map((output, i) => toJson({ kind: 'output', seq, output, at }, `output ${i} of ${what}`)).join(',')}]`,
    snapshot: turn.snapshot === undefined ? undefined : toJson(turn.snapshot, `the snapshot of ${what}`),
    snapshotEntry:
      turn.snapshot === undefined
        ? undefined
        : turn.value === undefined
          ? J({ kind: 'snapshot', seq, at })
          : toJson({ kind: 'snapshot', seq, at, value: turn.value }, `the state value of ${what}`),
    finished: toJson(
      { kind: 'turn.finished', seq, outcome, at, durationMs, ...(error === undefined ? {} : { error }) },
      `the record of ${what}`,
    ),
    spawned: `[${(turn.spawned ?? []).map((record) => recordJson(record, shards, `the input of agent "${record?.id}" spawned by ${what}`)).join(',')}]`,
    outbox: `[${(turn.outbox ?? []).map(messageJson).join(',')}]`,
    next: next === undefined ? undefined : object({ seq: num(next.seq), at: num(next.at) }),
    cancel: J(cancel),
    schedule: `[${schedule.map(timerJson).join(',')}]`,
    reply: turn.reply === undefined ? undefined : toJson(turn.reply, `the reply of ${what}`),
  });
}

/** What an op resolves to, from what `apply_op` returned for it. */
export function valueOf(op: PreparedOp, value: unknown): unknown {
  switch (op.op) {
    case 'createAgent':
    case 'beginTurn':
    case 'note':
    case 'schedule':
      return undefined;
    case 'fire':
      return value ?? null;
    default:
      return value;
  }
}

/** The contract's error for a failure a write function reported (SQLSTATE `code`, its message). */
export function opError(code: string, message: string, action: string, store: string, cause?: unknown): Error {
  const info = code.startsWith('RS') ? parseInfo(message) : null;
  if (info !== null) {
    if (code === ERR.notFound) return new AgentNotFoundError(info.a);
    if (code === ERR.exists) return new AgentExistsError(info.a);
    if (code === ERR.notPending) return notPending(info.a, info.q ?? 0, info.w ?? action);
  }
  return new StoreError(`${store} could not ${action}: ${message}`, {
    ...(cause === undefined ? {} : { cause }),
    retryable: isRetryableCode(code),
  });
}

function parseInfo(message: string): { a: string; q: number | null; w: string | null } | null {
  try {
    const info = JSON.parse(message) as { a?: unknown; q?: unknown; w?: unknown };
    if (typeof info.a !== 'string') return null;
    return { a: info.a, q: typeof info.q === 'number' ? info.q : null, w: typeof info.w === 'string' ? info.w : null };
  } catch {
    return null;
  }
}

/**
 * A passing failure: the connection (class 08), a serialization failure or deadlock (class
 * 40), the server shutting down or restarting (57P01…57P03), a statement cancelled (57014),
 * too many connections or no resources (class 53), a lock not available (55P03).
 */
export function isRetryableCode(code: string | undefined): boolean {
  return code !== undefined && /^(08|40|53|57P0|57014|55P03)/.test(code);
}

/**
 * The residency error for what a call to PostgreSQL threw: residency's own and TypeErrors
 * pass; PostgreSQL's errors (with a SQLSTATE) are mapped by `opError`; anything else (a
 * dropped connection, a refused one, a timeout) is a retryable `StoreError`.
 */
export function failure(error: unknown, action: string, store: string): Error {
  if (error instanceof ResidencyError || error instanceof TypeError) return error;
  const code = sqlState(error);
  if (code !== undefined) {
    if (code === '23505' && (error as { constraint?: string }).constraint === 'agents_pkey') {
      const id = /Key \(id\)=\((.*)\) already exists/.exec((error as { detail?: string }).detail ?? '')?.[1];
      if (id !== undefined) return new AgentExistsError(id);
    }
    return opError(code, messageOf(error), action, store, error);
  }
  return new StoreError(`${store} could not ${action}: ${messageOf(error)} (the connection to PostgreSQL failed)`, {
    cause: error,
    retryable: true,
  });
}

/** The SQLSTATE of a PostgreSQL error (five characters), if it is one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  const severity = (error as { severity?: unknown } | null)?.severity;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string' ? code : undefined;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
