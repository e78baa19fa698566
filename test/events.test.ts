/**
 * The runtime's emitter: lazy, isolated listeners, and the `error` event it makes when a
 * listener throws, stamped by the runtime's clock and naming the agent of the event whose
 * listener threw.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RuntimeEmitter, type RuntimeEvents } from '../src/events.js';
import { manualClock } from '../src/clock.js';

const flush = () => new Promise<void>((resolve) => queueMicrotask(resolve));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('RuntimeEmitter', () => {
  it('builds a payload only when someone listens', () => {
    const e = new RuntimeEmitter();
    const build = vi.fn(() => ({ id: 'a', at: 0 }));
    e.emit('agent.loading', build);
    expect(build).not.toHaveBeenCalled();
    const seen: unknown[] = [];
    const off = e.on('agent.loading', (p) => seen.push(p));
    e.emit('agent.loading', build);
    off();
    e.emit('agent.loading', build);
    expect(build).toHaveBeenCalledTimes(1);
    expect(seen).toEqual([{ id: 'a', at: 0 }]);
  });

  it('a listener that throws becomes an error event stamped by the given clock, with the id of the event it was given', async () => {
    const clock = manualClock(5_000);
    vi.spyOn(Date, 'now').mockReturnValue(999_999_999);
    const e = new RuntimeEmitter(() => clock.now());
    const errors: RuntimeEvents['error'][] = [];
    e.on('error', (p) => errors.push(p));
    const other = vi.fn();
    e.on('agent.loaded', () => {
      throw new Error('boom');
    });
    e.on('agent.loaded', other);
    e.emit('agent.loaded', () => ({ id: 'alice', at: clock.now(), durationMs: 3 }));
    clock.advance(250); // the error event is emitted a microtask later: it reads the clock then
    await flush();
    expect(other).toHaveBeenCalledTimes(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ id: 'alice', at: 5_250, where: "listener of 'agent.loaded'" });
    expect(errors[0]!.error.message).toBe('boom');
  });

  it("uses '*' when the event's id is not a string, and Date.now() without a clock", async () => {
    vi.spyOn(Date, 'now').mockReturnValue(42);
    const e = new RuntimeEmitter();
    const errors: RuntimeEvents['error'][] = [];
    e.on('error', (p) => errors.push(p));
    e.on('agent.loading', () => {
      throw 'not an Error';
    });
    e.emit('agent.loading', () => ({ id: undefined as unknown as string, at: 0 }));
    await flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ id: '*', at: 42, where: "listener of 'agent.loading'" });
    expect(errors[0]!.error).toBeInstanceOf(Error);
    expect(errors[0]!.error.message).toBe('not an Error');
  });

  it('a tap that throws is reported the same way', async () => {
    const e = new RuntimeEmitter(() => 7);
    const errors: RuntimeEvents['error'][] = [];
    e.on('error', (p) => errors.push(p));
    e.tap = () => {
      throw new Error('tap');
    };
    e.emit('turn.started', () => ({ id: 'bob', at: 7, seq: 1 }));
    await flush();
    expect(errors.map((x) => ({ id: x.id, at: x.at, where: x.where }))).toContainEqual({ id: 'bob', at: 7, where: "listener of 'turn.started'" });
  });

  it('an error listener that throws goes to the console, not round again', async () => {
    const e = new RuntimeEmitter(() => 0);
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    let calls = 0;
    e.on('error', () => {
      calls++;
      throw new Error('again');
    });
    e.on('agent.destroyed', () => {
      throw new Error('first');
    });
    e.emit('agent.destroyed', () => ({ id: 'c', at: 0 }));
    await flush();
    await flush();
    expect(calls).toBe(1);
    expect(log).toHaveBeenCalledTimes(1);
  });
});
