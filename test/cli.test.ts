import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { damagedLine, type Io } from '../src/cli/format.js';
import { createRuntime } from '../src/createRuntime.js';
import { defineAgent } from '../src/defineAgent.js';
import { fromTurn } from '../src/fromTurn.js';
import { sqliteStore } from '../src/store/sqliteStore.js';
import { counterAgent, deferred } from './runtime/helpers.js';
import { cli } from './runCli.js';
import { DAMAGE_SAID, damagedDatabase, type Damage } from './inspector/damagedDatabase.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'residency-cli-'));
const db = join(dir, 'demo.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The files at `path` and next to it (`-wal`, `-shm`): which exist, and the main file's bytes. */
function filesAt(path: string): { bytes: Buffer | null; wal: boolean; shm: boolean } {
  return { bytes: existsSync(path) ? readFileSync(path) : null, wal: existsSync(`${path}-wal`), shm: existsSync(`${path}-shm`) };
}

/** Another application's SQLite database (rollback journal, its own application id and table). */
function foreignDatabase(path: string): void {
  const other = new Database(path);
  other.pragma('application_id = 1234');
  other.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')");
  other.close();
}

describe('residency demo', () => {
  let run: { code: number; out: string; err: string };
  beforeAll(async () => {
    run = await cli('demo', '--agents', '50', '--cap', '8', '--running', '3', '--duration', '1', '--seed', '7', '--db', db);
  });

  it('runs the real runtime to its exactly-once line, checked from the store', () => {
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/^residency demo: 50 agents \(4 pinned roots\), resident cap 8, running cap 3/);
    expect(run.out).toMatch(/agents +50 in the store/);
    expect(run.out).toMatch(/reload latency +p50 [\d.]+ ms +p99 [\d.]+ ms/);
    expect(run.out).toMatch(/turn latency +p50 [\d.]+ ms +p99 [\d.]+ ms/);
    expect(run.out.trimEnd().split('\n').at(-1)).toBe('every accepted message handled exactly once: yes');
    const evictions = Number(/(\d+) evictions/.exec(run.out)?.[1]);
    expect(evictions).toBeGreaterThan(0); // 50 agents through 8 slots
  });

  it('ls lists every agent of the database it leaves, as a table and as JSON', async () => {
    const table = await cli('ls', '--db', db);
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +TYPE +PARENT +PINNED +STATE +MAILBOX +TURNS +LAST ACTIVE$/);
    expect(lines.at(-1)).toBe('50 agents (stored: none resident)');
    expect(lines.find((l) => l.startsWith('root-0'))).toMatch(/^root-0 +root +- +yes +unloaded +0 +\d+/);

    const json = JSON.parse((await cli('ls', '--db', db, '--type', 'worker', '--json')).out) as { agents: { id: string; type: string; parent: string; mailbox: number }[] };
    expect(json.agents).toHaveLength(46);
    expect(json.agents.every((a) => a.type === 'worker' && a.parent.startsWith('root-') && a.mailbox === 0)).toBe(true);

    const resident = await cli('ls', '--db', db, '--resident');
    expect(resident.out).toMatch(/no resident agents: nothing is resident in a stored database/);
    expect(JSON.parse((await cli('ls', '--db', db, '--resident', '--json')).out).agents).toEqual([]);
  });

  it('show prints identity, state, mailbox and the rollout', async () => {
    const r = await cli('show', 'agent-0000', '--db', db, '--last', '5');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^id +agent-0000$/m);
    expect(r.out).toMatch(/^parent +root-0$/m);
    expect(r.out).toMatch(/^state +unloaded/m);
    expect(r.out).toMatch(/^mailbox +empty$/m);
    expect(r.out).toMatch(/rollout \(last 5 entries\)/);
    const json = JSON.parse((await cli('show', 'root-1', '--db', db, '--json')).out) as { info: { pinned: boolean }; children: string[]; rollout: unknown[] };
    expect(json.info.pinned).toBe(true);
    expect(json.children.length).toBeGreaterThan(0);
    expect(json.rollout.length).toBeGreaterThan(0);

    const missing = await cli('show', 'nobody', '--db', db);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/"nobody"/);
  });

  it('stats counts what the store holds', async () => {
    const r = await cli('stats', '--db', db);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^agents +50 \(4 root, 46 worker\), 4 pinned$/m);
    expect(r.out).toMatch(/^resident +0: nothing is resident/m);
    const json = JSON.parse((await cli('stats', '--db', db, '--json')).out) as { agents: number; messages: { accepted: number; handled: number; pending: number } };
    expect(json.agents).toBe(50);
    expect(json.messages.handled).toBe(json.messages.accepted);
    expect(json.messages.pending).toBe(0);
  });

  it('says so when there is no database, and creates none', async () => {
    const r = await cli('stats', '--db', join(dir, 'absent.db'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/No database at ".*absent\.db": run `residency demo` first/);
  });
});

