/**
 * The errors residency throws. Each says what happened, to which agent, and how to fix
 * it; each sets `name` to its class name and carries a stable `code` to branch on.
 * Bad options and bad arguments are `TypeError`s (see validate.ts), not these.
 */

export type ErrorCode =
  | 'AGENT_NOT_FOUND'
  | 'AGENT_EXISTS'
  | 'UNKNOWN_AGENT_TYPE'
  | 'TURN_FAILED'
  | 'STORE_ERROR'
  | 'STORE_CORRUPTION'
  | 'RUNTIME_STOPPED'
  | 'ASK_TIMEOUT'
  | 'FENCED';

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
  ) {
    super(
      'UNKNOWN_AGENT_TYPE',
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
  ) {
    super(
      'TURN_FAILED',
      `Agent "${agentId}" failed to handle message #${seq}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
        `The message counts as handled (outcome "failed") and the agent's state is unchanged`,
      { cause },
    );
  }
}

export class StoreError extends ResidencyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORE_ERROR', message, options);
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

export class FencedError extends ResidencyError {
  constructor(
    readonly agentId: string,
    readonly detail: string,
  ) {
    super(
      'FENCED',
      `Agent "${agentId}" is owned by another process now (${detail}): this process dropped it without writing`,
    );
  }
}
