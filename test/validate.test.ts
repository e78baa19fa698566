import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertAgentId,
  assertFunction,
  assertIntegerAtLeast,
  assertJson,
  assertMessage,
  assertPositiveDurationOrNull,
  copyJson,
  copyPlain,
  describeValue,
} from '../src/validate.js';

const MiB = 1024 * 1024;
const ID_RULE = 'to be 1–255 characters of letters, digits and `\\._:@-`, starting with a letter or digit, got';
const JSON_HINT = ': use plain objects, arrays, strings, finite numbers, booleans and null$';

/** A regex that matches `text` literally (for messages full of backticks and dots). */
const literal = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

function nested(levels: number): Record<string, unknown> {
  let v: Record<string, unknown> = { leaf: true };
  for (let i = 1; i < levels; i++) v = { a: v };
  return v;
}

/** A message whose JSON text is exactly `bytes` bytes (UTF-8), padded with `unit`. */
function messageOfBytes(bytes: number, unit = 'x'): { type: string; data: string } {
  const base = Buffer.byteLength(JSON.stringify({ type: 't', data: '' }));
  const unitBytes = Buffer.byteLength(JSON.stringify(unit)) - 2;
  const units = Math.floor((bytes - base) / unitBytes);
  const pad = 'x'.repeat(bytes - base - units * unitBytes);
  const message = { type: 't', data: unit.repeat(units) + pad };
  expect(Buffer.byteLength(JSON.stringify(message))).toBe(bytes);
  return message;
}

function normalizeNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(normalizeNegativeZero);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeNegativeZero(x)]));
  }
  return v;
}

class Point {
  constructor(
    readonly x = 1,
    readonly y = 2,
  ) {}
}

describe('describeValue', () => {
  it.each<[string, unknown, string]>([
    ['a number', 0, '`0` (number)'],
    ['negative zero', -0, '`-0` (number)'],
    ['NaN', Number.NaN, '`NaN` (number)'],
    ['a string, quoted and escaped', 'a/b', '`"a/b"` (string)'],
    ['a string with a newline', 'a\nb', '`"a\\nb"` (string)'],
    ['a boolean', true, '`true` (boolean)'],
    ['a bigint', 10n, '`10n` (bigint)'],
    ['a symbol', Symbol('s'), '`Symbol(s)` (symbol)'],
    ['null', null, '`null`'],
    ['undefined', undefined, '`undefined`'],
    ['a named function', function named() {}, '`[Function: named]` (function)'],
    ['a Map by its tag', new Map(), '`[object Map]` (object)'],
    ['a Date by its tag', new Date(0), '`[object Date]` (object)'],
    ['an array by its tag', [1, 2], '`[object Array]` (object)'],
    ['a plain object by its tag', { a: 1 }, '`[object Object]` (object)'],
    ['a class instance by its class name', new Point(), '`[object Point]` (object)'],
  ])('describes %s', (_label, value, expected) => {
    expect(describeValue(value)).toBe(expected);
  });

  it('cuts long strings after 40 characters and gives their length', () => {
    const text = describeValue('a'.repeat(300));
    expect(text).toBe(`\`"${'a'.repeat(40)}…"\` (string, 300 characters)`);
  });

  it('never cuts a surrogate pair in half', () => {
    const text = describeValue(`${'a'.repeat(39)}😀${'b'.repeat(10)}`);
    expect(text).toBe(`\`"${'a'.repeat(39)}…"\` (string, 51 characters)`);
  });

  it('does not throw on a revoked proxy', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(describeValue(proxy)).toBe('`[object]` (object)');
  });
});