describe('bad arguments', () => {
  it.each([
    [['demo', '--cap', '0'], /Expected --cap to be an integer from 1 to 100000, got `0`/],
    [['demo', '--cap', '4', '--running', '5'], /--running \(5\) to be ≤ --cap \(4\)/],
    [['demo', '--duration', 'soon'], /Expected --duration to be an integer from 0 to 3600, got `soon`/],
    // Every numeric option: NaN, negative, fractional, exponent, huge.
    [['demo', '--agents', '1000000', '--duration', '2'], /Expected --agents to be an integer from 2 to 100000, got `1000000`/],
    [['demo', '--agents', 'NaN'], /Expected --agents to be an integer from 2 to 100000, got `NaN`/],
    [['demo', '--agents=-5'], /Expected --agents to be an integer from 2 to 100000, got `-5`/],
    [['demo', '--agents', '2.5'], /Expected --agents to be an integer/],
    [['demo', '--agents', '1e3'], /Expected --agents to be an integer/],
    [['demo', '--cap', '1e300'], /Expected --cap to be an integer from 1 to 100000, got `1e300`/],
    [['demo', '--cap', '1.0'], /Expected --cap to be an integer/],
    [['demo', '--cap', 'Infinity'], /Expected --cap to be an integer/],
    [['demo', '--running', '0'], /Expected --running to be an integer from 1 to 10000, got `0`/],
    [['demo', '--running', '0x10'], /Expected --running to be an integer/],
    [['demo', '--duration=-1'], /Expected --duration to be an integer from 0 to 3600, got `-1`/],
    [['demo', '--duration', '1e9'], /Expected --duration to be an integer from 0 to 3600/],
    [['demo', '--duration', '0.5'], /Expected --duration to be an integer/],
    [['demo', '--seed=-1'], /Expected --seed to be an integer from 0 to 4294967295, got `-1`/],
    [['demo', '--seed', '4294967296'], /Expected --seed to be an integer from 0 to 4294967295/],
    [['demo', '--seed', ' 7'], /Expected --seed to be an integer/],
    [['show', 'alice', '--last', '0'], /Expected --last to be an integer from 1 to 100000, got `0`/],
    [['show', 'alice', '--last', '1e300'], /Expected --last to be an integer from 1 to 100000/],
    [['inspect', '--port', '99999'], /Expected --port to be an integer from 0 to 65535, got `99999`/],
    [['inspect', '--port', '70000'], /Expected --port to be an integer from 0 to 65535, got `70000`/],
    [['inspect', '--port', 'abc'], /Expected --port to be an integer from 0 to 65535, got `abc`/],
    [['inspect', '--port=-1'], /Expected --port to be an integer from 0 to 65535/],
    [['inspect', '--host', '256.1.1.1'], /Expected --host to be an IP address or a host name, got `256.1.1.1`/],
    [['inspect', '--host', 'not a host'], /Expected --host to be an IP address or a host name, got `not a host`/],
    [['inspect', '--host', ''], /Expected --host to be an IP address or a host name, got ``/],
    [['demo', '--keep', '--force'], /--keep keeps the database and --force replaces it: pass one of them/],
    [['demo', '--bogus'], /Unknown option '--bogus'/],
    [['ls', 'extra'], /Unexpected argument 'extra'/],
    [['show'], /show needs an agent id/],
    [['frobnicate'], /unknown command `frobnicate`/],
    [[], /no command given/],
  ])('%j exits 2 with the usage', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toContain('usage: residency <command>');
    expect(r.out).toBe('');
  });
});

