/**
 * The errors residency throws. Each says what happened, to which agent, and how to fix
 * it; each sets `name` to its class name and carries a stable `code` to branch on.
 * Bad options and bad arguments are `TypeError`s (see validate.ts), not these.
 */

import type { StoreOwner } from './store/Store.js';

import { describeThrown } from './validate.js';

export type ErrorCode =
  | 'AGENT_NOT_FOUND'
  | 'AGENT_EXISTS'
  | 'UNKNOWN_AGENT_TYPE'
  | 'TURN_FAILED'
  | 'STORE_ERROR'
  | 'STORE_CORRUPTION'
  | 'RUNTIME_STOPPED'
  | 'ASK_TIMEOUT'
  | 'FENCED'
  | 'MIGRATION_FAILED'
  | 'STORE_LOCKED';

/** The base of residency's runtime errors. */
export class ResidencyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class AgentNotFoundError extends ResidencyError {
  constructor(readonly agentId: string) {
    super(
      'AGENT_NOT_FOUND',
      `Agent "${agentId}" does not exist: spawn it first with runtime.spawn(type, { id: ${JSON.stringify(agentId)} })`,
    );
  }
}

export class AgentExistsError extends ResidencyError {
  constructor(readonly agentId: string) {
    super('AGENT_EXISTS', `Agent "${agentId}" already exists: choose another id, or destroy it first`);
  }
}

export class UnknownAgentTypeError extends ResidencyError {
  constructor(
    readonly agentType: string,
    readonly known: readonly string[],
    /** The agent stored with that type, when the error is about one. */
    readonly agentId: string | null = null,
  ) {
    super(
      'UNKNOWN_AGENT_TYPE',
      (agentId === null ? '' : `Agent "${agentId}" has type "${agentType}", which this runtime does not define. `) +
        `No agent type "${agentType}" is defined: pass its definition in createRuntime({ agents: [...] }) ` +
        `(defined: ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'none'})`,
    );
  }
}

export class TurnFailedError extends ResidencyError {
  constructor(
    readonly agentId: string,
    readonly seq: number,
    cause: unknown,
    /** `recorded: false`: not even the failure could be written (the store kept failing). */
    options: { recorded?: boolean } = {},
  ) {
    super(
      'TURN_FAILED',
      `Agent "${agentId}" failed to handle message #${seq}: ${describeThrown(cause)}. ` +
        (options.recorded === false
          ? `Not even the failure could be written, so the agent is quarantined (state "failed"); the message stays in its ` +
            `mailbox and is recorded "crashed" before anything else of the agent runs`
          : `The message counts as handled (outcome "failed") and the agent's state is unchanged`),
      { cause },
    );
  }
}

export class StoreError extends ResidencyError {
  /**
   * True when the failure is passing (the database was busy or locked by another
   * connection): the same call may succeed when retried after a backoff. False otherwise.
   */
  readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super('STORE_ERROR', message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options?.retryable ?? false;
  }
}

export class StoreCorruptionError extends ResidencyError {
  constructor(
    readonly agentId: string,
    readonly what: string,
    options?: { cause?: unknown },
  ) {
    super(
      'STORE_CORRUPTION',
      `Agent "${agentId}" cannot be loaded: ${what}. It is quarantined (state "failed"); other agents keep working. ` +
        `Repair or destroy it, then retry`,
      options,
    );
  }
}

export class RuntimeStoppedError extends ResidencyError {
  constructor(readonly operation: string) {
    super('RUNTIME_STOPPED', `Cannot ${operation}: the runtime was stopped. Create a new runtime with createRuntime()`);
  }
}

export class AskTimeoutError extends ResidencyError {
  constructor(
    readonly agentId: string,
    readonly timeoutMs: number,
  ) {
    super(
      'ASK_TIMEOUT',
      `Agent "${agentId}" did not finish handling the message within ${timeoutMs} ms. The message stays accepted ` +
        `and will still be handled; pass a longer { timeout } to wait longer`,
    );
  }
}

/**
 * A write refused because another owner took over since this one acquired: of one agent
 * (`agentId`, a store that owns agents one by one), or of the whole store (`agentId` null).
 */
export class FencedError extends ResidencyError {
  constructor(
    readonly agentId: string | null,
    readonly detail: string,
  ) {
    super(
      'FENCED',
      agentId === null
        ? `The store is owned by another runtime now (${detail}): this runtime wrote nothing and drops its agents. ` +
            'A store has one owner at a time: stop one of the two runtimes'
        : `Agent "${agentId}" is owned by another process now (${detail}): this process dropped it without writing`,
    );
  }
}

/**
 * The store is owned by another live runtime (another process, or another runtime or store
 * instance in this process). `store` names it as the message does (a path, …); `holder`
 * is who owns it, when the store could tell.
 */
export class StoreLockedError extends ResidencyError {
  constructor(
    readonly store: string,
    readonly holder: StoreOwner | null,
    options?: { cause?: unknown },
  ) {
    super(
      'STORE_LOCKED',
      `${store} is owned by another live runtime (${describeOwner(holder)}): stop that runtime first, ` +
        'or give this one another store. A store has one owner at a time',
      options,
    );
  }
}

/** "pid 123 on host "h", since 2026-…Z", for messages. */
export function describeOwner(owner: StoreOwner | null): string {
  if (owner === null) return 'it did not say which one';
  const since = new Date(owner.since);
  return `pid ${owner.pid} on host ${JSON.stringify(owner.host)}, since ${
    Number.isNaN(since.getTime()) ? String(owner.since) : since.toISOString()
  }`;
}

/**
 * A stored snapshot cannot be brought to the current version of its logic: it was written
 * by a newer version, a migration step is missing or threw, or the migrated snapshot does
 * not restore. The agent is quarantined (`failed`) with its messages kept.
 */
export class MigrationError extends ResidencyError {
  constructor(
    readonly agentId: string,
    readonly storedVersion: number,
    readonly currentVersion: number,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      'MIGRATION_FAILED',
      `Agent "${agentId}" was stored by version ${storedVersion} of its logic and cannot be brought to version ${currentVersion}: ${detail}. ` +
        `It is quarantined (state "failed"), its messages kept: deploy a definition whose migrate steps handle it, then runtime.retry(${JSON.stringify(agentId)})`,
      options,
    );
  }
}