describe('catalogue of bad inputs', () => {
  const cycle: Record<string, unknown> = { type: 't', a: { b: 1 } };
  (cycle['a'] as Record<string, unknown>)['self'] = cycle;
  const arrayCycle: unknown[] = [];
  arrayCycle.push(arrayCycle);
  const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
  class Sub extends Array {}

  const bad: [string, () => void, RegExp][] = [
    // agent ids
    ['an empty id', () => assertAgentId(''), literal('Expected `id` to be 1–255 characters of letters, digits and `._:@-`, starting with a letter or digit, got `""` (string)')],
    ['a 256-character id', () => assertAgentId('a'.repeat(256)), new RegExp(`${ID_RULE} \`"a{40}…"\` \\(string, 256 characters\\)$`)],
    ['a parent path', () => assertAgentId('../etc'), literal('got `"../etc"` (string)')],
    ['the id `..`', () => assertAgentId('..'), literal('got `".."` (string)')],
    ['the id `.`', () => assertAgentId('.'), new RegExp(ID_RULE)],
    ['a hidden-file id', () => assertAgentId('.env'), new RegExp(ID_RULE)],
    ['a slash', () => assertAgentId('a/b'), literal('got `"a/b"` (string)')],
    ['a backslash', () => assertAgentId('a\\b'), literal('got `"a\\\\b"` (string)')],
    ['an absolute path', () => assertAgentId('/etc/passwd'), new RegExp(ID_RULE)],
    ['a space', () => assertAgentId('alice smith'), new RegExp(ID_RULE)],
    ['a leading dash', () => assertAgentId('-rf'), new RegExp(ID_RULE)],
    ['a leading underscore', () => assertAgentId('_x'), new RegExp(ID_RULE)],
    ['a trailing newline', () => assertAgentId('alice\n'), literal('got `"alice\\n"` (string)')],
    ['a NUL character', () => assertAgentId('a\u0000b'), literal('got `"a\\u0000b"` (string)')],
    ['a tab', () => assertAgentId('a\tb'), new RegExp(ID_RULE)],
    ['an accented letter', () => assertAgentId('café'), new RegExp(ID_RULE)],
    ['a Kelvin sign (looks like K)', () => assertAgentId('\u212A'), new RegExp(ID_RULE)],
    ['a fullwidth digit', () => assertAgentId('１'), new RegExp(ID_RULE)],
    ['an emoji', () => assertAgentId('😀'), new RegExp(ID_RULE)],
    ['a percent-encoded slash', () => assertAgentId('a%2Fb'), new RegExp(ID_RULE)],
    ['a number as id', () => assertAgentId(42), literal('got `42` (number)')],
    ['undefined as id', () => assertAgentId(undefined), literal('got `undefined`')],
    ['null as id, named', () => assertAgentId(null, 'parent'), literal('Expected `parent` to be 1–255 characters')],
    ['an object as id', () => assertAgentId({ id: 'a' }), literal('got `[object Object]` (object)')],
    // messages
    ['a string message', () => assertMessage('hi'), literal('Expected `message` to be a plain object with a string `type`, got `"hi"` (string)')],
    ['a null message', () => assertMessage(null), literal('Expected `message` to be a plain object with a string `type`, got `null`')],
    ['an array message', () => assertMessage([{ type: 't' }]), literal('a plain object with a string `type`, got `[object Array]` (object)')],
    ['a class instance message', () => assertMessage(new Point()), literal('a plain object with a string `type`, got `[object Point]` (object)')],
    ['a Map message', () => assertMessage(new Map([['type', 't']])), literal('got `[object Map]` (object)')],
    ['a message without type', () => assertMessage({ text: 'hi' }), literal('Expected `message.type` to be a string of 1–255 characters, got `undefined`')],
    ['a numeric type', () => assertMessage({ type: 1 }), literal('Expected `message.type` to be a string of 1–255 characters, got `1` (number)')],
    ['an empty type', () => assertMessage({ type: '' }), literal('got `""` (string)')],
    ['a 256-character type', () => assertMessage({ type: 't'.repeat(256) }), literal('(string, 256 characters)')],
    ['a Date in the payload', () => assertMessage({ type: 't', payload: { when: new Date(0) } }), new RegExp(`^Expected \`message\\.payload\\.when\` to be JSON-serializable, got \`\\[object Date\\]\` \\(object\\)${JSON_HINT}`)],
    ['an undefined property', () => assertMessage({ type: 't', x: undefined }), literal('Expected `message.x` to be JSON-serializable, got `undefined`: use plain objects')],
    ['an undefined array element', () => assertMessage({ type: 't', list: [1, undefined] }), literal('Expected `message.list[1]` to be JSON-serializable, got `undefined`')],
    ['an array hole', () => assertMessage({ type: 't', list: sparse }), literal('Expected `message.list[1]` to be JSON-serializable, got `undefined`')],
    ['a function value', () => assertMessage({ type: 't', f() {} }), literal('Expected `message.f` to be JSON-serializable, got `[Function: f]` (function)')],
    ['a toJSON method', () => assertMessage({ type: 't', toJSON: () => ({}) }), literal('Expected `message.toJSON` to be JSON-serializable, got `[Function: toJSON]` (function)')],
    ['a symbol value', () => assertMessage({ type: 't', s: Symbol('s') }), literal('got `Symbol(s)` (symbol)')],
    ['a symbol key', () => assertMessage({ type: 't', [Symbol('k')]: 1 }), literal('Expected `message` to be JSON-serializable, got a symbol key `Symbol(k)`: use string keys')],
    ['a bigint', () => assertMessage({ type: 't', n: 1n }), literal('Expected `message.n` to be JSON-serializable, got `1n` (bigint)')],
    ['NaN', () => assertMessage({ type: 't', n: Number.NaN }), literal('Expected `message.n` to be JSON-serializable, got `NaN` (number)')],
    ['Infinity', () => assertMessage({ type: 't', n: Infinity }), literal('got `Infinity` (number)')],
    ['-Infinity', () => assertMessage({ type: 't', n: -Infinity }), literal('got `-Infinity` (number)')],
    ['a Map value', () => assertMessage({ type: 't', m: new Map() }), literal('Expected `message.m` to be JSON-serializable, got `[object Map]` (object)')],
    ['a Set value', () => assertMessage({ type: 't', s: new Set([1]) }), literal('got `[object Set]` (object)')],
    ['a typed array', () => assertMessage({ type: 't', b: new Uint8Array(2) }), literal('got `[object Uint8Array]` (object)')],
    ['a class instance value', () => assertMessage({ type: 't', p: new Point() }), literal('Expected `message.p` to be JSON-serializable, got `[object Point]` (object)')],
    ['an Array subclass', () => assertMessage({ type: 't', list: Sub.from([1]) }), literal('Expected `message.list` to be JSON-serializable')],
    ['a boxed string', () => assertMessage({ type: 't', s: new String('x') }), literal('got `[object String]` (object)')],
    ['an odd key, quoted in the path', () => assertMessage({ type: 't', 'a b': [{ 'c-d': new Date(0) }] }), literal('Expected `message["a b"][0]["c-d"]` to be JSON-serializable')],
    ['a cycle', () => assertMessage(cycle), literal('Expected `message.a.self` to be JSON-serializable, got a circular reference to `message`: JSON cannot represent cycles')],
    ['an array that contains itself', () => assertJson(arrayCycle, 'input'), literal('Expected `input[0]` to be JSON-serializable, got a circular reference to `input`')],
    ['nesting 65 levels deep', () => assertMessage({ type: 't', deep: nested(64) }), /^Expected `message` to nest at most 64 objects or arrays deep, got more at `message\.deep(\.a){63}`$/],
    ['a message of 2 MiB', () => assertMessage({ type: 't', data: 'x'.repeat(2 * MiB) }), /^Expected `message` to be at most 1 MiB \(1048576 bytes\) as JSON, got at least \d+ bytes$/],
    ['undefined as JSON', () => assertJson(undefined, 'input'), literal('Expected `input` to be JSON-serializable, got `undefined`')],
    // options
    ['a cap of 0', () => assertIntegerAtLeast(0, 'residentCap', 1), literal('Expected `residentCap` to be an integer ≥ 1, got `0` (number)')],
    ['a fractional cap', () => assertIntegerAtLeast(1.5, 'runningCap', 1), literal('Expected `runningCap` to be an integer ≥ 1, got `1.5` (number)')],
    ['an infinite cap', () => assertIntegerAtLeast(Infinity, 'residentCap', 1), literal('got `Infinity` (number)')],
    ['a cap given as a string', () => assertIntegerAtLeast('8', 'residentCap', 1), literal('got `"8"` (string)')],
    ['a missing cap', () => assertIntegerAtLeast(undefined, 'residentCap', 1), literal('an integer ≥ 1, got `undefined`')],
    ['a zero duration', () => assertPositiveDurationOrNull(0, 'idleTimeout'), literal('Expected `idleTimeout` to be a finite number of milliseconds > 0, or null, got `0` (number)')],
    ['a negative duration', () => assertPositiveDurationOrNull(-5, 'idleTimeout'), literal('got `-5` (number)')],
    ['an infinite duration', () => assertPositiveDurationOrNull(Infinity, 'idleTimeout'), literal('got `Infinity` (number)')],
    ['a duration as string', () => assertPositiveDurationOrNull('30s', 'idleTimeout'), literal('got `"30s"` (string)')],
    ['a non-function', () => assertFunction(42, 'clock.now'), literal('Expected `clock.now` to be a function, got `42` (number)')],
    ['a missing function', () => assertFunction(undefined, 'policy'), literal('Expected `policy` to be a function, got `undefined`')],
  ];

  it('has at least 30 entries', () => {
    expect(bad.length).toBeGreaterThanOrEqual(30);
  });

  it.each(bad)('refuses %s with a TypeError worded as the rule', (_label, check, wording) => {
    let thrown: unknown;
    try {
      check();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TypeError);
    expect((thrown as TypeError).message).toMatch(wording);
  });
});