describe('Ctrl-C during the demo', () => {
  it('stops sending, stops the runtime, prints the report and exits 0', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/bin.ts', 'demo', '--agents', '200', '--cap', '8', '--running', '2', '--duration', '60', '--seed', '3', '--db', join(dir, 'sigint.db')],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // The first progress line: the demo is sending and agents are running.
      if (!sent && /\naccepted \d+ +handled/.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(sent).toBe(true);
    expect(err).toMatch(/stopping \(Ctrl-C again to exit at once\)/);
    expect(code).toBe(0);
    expect(out).toMatch(/stopped by Ctrl-C after/);
    expect(out).toMatch(/every accepted message handled exactly once: (yes|no \(\d+ not handled: \d+ pending in their durable mailboxes; none handled twice\))/);
  });
});

/** A small residency database: one agent that handled one message. */
async function smallDatabase(path: string): Promise<void> {
  const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store: sqliteStore(path) });
  await runtime.spawn('counter', { id: 'alice' });
  await runtime.ask('alice', { type: 'ping' });
  await runtime.stop();
}

const lines = (text: string) => text.trimEnd().split('\n');

describe('demo --db replaces a residency database only', () => {
  const small = ['--agents', '2', '--cap', '1', '--running', '1', '--duration', '0', '--seed', '1'];

  it('never deletes a database that a live runtime owns', async () => {
    const path = join(dir, 'owned.db');
    await smallDatabase(path);
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store: sqliteStore(path) });
    try {
      const r = await cli('demo', ...small, '--db', path);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^residency: ".*owned\.db" is in use: .*owned by another live runtime \(pid \d+/);
      expect((await runtime.get('alice')).turns).toBe(1); // its data is all there
      expect((await runtime.ask('alice', { type: 'ping' })).state).toMatchObject({ count: 2 });
    } finally {
      await runtime.stop();
    }
  });

  it('--keep goes on with the roots of the earlier run', async () => {
    const path = join(dir, 'kept.db');
    const first = await cli('demo', ...small, '--db', path);
    expect(first.code).toBe(0);
    const again = await cli('demo', ...small, '--db', path, '--keep');
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
    expect(again.out.trimEnd().split('\n').at(-1)).toBe('every accepted message handled exactly once: yes');
  });

  it("refuses another application's SQLite database and leaves it as it was", async () => {
    const path = join(dir, 'other-app.db');
    foreignDatabase(path);
    const before = filesAt(path);
    const r = await cli('demo', ...small, '--db', path);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^residency: ".*other-app\.db" is not a residency database \(another application's SQLite database, application id 0x4d2\): .*--force/);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.out).toBe('');
    expect(filesAt(path)).toEqual(before);
    expect(new Database(path, { readonly: true }).prepare('SELECT body FROM notes').pluck().get()).toBe('keep me');
  });

  it.each([
    ['a text file', 'notes.txt', 'dear diary\n', /\(a file that is not an SQLite database\)/],
    ['an empty file', 'empty.db', '', /\(an empty file, 0 bytes\)/],
  ])('refuses %s and leaves it as it was', async (_, name, content, why) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    const r = await cli('demo', ...small, '--db', path);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(why);
    expect(r.err).toMatch(/--force/);
    expect(lines(r.err)).toHaveLength(1);
    expect(filesAt(path)).toEqual({ bytes: Buffer.from(content), wal: false, shm: false });
    // --keep keeps a file; it does not make a foreign one the demo's either.
    const kept = await cli('demo', ...small, '--keep', '--db', path);
    expect(kept.code).toBe(1);
    expect(filesAt(path)).toEqual({ bytes: Buffer.from(content), wal: false, shm: false });
  });

  it.each([[[]], [['--force']], [['--keep']]])('a directory is a usage error in one line (%j)', async (extra) => {
    const path = join(dir, 'a-folder');
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'inside.txt'), 'x');
    const r = await cli('demo', ...small, ...extra, '--db', path);
    expect(r.code).toBe(2);
    expect(lines(r.err)).toEqual([expect.stringMatching(/^residency: --db ".*a-folder" is a directory: pass the path of a database file$/)]);
    expect(readFileSync(join(path, 'inside.txt'), 'utf8')).toBe('x');
  });

  it('a path under a file is one line (exit 1)', async () => {
    const file = join(dir, 'plain.txt');
    writeFileSync(file, 'x');
    const r = await cli('demo', ...small, '--db', join(file, 'demo.db'));
    expect(r.code).toBe(1);
    expect(lines(r.err)).toEqual([expect.stringMatching(/^residency: Cannot ready the demo's database ".*plain\.txt\/demo\.db": .*(ENOTDIR|EEXIST)/)]);
  });

  it('--force replaces what is there', async () => {
    const path = join(dir, 'forced.txt');
    writeFileSync(path, 'dear diary\n');
    const r = await cli('demo', ...small, '--force', '--db', path);
    expect(r.code).toBe(0);
    expect(lines(r.out).at(-1)).toBe('every accepted message handled exactly once: yes');
    expect(readFileSync(path).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
  });

  it('recreates its own database, also one whose header is still in the write-ahead log (a run that died)', async () => {
    const path = join(dir, 'again.db');
    await smallDatabase(path);
    const first = await cli('demo', ...small, '--db', path);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/agents +2 in the store/); // alice is gone: recreated

    // A copy taken while a store has it open: the application id is only in the -wal file.
    const live = join(dir, 'live-source.db');
    const crashed = join(dir, 'crashed.db');
    const store = sqliteStore(live);
    await store.createAgent({ id: 'alice', type: 'counter', parent: null, pinned: false, input: null, createdAt: 0 });
    copyFileSync(live, crashed);
    copyFileSync(`${live}-wal`, `${crashed}-wal`);
    await store.close();
    expect(readFileSync(crashed).readInt32BE(68)).toBe(0);
    const second = await cli('demo', ...small, '--db', crashed);
    expect(second.err).toBe('');
    expect(second.code).toBe(0);
  });

  it('drains the work still pending when sending stops, saying so, before its check', async () => {
    const path = join(dir, 'drain.db');
    const r = await cli('demo', '--agents', '300', '--cap', '4', '--running', '2', '--duration', '0', '--seed', '5', '--db', path);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^sending stopped: waiting for the agents to handle what is pending/m);
    expect(r.out).toMatch(/agents +300 in the store/);
    expect(lines(r.out).at(-1)).toBe('every accepted message handled exactly once: yes');
  });
});

