/**
 * A catalogue of bad inputs to the public API. For every entry we check:
 * 1. the error: its class (TypeError for bad arguments and options; AgentNotFoundError,
 *    AgentExistsError, UnknownAgentTypeError or RuntimeStoppedError where they apply),
 *    that async methods reject rather than throw synchronously, and the wording of the
 *    message (a regex on the rule it states);
 * 2. that nothing was stored: a full dump of the store (every agent over all pages of
 *    `listAgents`, and for each its `pending`, `mailboxSize`, `rollout` and
 *    `loadSnapshot`, plus `agentsWithPending` and `turnsInFlight`) is the same before and
 *    after, no write reached the store (none resolved; a write the store refused
 *    atomically, such as a duplicate createAgent, stored nothing), the runtime's stats are
 *    unchanged, and no timer was left behind;
 * 3. that the runtime still works: an `ask` to a healthy agent succeeds, with its earlier
 *    state intact.
 *
 * Entries marked `// FINDING:` assert the behaviour the contract asks for and which the
 * runtime does not have yet: they fail until the runtime is fixed.
 *
 * No test sleeps: time is a manual clock and waiting is bounded by event-loop turns.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime, type RuntimeOptions, type RuntimeStats } from '../../src/createRuntime.js';
import { defineAgent } from '../../src/defineAgent.js';
import { fromTurn } from '../../src/fromTurn.js';
import { manualClock, type ManualClock } from '../../src/clock.js';
import { memoryStore } from '../../src/store/memoryStore.js';
import type { Store } from '../../src/store/Store.js';
import {
  AgentExistsError,
  AgentNotFoundError,
  RuntimeStoppedError,
  StoreError,
  UnknownAgentTypeError,
} from '../../src/errors.js';
import { counterAgent, deferred, flush, until, type Deferred, type Handled } from './helpers.js';

// --- the rules, as the messages state them ---------------------------------------------

// No entry of the catalogue may leave a promise rejection unhandled (that ends a Node process).
const unhandledRejections: unknown[] = [];
const onUnhandledRejection = (reason: unknown) => unhandledRejections.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandledRejection);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandledRejection);
  expect(unhandledRejections).toEqual([]);
});

/** A regex that matches `text` literally. */
const literal = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
const ID_RULE = literal('to be 1–255 characters of letters, digits and `._:@-`, starting with a letter or digit, got');
const idRule = (name: string, got: string) => new RegExp(`^Expected \`${name}\` ${ID_RULE.source}.*${literal(got).source}`);
const JSON_HINT = literal(': use plain objects, arrays, strings, finite numbers, booleans and null');
const notJson = (path: string, got: string) => new RegExp(`^Expected ${literal(`\`${path}\``).source} to be JSON-serializable, got ${literal(got).source}${JSON_HINT.source}$`);
const integerRule = (name: string, min: number, got: string) => literal(`Expected \`${name}\` to be an integer ≥ ${min}, got ${got}`);
const durationRule = (name: string, got: string) => literal(`Expected \`${name}\` to be a finite number of milliseconds > 0, or null, got ${got}`);
const PLAIN_MESSAGE = (got: string) => literal(`Expected \`message\` to be a plain object with a string \`type\`, got ${got}`);
const MESSAGE_TYPE = (got: string) => literal(`Expected \`message.type\` to be a string of 1–255 characters, got ${got}`);
const notFound = (id: string) => literal(`Agent "${id}" does not exist: spawn it first with runtime.spawn(type, { id: "${id}" })`);
const stopped = (operation: string) => literal(`Cannot ${operation}: the runtime was stopped. Create a new runtime with createRuntime()`);

// --- the store: a write log over a memory store, and a full dump -------------------------

interface SpyStore extends Store {
  /** Every write that changed something (resolved; destroyAgent only when the agent existed), in order. */
  readonly writes: string[];
}

/**
 * Forwards to `inner` and logs every write that changed something. `close()` closes this view only (it then
 * refuses every call with StoreError, as a closed store does) and leaves `inner` open,
 * so a test can still dump what a stopped runtime left behind.
 */
const epochs = new WeakMap<Store, number>();

