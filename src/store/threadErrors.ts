/**
 * Errors across a thread boundary (the SQLite writer thread, sqliteWriter.ts). A worker's
 * error reaches its parent through the structured clone, which keeps neither the class of a
 * residency error nor its fields (`code`, `agentId`, `retryable`, `holder` …). So the
 * writer sends each error as plain data (`SentError`: its class name, message, stack, own
 * fields and cause) and the calling thread builds an instance of the same class from
 * src/errors.ts with the same fields: `instanceof StoreError`, `FencedError`,
 * `StoreLockedError` … hold there as for a store on the calling thread. A better-sqlite3
 * `SqliteError` cause comes back a `SqliteError` with its `code` (when the driver is loaded
 * here, as it is for a SQLite store); a class this file does not know comes back an `Error`
 * with the same name, message and fields.
 */

import {
  AgentExistsError,
  AgentNotFoundError,
  FencedError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
} from '../errors.js';
import type { StoreOwner } from './Store.js';
import { loadedSqliteDriver } from './sqliteDriver.js';

/** An error as plain data. */
export interface SentError {
  name: string;
  message: string;
  stack?: string;
  /** Own enumerable fields (`code`, `agentId`, `retryable` …), those the structured clone can copy. */
  fields: Record<string, unknown>;
  /** The cause: an error as plain data, or another value as the structured clone copies it (`undefined` when it cannot). */
  cause?: { error: SentError } | { value: unknown };
}

/** How deep causes of causes are sent. */
const CAUSE_DEPTH = 4;

/** `error` (anything thrown) as plain data the structured clone copies. */
export function sendError(error: unknown, depth = 0): SentError {
  if (!(error instanceof Error)) {
    return { name: 'Error', message: `a non-Error value was thrown: ${describe(error)}`, fields: { thrown: cloneable(error) } };
  }
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(error)) {
    if (key === 'name' || key === 'message' || key === 'stack' || key === 'cause') continue;
    const value = cloneable((error as unknown as Record<string, unknown>)[key]);
    if (value !== undefined) fields[key] = value;
  }
  const sent: SentError = { name: error.name, message: error.message, fields };
  if (typeof error.stack === 'string') sent.stack = error.stack;
  if ('cause' in error && error.cause !== undefined && depth < CAUSE_DEPTH) {
    sent.cause = error.cause instanceof Error ? { error: sendError(error.cause, depth + 1) } : { value: cloneable(error.cause) };
  }
  return sent;
}

/** The error `sendError` sent, rebuilt: an instance of its class, with its fields, message and stack. */
export function receiveError(sent: SentError): Error {
  const f = sent.fields;
  const cause = sent.cause === undefined ? undefined : 'error' in sent.cause ? receiveError(sent.cause.error) : sent.cause.value;
  const withCause = cause === undefined ? undefined : { cause };
  let error: Error;
  switch (sent.name) {
    case 'StoreError':
      error = new StoreError(sent.message, { cause, retryable: f.retryable === true });
      break;
    case 'AgentNotFoundError':
      error = new AgentNotFoundError(String(f.agentId));
      break;
    case 'AgentExistsError':
      error = new AgentExistsError(String(f.agentId));
      break;
    case 'FencedError':
      error = new FencedError(typeof f.agentId === 'string' ? f.agentId : null, String(f.detail));
      break;
    case 'StoreLockedError':
      error = new StoreLockedError(String(f.store), (f.holder ?? null) as StoreOwner | null, withCause);
      break;
    case 'StoreCorruptionError':
      error = new StoreCorruptionError(String(f.agentId), String(f.what), withCause);
      break;
    case 'TypeError':
      error = new TypeError(sent.message, withCause);
      break;
    case 'RangeError':
      error = new RangeError(sent.message, withCause);
      break;
    case 'SqliteError': {
      const SqliteError = loadedSqliteDriver()?.SqliteError;
      error = SqliteError === undefined ? new Error(sent.message) : new SqliteError(sent.message, String(f.code));
      break;
    }
    default:
      error = new Error(sent.message, withCause);
      if (sent.name !== 'Error') Object.defineProperty(error, 'name', { value: sent.name, writable: true, configurable: true });
  }
  // The same text and fields as thrown (a constructor that words its message itself says the same).
  if (error.message !== sent.message) {
    Object.defineProperty(error, 'message', { value: sent.message, writable: true, configurable: true });
  }
  for (const [key, value] of Object.entries(f)) {
    if ((error as unknown as Record<string, unknown>)[key] === undefined) (error as unknown as Record<string, unknown>)[key] = value;
  }
  if (sent.stack !== undefined) error.stack = sent.stack;
  return error;
}

/** The value if the structured clone can copy it, else `undefined`. */
function cloneable(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
  try {
    return structuredClone(value);
  } catch {
    return undefined;
  }
}

function describe(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    return typeof value;
  }
}