describe('stored text reaches the terminal with its control characters escaped', () => {
  const path = join(dir, 'escapes.db');
  // Sets the window title, clears the screen, a C1 CSI, a DEL.
  const EVIL = '\x1b]0;owned\x07\x1b[2J\u009b31m\x7f';
  const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/; // every control character but the newline

  beforeAll(async () => {
    const agent = defineAgent({
      type: 'evil',
      logic: fromTurn(
        async ({ message }) => {
          if (message.type === 'fail') throw new Error(`boom ${EVIL}`);
          return {};
        },
        { initialState: {} },
      ),
    });
    const runtime = await createRuntime({ agents: [agent], residentCap: 1, runningCap: 1, store: sqliteStore(path) });
    await runtime.spawn('evil', { id: 'mallory', input: { note: EVIL } });
    await runtime.ask('mallory', { type: 'note', text: EVIL });
    await runtime.ask('mallory', { type: 'fail' }).catch(() => {});
    await runtime.stop();
    // A message accepted and not handled yet: in the mailbox.
    const store = sqliteStore(path);
    await store.append([{ agentId: 'mallory', messageId: 'later', message: { type: `wait${EVIL}` }, at: Date.now() }]);
    await store.close();
    // A crafted file: text the runtime itself would refuse (a type with escapes).
    const raw = new Database(path);
    raw.prepare('UPDATE agents SET type = ?').run(`evil${EVIL}`);
    raw.close();
  });

  it.each([[['ls']], [['show', 'mallory']], [['stats']]])('%j prints them visibly', async (argv) => {
    const r = await cli(...argv, '--db', path);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(RAW);
    expect(r.out).toContain('evil\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\x7f');
  });

  it('show prints a failed turn, a message and the mailbox escaped', async () => {
    const r = await cli('show', 'mallory', '--db', path);
    expect(r.out).toContain('turn failed');
    expect(r.out).toContain('boom \\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\x7f');
    expect(r.out).toMatch(/accepted \{"type":"note","text":"\\u001b\]0;owned\\u0007\\u001b\[2J\\x9b31m\\x7f"\}/);
    expect(r.out).toMatch(/^ {2}#\d+ .* \{"type":"wait\\u001b/m);
  });

  it.each([[['ls']], [['show', 'mallory']], [['stats']]])('%j --json escapes them and stays the same JSON', async (argv) => {
    const r = await cli(...argv, '--json', '--db', path);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(RAW);
    expect(r.out).toContain('\\u009b');
    // The same JSON: the stored text comes back as it was.
    const texts: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') texts.push(v);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (texts.push(k), walk(x));
    };
    walk(JSON.parse(r.out));
    expect(texts).toContain(`evil${EVIL}`);
  });

  it('errors too', async () => {
    const r = await cli('show', `nobody${EVIL}`, '--db', path);
    expect(r.code).toBe(1);
    expect(r.err).not.toMatch(RAW);
    expect(r.err).toContain('nobody\\x1b]0;owned');
  });
});