function spyStore(inner: Store): SpyStore {
  const writes: string[] = [];
  let closed = false;
  const open = () => {
    if (closed) throw new StoreError('The spy store is closed');
  };
  const read = <T>(fn: () => Promise<T>) => async (): Promise<T> => {
    open();
    return fn();
  };
  /** Logs a write once it succeeded: a write the store refused (atomically) stored nothing. */
  const write = async <T>(name: string, fn: () => Promise<T>, changed: (r: T) => boolean = () => true): Promise<T> => {
    open();
    const result = await fn();
    if (changed(result)) writes.push(name);
    return result;
  };
  return {
    kind: inner.kind,
    writes,
    createAgent: (r) => write('createAgent', () => inner.createAgent(r)),
    getAgent: (id) => read(() => inner.getAgent(id))(),
    getAgents: (ids) => read(() => inner.getAgents(ids))(),
    listAgents: (o) => read(() => inner.listAgents(o))(),
    destroyAgent: (id) => write('destroyAgent', () => inner.destroyAgent(id), (existed) => existed),
    append: (batch) => write('append', () => inner.append(batch)),
    pending: (id, limit) => read(() => inner.pending(id, limit))(),
    mailboxSize: (id) => read(() => inner.mailboxSize(id))(),
    agentStats: (ids) => read(() => inner.agentStats(ids))(),
    dueTimers: (now, limit) => read(() => inner.dueTimers(now, limit))(),
    nextDeadline: () => read(() => inner.nextDeadline())(),
    timers: (id, limit) => read(() => inner.timers(id, limit))(),
    beginTurn: (id, seq, at) => write('beginTurn', () => inner.beginTurn(id, seq, at)),
    commitTurn: (c) => write('commitTurn', () => inner.commitTurn(c)),
    loadSnapshot: (id) => read(() => inner.loadSnapshot(id))(),
    note: (id, e) => write('note', () => inner.note(id, e)),
    rollout: (id, o) => read(() => inner.rollout(id, o))(),
    agentsWithPending: read(() => inner.agentsWithPending()),
    turnsInFlight: read(() => inner.turnsInFlight()),
    batch: (ops) =>
      write('batch', () => inner.batch(ops), (results) => results.some((r) => r.ok && !(r.value === false))),
    // Each spy is one opening of the store, owned by the runtime that opens it: the inner
    // store stays open (and so owned by nobody) for the test to dump.
    acquire: async () => {
      open();
      const epoch = (epochs.get(inner) ?? 0) + 1;
      epochs.set(inner, epoch);
      return { epoch };
    },
    close: async () => {
      open();
      writes.push('close');
      closed = true;
    },
  };
}

/** Everything the store holds, through the Store interface only. */
async function dump(store: Store) {
  const agents: unknown[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await store.listAgents({ limit: 2, cursor });
    pages++;
    for (const record of page.agents) {
      agents.push({
        record,
        pending: await store.pending(record.id),
        mailboxSize: await store.mailboxSize(record.id),
        rollout: await store.rollout(record.id),
        snapshot: await store.loadSnapshot(record.id),
      });
    }
    cursor = page.cursor;
    if (pages > 10_000) throw new Error('listAgents never ended');
  } while (cursor !== null);
  return {
    agents,
    agentsWithPending: (await store.agentsWithPending()).sort(),
    turnsInFlight: (await store.turnsInFlight()).map((t) => `${t.agentId}#${t.seq}`).sort(),
  };
}

// --- calling a bad input -----------------------------------------------------------------

type ErrorClass = abstract new (...args: never[]) => Error;

interface Expectation {
  error: ErrorClass;
  message: RegExp;
  /** Synchronous API (on, inspect): throws. Otherwise the call must return a rejected promise. */
  sync?: boolean;
}

