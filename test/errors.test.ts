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

  it('keeps the cause of a failed turn', () => {
    const cause = new Error('boom');
    expect(new TurnFailedError('a', 1, cause).cause).toBe(cause);
  });
});