describe('readers never write', () => {
  it.each([['ls'], ['stats'], ['show', 'alice'], ['inspect']])('%s on an empty file says so, and the file stays empty', async (...argv) => {
    const path = join(dir, `empty-${argv[0]}.db`);
    writeFileSync(path, '');
    const r = await cli(...argv, '--db', path);
    expect(r.code).toBe(1);
    expect(lines(r.err)).toEqual([`residency: "${path}" is not a residency database (an empty file, 0 bytes): pass the path of a database a residency runtime wrote`]);
    expect(filesAt(path)).toEqual({ bytes: Buffer.alloc(0), wal: false, shm: false });
  });

  it("refuses another application's database without touching it", async () => {
    const path = join(dir, 'other-app-read.db');
    foreignDatabase(path);
    const before = filesAt(path);
    for (const command of ['ls', 'stats', 'inspect']) {
      const r = await cli(command, '--db', path);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/is not a residency database \(another application's SQLite database, application id 0x4d2\)/);
    }
    expect(filesAt(path)).toEqual(before);
  });

  it('a directory is a usage error in one line', async () => {
    const r = await cli('stats', '--db', dir);
    expect(r.code).toBe(2);
    expect(lines(r.err)).toEqual([`residency: --db "${dir}" is a directory: pass the path of a database file`]);
  });

  it('ls, show and stats read a database a running runtime holds open for writing', async () => {
    const path = join(dir, 'held.db');
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store: sqliteStore(path) });
    try {
      await runtime.spawn('counter', { id: 'alice' });
      await runtime.ask('alice', { type: 'ping' });
      const ls = await cli('ls', '--db', path);
      expect(ls.err).toBe('');
      expect(ls.out).toMatch(/^alice +counter/m);
      expect((await cli('show', 'alice', '--db', path)).out).toMatch(/turn done/);
      const stats = JSON.parse((await cli('stats', '--db', path, '--json')).out) as { messages: { accepted: number; handled: number } };
      expect(stats.messages).toMatchObject({ accepted: 1, handled: 1 });
      // The owner goes on writing.
      await runtime.ask('alice', { type: 'ping' });
      expect((await runtime.get('alice')).turns).toBe(2);
    } finally {
      await runtime.stop();
    }
  });

  it('inspect --db serves a database a running runtime holds open, until interrupted', async () => {
    const path = join(dir, 'held-inspect.db');
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 2, runningCap: 1, store: sqliteStore(path) });
    try {
      await runtime.spawn('counter', { id: 'alice' });
      await runtime.ask('alice', { type: 'ping' });
      const interrupt = deferred();
      const printed = deferred();
      let out = '';
      let err = '';
      const io: Io = {
        out: (t) => void ((out += t), /Ctrl-C to stop/.test(out) && printed.resolve()),
        err: (t) => void (err += t),
        isTTY: false,
        interrupted: () => interrupt.promise,
      };
      const done = main(['inspect', '--db', path], io);
      await Promise.race([printed.promise, done.then((code) => Promise.reject(new Error(`inspect exited ${code}: ${err}`)))]);
      const url = /inspector \(read-only\): (\S+)/.exec(out)![1]!;
      const snapshot = (await (await fetch(`${url}api/snapshot`)).json()) as { live: boolean; agents: { id: string }[] };
      expect(snapshot.live).toBe(false);
      expect(snapshot.agents.map((a) => a.id)).toEqual(['alice']);
      interrupt.resolve();
      expect(await done).toBe(0);
      await runtime.ask('alice', { type: 'ping' });
    } finally {
      await runtime.stop();
    }
  });
});