/** Calls `fn` and returns what it threw or rejected with; fails when it did neither. */
async function refusal(fn: () => unknown, sync: boolean): Promise<unknown> {
  let returned: unknown;
  try {
    returned = fn();
  } catch (err) {
    if (!sync) throw new Error(`expected a rejected promise, but the call threw synchronously: ${String(err)}`);
    return err;
  }
  if (sync) throw new Error(`expected a synchronous throw, but the call returned ${String(returned)}`);
  expect(returned).toBeInstanceOf(Promise);
  try {
    await returned;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

function expectRefused(err: unknown, e: Expectation): void {
  expect(err).toBeInstanceOf(e.error);
  // TypeError means exactly TypeError, not some subclass that happens to extend it.
  expect((err as Error).constructor).toBe(e.error);
  expect((err as Error).message).toMatch(e.message);
}

// --- fixtures ----------------------------------------------------------------------------

const counterType = 'counter';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Fixture {
  runtime: Runtime;
  inner: Store;
  store: SpyStore;
  clock: ManualClock;
  holds: Map<string, Deferred>;
  handled: Handled;
}

/**
 * A runtime with a realistic store: `healthy` (one turn done, so it has a snapshot),
 * `root` (pinned) and `child` (its parent, with input), and `busy`, whose turn is held
 * open (a turn in flight) with one more message queued behind it.
 */
async function liveRuntime(): Promise<Fixture> {
  const handled: Handled = new Map();
  const holds = new Map<string, Deferred>();
  const inner = memoryStore();
  const store = spyStore(inner);
  const clock = manualClock(1_000);
  const runtime = await createRuntime({
    agents: [counterAgent(handled, holds)],
    residentCap: 3,
    runningCap: 2,
    idleTimeout: null,
    store,
    clock,
  });
  await runtime.spawn(counterType, { id: 'healthy' });
  expect(await runtime.ask('healthy', { type: 'inc', n: 0 })).toMatchObject({ outcome: 'done', state: { count: 1 } });
  await runtime.spawn(counterType, { id: 'root', pinned: true });
  await runtime.spawn(counterType, { id: 'child', parent: 'root', input: { topic: 'x' } });
  await runtime.spawn(counterType, { id: 'busy' });
  holds.set('k', deferred());
  await runtime.send('busy', { type: 'hold', key: 'k' });
  await runtime.send('busy', { type: 'inc', n: 1 });
  await until(() => runtime.stats().running === 1, 'the held turn to start');
  await flush();
  cleanups.push(async () => {
    holds.get('k')?.resolve();
    await runtime.stop().catch(() => {});
  });
  return { runtime, inner, store, clock, holds, handled };
}

/** What a bad call must leave exactly as it was. */
async function observe(f: Fixture) {
  await flush();
  const stats: RuntimeStats = f.runtime.stats();
  return { store: await dump(f.inner), writes: f.store.writes.length, timers: f.clock.pending(), stats };
}

/** The runtime still works: a good ask to a healthy agent succeeds, with its state intact. */
async function expectStillWorks(f: Fixture): Promise<void> {
  const r = await f.runtime.ask('healthy', { type: 'inc', n: 'probe' });
  expect(r).toEqual({ outcome: 'done', state: { count: 2, seen: [0, 'probe'] }, outputs: [{ handled: 'probe' }] });
  expect(f.handled.get('healthy')).toEqual(['0', 'probe']);
}

// --- the catalogue: calls on a live runtime ----------------------------------------------

interface CallEntry extends Expectation {
  name: string;
  call: (rt: Runtime) => unknown;
}

const msg = { type: 'inc', n: 1 };
const cyclicInput = (): Record<string, unknown> => {
  const o: Record<string, unknown> = { a: 1 };
  o.self = o;
  return o;
};
class Envelope {
  type = 'inc';
  n = 1;
}
const OVER_1_MIB = 'x'.repeat(1024 * 1024);
const LONG_ID = 'a'.repeat(256);

const badIds: [label: string, id: unknown, got: string][] = [
  ["''", '', '`""` (string)'],
  ['256 characters', LONG_ID, '(string, 256 characters)'],
  ["'a/b'", 'a/b', '`"a/b"` (string)'],
  ["'../x'", '../x', '`"../x"` (string)'],
  ["'a b'", 'a b', '`"a b"` (string)'],
  ["'\\u0000'", '\u0000', '`"\\u0000"` (string)'],
  ["'é'", 'é', '`"é"` (string)'],
  ['42', 42, '`42` (number)'],
  ['null', null, '`null`'],
];

const spawnEntries: CallEntry[] = [
  ...badIds.map(([label, id, got]): CallEntry => ({
    name: `spawn with id ${label}`,
    call: (rt) => rt.spawn(counterType, { id: id as string }),
    error: TypeError,
    message: idRule('id', got),
  })),
  {
    name: 'spawn with a type that is not a string (42)',
    call: (rt) => rt.spawn(42 as never, { id: 'new' }),
    error: TypeError,
    message: literal('Expected `type` to be a string, got `42` (number)'),
  },
  {
    name: 'spawn with options null',
    call: (rt) => rt.spawn(counterType, null as never),
    error: TypeError,
    message: literal('Expected spawn options { id, input?, parent?, pinned? }, got `null`'),
  },
  {
    name: "spawn of an unknown type ('nope')",
    call: (rt) => rt.spawn('nope', { id: 'new' }),
    error: UnknownAgentTypeError,
    message: literal('No agent type "nope" is defined: pass its definition in createRuntime({ agents: [...] }) (defined: "counter")'),
  },
  {
    name: "spawn with a duplicate id ('healthy')",
    call: (rt) => rt.spawn(counterType, { id: 'healthy' }),
    error: AgentExistsError,
    message: literal('Agent "healthy" already exists: choose another id, or destroy it first'),
  },
  {
    name: "spawn with a parent that does not exist ('ghost')",
    call: (rt) => rt.spawn(counterType, { id: 'orphan', parent: 'ghost' }),
    error: AgentNotFoundError,
    message: notFound('ghost'),
  },
  {
    name: "spawn with a parent that is not an id ('a/b')",
    call: (rt) => rt.spawn(counterType, { id: 'orphan', parent: 'a/b' }),
    error: TypeError,
    message: idRule('parent', '`"a/b"` (string)'),
  },
  {
    name: 'spawn with input a function',
    call: (rt) => rt.spawn(counterType, { id: 'new', input: function make() {} }),
    error: TypeError,
    message: notJson('input', '`[Function: make]` (function)'),
  },
  {
    name: 'spawn with input a Date',
    call: (rt) => rt.spawn(counterType, { id: 'new', input: new Date(0) }),
    error: TypeError,
    message: notJson('input', '`[object Date]` (object)'),
  },
  {
    name: 'spawn with input a cycle',
    call: (rt) => rt.spawn(counterType, { id: 'new', input: cyclicInput() }),
    error: TypeError,
    message: literal('Expected `input.self` to be JSON-serializable, got a circular reference to `input`: JSON cannot represent cycles'),
  },
  {
    name: 'spawn with input a BigInt inside',
    call: (rt) => rt.spawn(counterType, { id: 'new', input: { budget: 10n } }),
    error: TypeError,
    message: notJson('input.budget', '`10n` (bigint)'),
  },
  {
    name: "spawn with pinned 'yes'",
    call: (rt) => rt.spawn(counterType, { id: 'new', pinned: 'yes' as never }),
    error: TypeError,
    message: literal('Expected `pinned` to be a boolean, got `"yes"` (string)'),
  },
];

const cyclicMessage = () => {
  const m: Record<string, unknown> = { type: 'inc' };
  m.self = m;
  return m as { type: string };
};

const messageEntries: [label: string, message: () => unknown, rule: RegExp][] = [
  ["a string ('hi')", () => 'hi', PLAIN_MESSAGE('`"hi"` (string)')],
  ['an array', () => [{ type: 'inc' }], PLAIN_MESSAGE('`[object Array]` (object)')],
  ['null', () => null, PLAIN_MESSAGE('`null`')],
  ['a class instance', () => new Envelope(), PLAIN_MESSAGE('`[object Envelope]` (object)')],
  ['missing type', () => ({ n: 1 }), MESSAGE_TYPE('`undefined`')],
  ['type not a string (42)', () => ({ type: 42 }), MESSAGE_TYPE('`42` (number)')],
  ["empty type ('')", () => ({ type: '' }), MESSAGE_TYPE('`""` (string)')],
  ['a Date inside', () => ({ type: 'inc', when: new Date(0) }), notJson('message.when', '`[object Date]` (object)')],
  ['a function inside', () => ({ type: 'inc', cb: () => 1 }), notJson('message.cb', '`[Function: cb]` (function)')],
  ['undefined inside', () => ({ type: 'inc', n: undefined }), notJson('message.n', '`undefined`')],
  ['NaN inside', () => ({ type: 'inc', n: NaN }), notJson('message.n', '`NaN` (number)')],
  [
    'a cycle',
    cyclicMessage,
    literal('Expected `message.self` to be JSON-serializable, got a circular reference to `message`: JSON cannot represent cycles'),
  ],
  [
    'over 1 MiB',
    () => ({ type: 'big', data: OVER_1_MIB }),
    /^Expected `message` to be at most 1 MiB \(1048576 bytes\) as JSON, got at least \d+ bytes$/,
  ],
];

const sendAskEntries: CallEntry[] = [
  ...badIds.map(([label, id, got]): CallEntry => ({
    name: `send to id ${label}`,
    call: (rt) => rt.send(id as string, msg),
    error: TypeError,
    message: idRule('id', got),
  })),
  {
    name: "ask to id 'a/b'",
    call: (rt) => rt.ask('a/b', msg),
    error: TypeError,
    message: idRule('id', '`"a/b"` (string)'),
  },
  ...messageEntries.flatMap(([label, message, rule]): CallEntry[] => [
    { name: `send a message: ${label}`, call: (rt) => rt.send('healthy', message() as never), error: TypeError, message: rule },
    { name: `ask a message: ${label}`, call: (rt) => rt.ask('healthy', message() as never), error: TypeError, message: rule },
  ]),
  {
    name: "send to an agent that does not exist ('ghost')",
    call: (rt) => rt.send('ghost', msg),
    error: AgentNotFoundError,
    message: notFound('ghost'),
  },
  {
    name: "ask an agent that does not exist ('ghost')",
    call: (rt) => rt.ask('ghost', msg),
    error: AgentNotFoundError,
    message: notFound('ghost'),
  },
  {
    // FINDING: ask() arms its timeout timer before the message is accepted, and does not
    // clear it when the send is refused (createRuntime.ts, ask: the catch deletes the
    // waiter only). The timer stays on the clock; when it fires it rejects a promise that
    // nobody holds any more: an unhandled AskTimeoutError rejection ("The message stays
    // accepted and will still be handled", which is false), which crashes a Node process
    // run with default settings. A refused ask must leave no timer behind.
    name: "ask an agent that does not exist ('ghost') with { timeout: 100 }",
    call: (rt) => rt.ask('ghost', msg, { timeout: 100 }),
    error: AgentNotFoundError,
    message: notFound('ghost'),
  },
  ...[0, -5, 1.5].map((timeout): CallEntry => ({
    name: `ask with timeout ${timeout}`,
    call: (rt) => rt.ask('healthy', msg, { timeout }),
    error: TypeError,
    message: integerRule('timeout', 1, `\`${timeout}\` (number)`),
  })),
  {
    name: "ask with timeout '100' (a string)",
    call: (rt) => rt.ask('healthy', msg, { timeout: '100' as never }),
    error: TypeError,
    message: integerRule('timeout', 1, '`"100"` (string)'),
  },
  {
    name: 'ask with options null',
    call: (rt) => rt.ask('healthy', msg, null as never),
    error: TypeError,
    message: literal('Expected ask options { timeout? }, got `null`'),
  },
];

const agentCallEntries: CallEntry[] = (['get', 'close', 'destroy', 'interrupt'] as const).flatMap((method): CallEntry[] => [
  ...badIds
    .filter(([label]) => ["''", "'a/b'", "'../x'", '42', 'null', '256 characters'].includes(label))
    .map(([label, id, got]): CallEntry => ({
      name: `${method} with id ${label}`,
      call: (rt) => rt[method](id as string),
      error: TypeError,
      message: idRule('id', got),
    })),
  {
    // FINDING (interrupt only): interrupt('ghost') resolves as a no-op, while get, close
    // and destroy refuse a missing agent with AgentNotFoundError. "No-op when unloaded"
    // (DESIGN.md) is about an agent that exists and is not in memory; an id that was
    // never spawned (or was destroyed) is most likely a typo and must be reported.
    name: `${method} an agent that does not exist ('ghost')`,
    call: (rt) => rt[method]('ghost'),
    error: AgentNotFoundError,
    message: notFound('ghost'),
  },
]);

const listEntries: CallEntry[] = [
  ...[0, -1].map((limit): CallEntry => ({
    name: `list with limit ${limit}`,
    call: (rt) => rt.list({ limit }),
    error: TypeError,
    message: integerRule('limit', 1, `\`${limit}\` (number)`),
  })),
  {
    name: "list with limit 'x'",
    call: (rt) => rt.list({ limit: 'x' as never }),
    error: TypeError,
    message: integerRule('limit', 1, '`"x"` (string)'),
  },
  {
    name: "list with options 'x'",
    call: (rt) => rt.list('x' as never),
    error: TypeError,
    message: literal('Expected list options, got `"x"` (string)'),
  },
  {
    // FINDING: `resident` is compared with `=== true` / `=== false` and anything else is
    // ignored: list({ resident: 'yes' }) silently returns every agent, resident or not.
    name: "list with resident 'yes'",
    call: (rt) => rt.list({ resident: 'yes' as never }),
    error: TypeError,
    message: /^Expected `resident` to be a boolean.*got `"yes"` \(string\)/,
  },
  {
    // FINDING: `type` is not checked: list({ type: 42 }) silently returns no agents.
    name: 'list with type 42',
    call: (rt) => rt.list({ type: 42 as never }),
    error: TypeError,
    message: /^Expected `type` to be a string.*got `42` \(number\)/,
  },
  {
    // FINDING: `cursor` is not checked: list({ cursor: 42 }) is passed to the store, which
    // compares ids with a number (always false) and so returns the first page, as if no
    // cursor had been given: a caller paging with a corrupted cursor loops forever.
    name: 'list with cursor 42',
    call: (rt) => rt.list({ cursor: 42 as never }),
    error: TypeError,
    message: /^Expected `cursor` to be .*string.*got `42` \(number\)/,
  },
];

const observerEntries: CallEntry[] = [
  {
    name: "on('agent.evicted') with a handler that is not a function ('x')",
    call: (rt) => rt.on('agent.evicted', 'x' as never),
    error: TypeError,
    message: literal("Expected the handler of 'agent.evicted' to be a function, got `\"x\"` (string)"),
    sync: true,
  },
  {
    name: 'on(…) with a handler null',
    call: (rt) => rt.on('turn.finished', null as never),
    error: TypeError,
    message: literal("Expected the handler of 'turn.finished' to be a function, got `null`"),
    sync: true,
  },
  {
    // FINDING: an event name that does not exist is accepted and the handler never runs
    // (a typo such as 'agent.evict' fails silently for JavaScript callers). It should be
    // refused, naming the known events.
    name: "on('agent.evict') with an event name that does not exist",
    call: (rt) => rt.on('agent.evict' as never, () => {}),
    error: TypeError,
    message: /Expected .*event.*agent\.evicted.*got .*"agent\.evict"/,
    sync: true,
  },
  {
    name: 'inspect with an observer that is not a function (42)',
    call: (rt) => rt.inspect(42 as never),
    error: TypeError,
    message: literal('Expected the inspect observer to be a function or an observer { next }, got `42` (number)'),
    sync: true,
  },
  {
    name: 'inspect with an object without next() ({ complete })',
    call: (rt) => rt.inspect({ complete: () => {} } as never),
    error: TypeError,
    message: literal('Expected the inspect observer to be a function or an observer { next }, got `[object Object]` (object)'),
    sync: true,
  },
];

const liveCatalogue: [group: string, entries: CallEntry[]][] = [
  ['spawn', spawnEntries],
  ['send / ask', sendAskEntries],
  ['get / close / destroy / interrupt', agentCallEntries],
  ['list', listEntries],
  ['on / inspect', observerEntries],
];

describe('the fixture', () => {
  it('holds a store worth comparing, and a good call does change the dump', async () => {
    const f = await liveRuntime();
    const before = await observe(f);
    expect(before.store.agents).toHaveLength(4);
    expect(before.store.agentsWithPending).toEqual(['busy']);
    expect(before.store.turnsInFlight).toEqual(['busy#1']);
    await f.runtime.send('healthy', { type: 'inc', n: 'x' });
    await f.runtime.spawn(counterType, { id: 'fresh' });
    const after = await observe(f);
    expect(after.store).not.toEqual(before.store);
    expect(after.writes).toBeGreaterThan(before.writes);
  });
});

for (const [group, entries] of liveCatalogue) {
  describe(`bad input to ${group}`, () => {
    for (const entry of entries) {
      it(`${entry.name} → ${entry.error.name}, nothing stored, runtime still works`, async () => {
        const f = await liveRuntime();
        const before = await observe(f);
        const err = await refusal(() => entry.call(f.runtime), entry.sync === true);
        expectRefused(err, entry);
        expect(await observe(f)).toEqual(before);
        await expectStillWorks(f);
      });
    }
  });
}

// --- calls after stop() ------------------------------------------------------------------

const afterStopEntries: CallEntry[] = [
  { name: 'send', call: (rt) => rt.send('healthy', msg), error: RuntimeStoppedError, message: stopped('send to "healthy"') },
  { name: 'send to a missing agent', call: (rt) => rt.send('ghost', msg), error: RuntimeStoppedError, message: stopped('send to "ghost"') },
  { name: 'ask', call: (rt) => rt.ask('healthy', msg), error: RuntimeStoppedError, message: stopped('ask "healthy"') },
  { name: 'spawn', call: (rt) => rt.spawn(counterType, { id: 'late' }), error: RuntimeStoppedError, message: stopped('spawn "late"') },
  { name: 'interrupt', call: (rt) => rt.interrupt('healthy'), error: RuntimeStoppedError, message: stopped('interrupt "healthy"') },
  { name: 'close', call: (rt) => rt.close('healthy'), error: RuntimeStoppedError, message: stopped('close "healthy"') },
  { name: 'destroy', call: (rt) => rt.destroy('healthy'), error: RuntimeStoppedError, message: stopped('destroy "healthy"') },
  {
    // FINDING: get() does not check that the runtime runs: after stop() it reaches the
    // closed store and rejects with StoreError "The memory store is closed: create a new
    // one with memoryStore()" (advice that is wrong for a runtime user).
    name: 'get',
    call: (rt) => rt.get('healthy'),
    error: RuntimeStoppedError,
    message: /^Cannot get "healthy": the runtime was stopped\. Create a new runtime with createRuntime\(\)$/,
  },
  {
    // FINDING: list() likewise rejects with the store's StoreError after stop().
    name: 'list',
    call: (rt) => rt.list(),
    error: RuntimeStoppedError,
    message: /^Cannot list.*: the runtime was stopped\. Create a new runtime with createRuntime\(\)$/,
  },
];

describe('calls after stop()', () => {
  for (const entry of afterStopEntries) {
    it(`${entry.name} after stop() → RuntimeStoppedError, nothing stored, a new runtime still works`, async () => {
      const f = await liveRuntime();
      f.holds.get('k')!.resolve();
      await until(() => f.runtime.stats().running === 0 && f.runtime.stats().waitingForPermit === 0, 'busy to finish');
      await f.runtime.stop();
      expect(f.store.writes.at(-1)).toBe('close');
      const before = { store: await dump(f.inner), writes: f.store.writes.length, timers: f.clock.pending() };
      expect(before.store.agents).toHaveLength(4);
      const err = await refusal(() => entry.call(f.runtime), false);
      expectRefused(err, entry);
      await flush();
      expect({ store: await dump(f.inner), writes: f.store.writes.length, timers: f.clock.pending() }).toEqual(before);
      // The data outlives the runtime: a new one on the same store serves `healthy`.
      const next = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store: spyStore(f.inner), clock: f.clock });
      cleanups.push(() => next.stop());
      expect(await next.ask('healthy', { type: 'inc', n: 'probe' })).toMatchObject({ outcome: 'done', state: { count: 2, seen: [0, 'probe'] } });
    });
  }
});