describe('assertAgentId', () => {
  it.each(['alice', 'a', 'A1', '7', 'user@example.com', 'chat:42', 'x.y-z_w', 'a..b', 'a'.repeat(255)])(
    'accepts %s',
    (id) => {
      expect(() => assertAgentId(id)).not.toThrow();
    },
  );

  it('accepts 255 characters and refuses 256', () => {
    expect(() => assertAgentId('a'.repeat(255))).not.toThrow();
    expect(() => assertAgentId('a'.repeat(256))).toThrow(TypeError);
  });

  it('narrows the type to string', () => {
    const id: unknown = 'alice';
    assertAgentId(id);
    expect(id.toUpperCase()).toBe('ALICE');
  });
});

describe('assertMessage', () => {
  it.each<[string, unknown]>([
    ['a bare type', { type: 'ping' }],
    ['nested objects, arrays and null', { type: 'user.message', a: { b: [1, { c: null }], d: [] }, e: {} }],
    ['unicode strings and keys', { type: 'säg.hej', text: 'héllo 😀 世界', 'clé': '\u0000\n"\\' }],
    ['numbers and booleans', { type: 't', n: [0, 1.5, -1e300, Number.MAX_SAFE_INTEGER], yes: true, no: false }],
    ['a null-prototype object', Object.assign(Object.create(null) as object, { type: 't', x: 1 })],
    ['a shared (not circular) reference', (() => { const shared = { v: 1 }; return { type: 't', a: shared, b: [shared, shared] }; })()],
    ['64 levels of nesting', { type: 't', deep: nested(63) }],
    ['a 255-character type', { type: 't'.repeat(255) }],
  ])('accepts %s', (_label, message) => {
    expect(() => assertMessage(message)).not.toThrow();
    expect(JSON.parse(JSON.stringify(message))).toEqual(message);
  });

  it('accepts negative zero, which JSON writes as 0 (equal by ===)', () => {
    expect(() => assertMessage({ type: 't', n: -0 })).not.toThrow();
  });

  it('refuses a message that nests 65 levels and accepts 64', () => {
    expect(() => assertJson(nested(64), 'input')).not.toThrow();
    expect(() => assertJson(nested(65), 'input')).toThrow(/at most 64 objects or arrays deep/);
  });

  it('refuses a message with a cycle', () => {
    const message: Record<string, unknown> = { type: 't' };
    message['me'] = message;
    expect(() => assertMessage(message)).toThrow(TypeError);
    expect(() => assertMessage(message)).toThrow(/circular reference to `message`/);
  });

  it('refuses a message of 2 MiB', () => {
    expect(() => assertMessage({ type: 't', data: 'x'.repeat(2 * MiB) })).toThrow(TypeError);
    expect(() => assertMessage({ type: 't', parts: Array.from({ length: 2048 }, () => 'y'.repeat(1024)) })).toThrow(
      /at most 1 MiB/,
    );
  });

  it.each([
    ['ASCII', 'x'],
    ['2-byte characters', 'é'],
    ['3-byte characters', '€'],
    ['4-byte characters', '😀'],
    ['escaped quotes', '"'],
    ['short escapes', '\n'],
    ['\\u escapes', '\u0001'],
    ['lone surrogates', '\ud800'],
  ])('counts the UTF-8 size of JSON exactly with %s: 1 MiB passes, one byte more fails', (_label, unit) => {
    expect(() => assertMessage(messageOfBytes(MiB, unit))).not.toThrow();
    expect(() => assertMessage(messageOfBytes(MiB + 1, unit))).toThrow(/at most 1 MiB/);
  });

  it('fails fast on a huge message', () => {
    const message = { type: 't', data: 'x'.repeat(64 * MiB) };
    const started = performance.now();
    expect(() => assertMessage(message)).toThrow(/at most 1 MiB/);
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('checks the shape before the contents', () => {
    expect(() => assertMessage({ type: 2, when: new Date(0) })).toThrow(/`message\.type`/);
  });
});

/** Any value at all, with the kinds JSON cannot hold among them. */
const anything = fc.anything({
  maxDepth: 4,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});

describe('assertJson', () => {
  it('accepts every JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 10 }), (value) => {
        assertJson(value, 'input');
      }),
    );
  });

  it('accepts only values that survive a JSON round trip unchanged', () => {
    fc.assert(
      fc.property(anything, (value) => {
        let accepted = true;
        try {
          assertJson(value, 'input');
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
          accepted = false;
        }
        if (accepted) {
          const text = JSON.stringify(value);
          expect(text).toBeTypeOf('string');
          // JSON writes -0 as 0, which we accept (-0 === 0)
          expect(JSON.parse(text)).toStrictEqual(normalizeNegativeZero(value));
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('copyJson', () => {
  // Its fast path (one walk) must accept exactly what the full walk accepts, with the same copy.
  const seed = process.env.RESIDENCY_SEED ? Number(process.env.RESIDENCY_SEED) : Date.now() % 2 ** 31;

  // Values JSON cannot hold, alone and inside objects and arrays (rare in fc.anything's draws).
  const odd = fc.constantFrom<unknown>(NaN, Infinity, -Infinity, -0, undefined, 1n, Symbol('s'), () => 1, new Date(0), [, 1], Object.create(null));
  const oddInside = fc.oneof(odd, fc.dictionary(fc.string(), fc.oneof(odd, fc.integer())), fc.array(fc.oneof(odd, fc.string())));

  it('copies what assertJson accepts, into fresh objects, and refuses the rest with a TypeError', () => {
    console.log(`copyJson against assertJson: seed ${seed} (RESIDENCY_SEED=${seed} reruns it)`);
    fc.assert(
      fc.property(fc.oneof(anything, fc.jsonValue({ maxDepth: 6 }), oddInside), (value) => {
        let accepted = true;
        try {
          assertJson(value, 'input');
        } catch {
          accepted = false;
        }
        let copy: unknown;
        let error: unknown = null;
        try {
          copy = copyJson(value, 'input');
        } catch (e) {
          error = e;
        }
        if (!accepted) {
          expect(error).toBeInstanceOf(TypeError);
          return;
        }
        expect(error).toBeNull();
        // Plain objects with Object.prototype (a null-prototype object too), -0 as JSON writes it.
        expect(normalizeNegativeZero(copy)).toStrictEqual(JSON.parse(JSON.stringify(value)));
        if (typeof value === 'object' && value !== null) expect(copy).not.toBe(value);
      }),
      { numRuns: 1000, seed },
    );
  });

  it('dropUndefined leaves undefined properties out; without it they are refused; sizes and depths as assertJson', () => {
    expect(copyJson({ a: 1, b: undefined, c: { d: undefined } }, 'snapshot', { dropUndefined: true })).toStrictEqual({ a: 1, c: {} });
    expect(() => copyJson({ a: 1, b: undefined }, 'input')).toThrow(TypeError);
    expect(() => copyJson([1, undefined], 'input', { dropUndefined: true })).toThrow(TypeError);
    expect(() => copyJson({ s: 'x'.repeat(MiB) }, 'input')).toThrow(/at most 1 MiB/);
    expect(copyJson({ s: 'x'.repeat(MiB / 2) }, 'input')).toStrictEqual({ s: 'x'.repeat(MiB / 2) });
    expect(() => copyJson(nested(65), 'input')).toThrow(/at most 64/);
    const cyclic: Record<string, unknown> = { a: {} };
    (cyclic['a'] as Record<string, unknown>)['back'] = cyclic;
    expect(() => copyJson(cyclic, 'input')).toThrow(/circular reference to `input`/);
    expect(() => copyJson(JSON.parse('{"a":{"__proto__":{"x":1}}}'), 'input')).toThrow(/no key named "__proto__"/);
    let reads = 0;
    const withGetter = { get n() { reads++; return 1; } };
    expect(copyJson(withGetter, 'input')).toStrictEqual({ n: 1 });
    expect(reads).toBe(1);
  });
});

describe('copyPlain', () => {
  it('copies plain data into fresh objects, keeps undefined, and hands anything else to structuredClone', () => {
    const v = { a: [1, { b: 'x' }], u: undefined, n: null };
    const c = copyPlain(v);
    expect(c).toStrictEqual(v);
    expect(c).not.toBe(v);
    expect(c.a[1]).not.toBe(v.a[1]);
    expect('u' in c).toBe(true);
    const when = new Date(5);
    expect(copyPlain({ when }).when).toStrictEqual(when);
    expect(copyPlain({ when }).when).not.toBe(when);
    expect(() => copyPlain({ f: () => 1 })).toThrow();
  });
});

describe('option checks', () => {
  it('accept good values', () => {
    expect(() => assertIntegerAtLeast(1, 'residentCap', 1)).not.toThrow();
    expect(() => assertIntegerAtLeast(0, 'retries', 0)).not.toThrow();
    expect(() => assertPositiveDurationOrNull(60_000, 'idleTimeout')).not.toThrow();
    expect(() => assertPositiveDurationOrNull(0.5, 'idleTimeout')).not.toThrow();
    expect(() => assertPositiveDurationOrNull(null, 'idleTimeout')).not.toThrow();
    expect(() => assertPositiveDurationOrNull(undefined, 'idleTimeout')).not.toThrow();
    expect(() => assertFunction(() => 1, 'clock.now')).not.toThrow();
    expect(() => assertFunction(class {}, 'policy')).not.toThrow();
  });
});