describe('inspect: where it listens', () => {
  const path = join(dir, 'inspect.db');
  beforeAll(() => smallDatabase(path));

  it('a port in use is one line naming the port and the fix (exit 1)', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await cli('inspect', '--db', path, '--port', String(port));
      expect(r.code).toBe(1);
      expect(lines(r.err)).toEqual([`residency: port ${port} on 127.0.0.1 is in use: stop what listens there, or pick another with --port (0 picks a free one)`]);
    } finally {
      blocker.close();
    }
  });

  it('an address this machine does not have is one line (exit 1)', async () => {
    const r = await cli('inspect', '--db', path, '--host', '192.0.2.1');
    expect(r.code).toBe(1);
    expect(lines(r.err)).toEqual([expect.stringMatching(/^residency: cannot listen on 192\.0\.2\.1: .*--host/)]);
  });
});

describe('one damaged agent: the readers skip it, say so, and read the others', () => {
  const damages: Damage[] = ['snapshot', 'rollout', 'pages'];
  const paths = Object.fromEntries(damages.map((d) => [d, join(dir, `damaged-${d}.db`)])) as Record<Damage, string>;
  beforeAll(async () => {
    for (const d of damages) await damagedDatabase(paths[d], d);
  });

  // ls and stats read an agent in O(1) whatever its history (its counters, snapshot and last
  // rollout entry): damage deep in its history (here, pages of old messages) is found by
  // `show`, which reads the history, not by the listings.
  it('b: pages deep in its history: ls and stats list b (its row is readable); show b names the damage', async () => {
    const r = await cli('ls', '--db', paths.pages, '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { agents: { id: string }[] }).agents.map((a) => a.id)).toEqual(['a', 'b', 'c']);
    const show = await cli('show', 'b', '--db', paths.pages);
    expect(show.code).toBe(1);
    expect(show.err).toMatch(/^residency: Agent "b" cannot be read: the database file is damaged where it keeps its/);
  });

  describe.each(['snapshot', 'rollout'] as const)('b: %s', (damage) => {
    it('ls lists a and c, and a line after the table names b and what is damaged (exit 0)', async () => {
      const r = await cli('ls', '--db', paths[damage]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const out = lines(r.out);
      expect(out.slice(1, 3).map((l) => l.split(/ +/)[0])).toEqual(['a', 'c']);
      expect(out[3]).toBe('2 agents (stored: none resident)');
      expect(out).toHaveLength(5);
      const said = /^1 agent could not be read: b \((.*)\)$/.exec(out[4]!);
      expect(said, out[4]).not.toBeNull();
      expect(said![1]).toMatch(DAMAGE_SAID[damage]);
    });

    it('ls --json: the readable agents, and `damaged: [{ id, error }]`', async () => {
      const r = await cli('ls', '--db', paths[damage], '--json');
      expect(r.code).toBe(0);
      const json = JSON.parse(r.out) as { agents: { id: string }[]; damaged: { id: string; error: string }[] };
      expect(json.agents.map((a) => a.id)).toEqual(['a', 'c']);
      expect(json.damaged).toEqual([{ id: 'b', error: expect.stringMatching(DAMAGE_SAID[damage]) }]);
    });

    it('stats counts a and c, and says b could not be read', async () => {
      const r = await cli('stats', '--db', paths[damage]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^agents +2 \(2 counter\), 0 pinned; 1 more could not be read$/m);
      expect(r.out).toMatch(/^unreadable +b \(.+\)$/m);
      const json = JSON.parse((await cli('stats', '--db', paths[damage], '--json')).out) as {
        agents: number;
        damaged: { id: string; error: string }[];
        messages: { accepted: number; handled: number };
      };
      expect(json.agents).toBe(2);
      expect(json.damaged).toEqual([{ id: 'b', error: expect.stringMatching(DAMAGE_SAID[damage]) }]);
      expect(json.messages.handled).toBe(2);
    });

    it('show b is one line naming b and what is damaged (exit 1); show a works', async () => {
      const r = await cli('show', 'b', '--db', paths[damage]);
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(lines(r.err)).toHaveLength(1);
      const said = /^residency: Agent "b" cannot be read: (.*)\. The database is damaged there: other agents can still be read \(residency ls\)$/.exec(r.err.trimEnd());
      expect(said, r.err).not.toBeNull();
      expect(said![1]).toMatch(DAMAGE_SAID[damage]);
      expect((await cli('show', 'a', '--db', paths[damage])).code).toBe(0);
      expect((await cli('show', 'b', '--db', paths[damage], '--json')).code).toBe(1);
    });
  });

  it("b's record: the store's listing leaves b out (it cannot say which record it skipped); show b names it", async () => {
    const path = join(dir, 'damaged-record.db');
    await damagedDatabase(path, 'record');
    const ls = await cli('ls', '--db', path);
    expect(ls.code).toBe(0);
    expect(lines(ls.out).slice(1).map((l) => l.split(/ +/)[0])).toEqual(['a', 'c', '2']);
    const show = await cli('show', 'b', '--db', path);
    expect(show.code).toBe(1);
    expect(show.err).toMatch(/^residency: Agent "b" cannot be read: the input in its record is not valid JSON \(.+\)\. The database is damaged there/);
  });

  it('the line names the first ten damaged agents and counts the rest', () => {
    const many = Array.from({ length: 12 }, (_, i) => ({ id: `d${i}`, error: 'its snapshot is not valid JSON (…)' }));
    const line = damagedLine(many);
    expect(line).toMatch(/^12 agents could not be read: d0 \(its snapshot is not valid JSON \(…\)\), d1 /);
    expect(line).toMatch(/, d9 \(its snapshot is not valid JSON \(…\)\), and 2 more \(--json lists them all\)$/);
    expect(line).not.toContain('d10');
  });

  it('the damage is printed with its control characters escaped', async () => {
    const path = join(dir, 'damaged-escapes.db');
    await damagedDatabase(path, null, { sql: "UPDATE snapshots SET snapshot = 'x' || char(27) || ']0;owned' || char(7) || char(155) WHERE agent_id = 'b'" });
    const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
    for (const argv of [['ls'], ['stats'], ['show', 'b'], ['ls', '--json'], ['stats', '--json']]) {
      const r = await cli(...argv, '--db', path);
      expect(r.out + r.err, argv.join(' ')).not.toMatch(RAW);
      expect(r.out + r.err, argv.join(' ')).toMatch(/x(\\x1b|\\u001b)\]0;owned/);
    }
  });
});

describe('show says how much history is kept', () => {
  it('all turns, or the last ones of how many, under a retention policy', async () => {
    const path = join(dir, 'history.db');
    const runtime = await createRuntime({ agents: [counterAgent(new Map())], residentCap: 1, runningCap: 1, store: sqliteStore(path), history: { keepTurns: 5 } });
    await runtime.spawn('counter', { id: 'long' });
    await runtime.spawn('counter', { id: 'short' });
    for (let i = 0; i < 40; i++) await runtime.send('long', { type: 'ping' });
    await runtime.ask('long', { type: 'ping' });
    await runtime.ask('short', { type: 'ping' });
    await runtime.stop();
    const long = await cli('show', 'long', '--db', path);
    expect(long.code).toBe(0);
    expect(long.out).toMatch(/^turns +41$/m);
    expect(long.out).toMatch(/^history +the last \d+ of 41 turns kept \(older ones pruned by the retention policy\)$/m);
    expect((await cli('show', 'short', '--db', path)).out).toMatch(/^history +all 1 turns kept$/m);
  });
});