// --- createRuntime options -----------------------------------------------------------------

/**
 * A store as a previous process left it: `healthy` with one finished turn and one more
 * message queued, `root` (pinned) with `child`, and `crashy`, with a turn begun and never
 * committed. A createRuntime that validated late would already have run recovery
 * (recording crashy's turn `crashed`): the dump would show it.
 */
async function storeLeftBehind(): Promise<{ inner: Store; clock: ManualClock }> {
  const inner = memoryStore();
  const clock = manualClock(5_000);
  const first = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store: spyStore(inner), clock });
  await first.spawn(counterType, { id: 'healthy' });
  await first.ask('healthy', { type: 'inc', n: 0 });
  await first.spawn(counterType, { id: 'root', pinned: true });
  await first.spawn(counterType, { id: 'child', parent: 'root', input: { topic: 'x' } });
  await first.spawn(counterType, { id: 'crashy' });
  await first.stop();
  await inner.append([
    { agentId: 'healthy', messageId: 'queued-1', message: { type: 'inc', n: 'queued' }, at: 5_001 },
    { agentId: 'crashy', messageId: 'lost-1', message: { type: 'inc', n: 'lost' }, at: 5_001 },
  ]);
  await inner.beginTurn('crashy', 1, 5_002);
  return { inner, clock };
}

