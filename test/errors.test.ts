import { describe, expect, it } from 'vitest';
import {
  AgentExistsError,
  AgentNotFoundError,
  AskTimeoutError,
  FencedError,
  ResidencyError,
  RuntimeStoppedError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
  TurnFailedError,
  UnknownAgentTypeError,
} from '../src/index.js';

describe('error classes', () => {
  const cases: [ResidencyError, string, string, RegExp][] = [
    [new AgentNotFoundError('alice'), 'AgentNotFoundError', 'AGENT_NOT_FOUND', /Agent "alice" does not exist: spawn it first/],
    [new AgentExistsError('alice'), 'AgentExistsError', 'AGENT_EXISTS', /Agent "alice" already exists/],
    [new UnknownAgentTypeError('chat', ['a', 'b']), 'UnknownAgentTypeError', 'UNKNOWN_AGENT_TYPE', /No agent type "chat".*defined: "a", "b"/],
    [new TurnFailedError('alice', 3, new Error('boom')), 'TurnFailedError', 'TURN_FAILED', /"alice" failed to handle message #3: boom/],
    [new StoreError('disk full'), 'StoreError', 'STORE_ERROR', /disk full/],
    [new StoreCorruptionError('alice', 'its snapshot is not JSON'), 'StoreCorruptionError', 'STORE_CORRUPTION', /"alice" cannot be loaded: its snapshot is not JSON/],
    [new RuntimeStoppedError('send to "alice"'), 'RuntimeStoppedError', 'RUNTIME_STOPPED', /Cannot send to "alice": the runtime was stopped/],
    [new AskTimeoutError('alice', 500), 'AskTimeoutError', 'ASK_TIMEOUT', /"alice" did not finish .* within 500 ms/],
    [new FencedError('alice', 'lease lost'), 'FencedError', 'FENCED', /"alice" is owned by another process now \(lease lost\)/],
    [new FencedError(null, 'epoch 3, not 2'), 'FencedError', 'FENCED', /^The store is owned by another runtime now \(epoch 3, not 2\): this runtime wrote nothing/],
    [
      new StoreLockedError('The residency database "x.db"', { pid: 123, host: 'h', since: Date.UTC(2026, 0, 2) }),
      'StoreLockedError',
      'STORE_LOCKED',
      /^The residency database "x.db" is owned by another live runtime \(pid 123 on host "h", since 2026-01-02T00:00:00.000Z\): stop that runtime first, or give this one another store/,
    ],
    [new StoreLockedError('The memory store', null), 'StoreLockedError', 'STORE_LOCKED', /^The memory store is owned by another live runtime/],
  ];
  for (const [err, name, code, message] of cases) {
    it(`${name} has its name, a stable code, and says what happened`, () => {
      expect(err).toBeInstanceOf(ResidencyError);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe(name);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
      expect(String(err)).toMatch(new RegExp(`^${name}: `));
    });
  }

  it('StoreLockedError carries the holder; FencedError of the whole store has a null agentId', () => {
    const holder = { pid: 123, host: 'h', since: 0 };
    expect(new StoreLockedError('The residency database "x.db"', holder)).toMatchObject({ holder, store: 'The residency database "x.db"' });
    expect(new StoreLockedError('x', null).holder).toBeNull();
    expect(new FencedError(null, 'd').agentId).toBeNull();
  });

  it('StoreError is not retryable unless it says so, and keeps its cause', () => {
    const cause = new Error('SQLITE_BUSY');
    expect(new StoreError('disk full').retryable).toBe(false);
    expect(new StoreError('busy', { cause, retryable: true })).toMatchObject({ retryable: true, cause });
    expect(new StoreError('busy', { retryable: true }).cause).toBeUndefined();
  });

  it('keeps the cause of a failed turn', () => {
    const cause = new Error('boom');
    expect(new TurnFailedError('a', 1, cause).cause).toBe(cause);
  });
});