interface OptionEntry {
  name: string;
  /** The bad options; `store` and `clock` are those of the store left behind. */
  options: (good: RuntimeOptions) => unknown;
  message: RegExp;
  /** For a bad store: its write methods, which must not have been called. */
  spy?: () => string[];
}

const handled0: Handled = new Map();
const counterDef = counterAgent(handled0);
const otherDef = defineAgent({ type: 'other', logic: fromTurn(async ({ state }) => state, { initialState: {} }) });
const partialStoreCalls: string[] = [];
const partialStore = {
  kind: 'partial',
  append: async () => {
    partialStoreCalls.push('append');
    return [];
  },
  commitTurn: async () => {
    partialStoreCalls.push('commitTurn');
    return { outbox: [] };
  },
};

const optionEntries: OptionEntry[] = [
  { name: 'options undefined', options: () => undefined, message: literal('Expected createRuntime options { agents, residentCap, runningCap }, got `undefined`') },
  ...([0, 1.5, '2', NaN, Infinity] as const).map(
    (v): OptionEntry => ({
      name: `residentCap ${typeof v === 'string' ? `'${v}'` : String(v)}`,
      options: (g) => ({ ...g, residentCap: v }),
      message: integerRule('residentCap', 1, typeof v === 'string' ? `\`"${v}"\` (string)` : `\`${String(v)}\` (number)`),
    }),
  ),
  { name: 'runningCap 0', options: (g) => ({ ...g, runningCap: 0 }), message: integerRule('runningCap', 1, '`0` (number)') },
  {
    name: 'runningCap 3 > residentCap 2',
    options: (g) => ({ ...g, residentCap: 2, runningCap: 3 }),
    message: literal('Expected `runningCap` (3) to be ≤ `residentCap` (2): a running agent is resident'),
  },
  ...([-1, 0, 'x'] as const).map(
    (v): OptionEntry => ({
      name: `idleTimeout ${typeof v === 'string' ? `'${v}'` : String(v)}`,
      options: (g) => ({ ...g, idleTimeout: v }),
      message: durationRule('idleTimeout', typeof v === 'string' ? `\`"${v}"\` (string)` : `\`${v}\` (number)`),
    }),
  ),
  { name: 'stopTimeout -1', options: (g) => ({ ...g, stopTimeout: -1 }), message: integerRule('stopTimeout', 0, '`-1` (number)') },
  {
    name: 'agents []',
    options: (g) => ({ ...g, agents: [] }),
    message: literal('Expected `agents` to be a non-empty array of defineAgent(...) definitions, got `[object Array]` (object)'),
  },
  {
    name: 'agents not an array (one definition)',
    options: (g) => ({ ...g, agents: counterDef }),
    message: literal('Expected `agents` to be a non-empty array of defineAgent(...) definitions, got `[object Object]` (object)'),
  },
  {
    name: 'agents with an entry not from defineAgent',
    options: (g) => ({ ...g, agents: [counterDef, { type: 'half' }] }),
    message: literal('Expected every entry of `agents` to come from defineAgent(...), got `[object Object]` (object)'),
  },
  {
    name: 'agents with a duplicate type',
    options: (g) => ({ ...g, agents: [counterDef, otherDef, counterAgent(new Map())] }),
    message: literal('Expected agent types to be unique, got "counter" twice in `agents`'),
  },
  {
    name: 'store {} (not a store)',
    options: (g) => ({ ...g, store: {} }),
    message: literal('Expected `store` to implement the Store interface (memoryStore(), sqliteStore(path), …), got `[object Object]` (object)'),
  },
  {
    name: "store 'memory' (a string)",
    options: (g) => ({ ...g, store: 'memory' }),
    message: literal('Expected `store` to implement the Store interface (memoryStore(), sqliteStore(path), …), got `"memory"` (string)'),
  },
  {
    // FINDING: only `append` and `commitTurn` are checked. A store with just those two
    // passes validation, then createRuntime calls store.turnsInFlight() and fails with a
    // raw "store.turnsInFlight is not a function". It should be refused by the same rule
    // as any other non-store, ideally naming the missing methods.
    name: 'store with append and commitTurn only (missing the other methods)',
    options: (g) => ({ ...g, store: partialStore }),
    message: /^Expected `store` to implement the Store interface .*got /,
    spy: () => partialStoreCalls,
  },
  {
    name: 'clock with now() only',
    options: (g) => ({ ...g, clock: { now: () => 0 } }),
    message: literal('Expected `clock` to have now(), setTimeout() and clearTimeout(), got `[object Object]` (object)'),
  },
  {
    name: 'clock without clearTimeout()',
    options: (g) => ({ ...g, clock: { now: () => 0, setTimeout: () => 1 } }),
    message: literal('Expected `clock` to have now(), setTimeout() and clearTimeout(), got `[object Object]` (object)'),
  },
  {
    name: "policy 'lru' (not a function)",
    options: (g) => ({ ...g, policy: 'lru' }),
    message: literal('Expected `policy` to be a policy factory such as lru, got `"lru"` (string)'),
  },
  ...([
    [null, '`null`'],
    ['stately', '`"stately"` (string)'],
    [{ next: 'x' }, '`[object Object]` (object)'],
  ] as const).map(
    ([v, got]): OptionEntry => ({
      name: `inspect ${v === null ? 'null' : typeof v === 'string' ? `'${v}'` : "{ next: 'x' } (next not a function)"}`,
      options: (g) => ({ ...g, inspect: v }),
      message: literal(
        `Expected \`inspect\` to be an inspection observer (a function, or { next } such as createBrowserInspector().inspect), got ${got}`,
      ),
    }),
  ),
];

describe('bad createRuntime options', () => {
  for (const entry of optionEntries) {
    it(`${entry.name} → TypeError, the store is not touched, a good runtime on it still works`, async () => {
      const { inner, clock } = await storeLeftBehind();
      const before = await dump(inner);
      expect(before.agentsWithPending).toEqual(['crashy', 'healthy']);
      expect(before.turnsInFlight).toEqual(['crashy#1']);
      const store = spyStore(inner);
      const good: RuntimeOptions = { agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, idleTimeout: null, store, clock };
      const timers = clock.pending();
      const spyBefore = entry.spy?.().length ?? 0;

      const err = await refusal(() => createRuntime(entry.options(good) as RuntimeOptions), false);
      expectRefused(err, { error: TypeError, message: entry.message });

      await flush();
      expect(store.writes).toEqual([]);
      expect(entry.spy?.().length ?? 0).toBe(spyBefore);
      expect(await dump(inner)).toEqual(before);
      expect(clock.pending()).toBe(timers);

      // Nothing was lost: a good runtime on the same store recovers crashy and serves healthy,
      // whose queued message is handled before the probe.
      const handled: Handled = new Map();
      const runtime = await createRuntime({ ...good, agents: [counterAgent(handled)], store: spyStore(inner) });
      cleanups.push(() => runtime.stop());
      expect(await runtime.ask('healthy', { type: 'inc', n: 'probe' })).toMatchObject({
        outcome: 'done',
        state: { count: 3, seen: [0, 'queued', 'probe'] },
      });
      expect(handled.get('healthy')).toEqual(['queued', 'probe']);
      expect((await inner.rollout('crashy')).filter((r) => r.kind === 'turn.finished')).toMatchObject([{ seq: 1, outcome: 'crashed' }]);
    });
  }
});

describe('the catalogue', () => {
  it('has at least 30 entries', () => {
    const total = liveCatalogue.reduce((n, [, e]) => n + e.length, 0) + afterStopEntries.length + optionEntries.length;
    expect(total).toBeGreaterThanOrEqual(30);
  });
});
