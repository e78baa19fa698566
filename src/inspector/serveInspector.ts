/**
 * The visual inspector: a local web page (one self-contained HTML file, no CDN, no
 * network at run time) that shows the supervisor and every agent live.
 *
 * Binds 127.0.0.1 by default. Any other host requires a token, carried by the URL
 * (`?token=…`); requests without it get 403. Live updates flow over Server-Sent Events,
 * batched (see EventBatcher): the runtime's listeners are attached only while a page is
 * connected, so an inspector nobody looks at costs nothing.
 *
 * Errors are short `text/plain` bodies: 400 for a path it cannot read (malformed
 * percent-encoding, an invalid agent id), 404 for an unknown agent, type or page. An
 * agent whose stored data cannot be read (StoreCorruptionError) is no error of the
 * request: `/api/agent/<id>` answers 200 `{ live, id, error }`, `error` saying what is
 * damaged, and `/api/snapshot` lists such agents in `damaged`.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Runtime } from '../createRuntime.js';
import { StoreCorruptionError } from '../errors.js';
import type { Store } from '../store/Store.js';
import { EventBatcher, type Batch } from './EventBatcher.js';
import { agentMachine } from '../../machines/agent.js';
import { drawMachine, type MachineDrawing } from './machineGraph.js';
import { INSPECTOR_PAGE } from './page.js';
import { runtimeSource, storeSource, TIMERS_LIMIT, type InspectorSource } from './sources.js';
import { assertAgentId } from '../validate.js';

export interface InspectorOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default `127.0.0.1`. Any other host requires a token (one is generated when not given). */
  host?: string;
  /** Required on every request when given (always given for non-loopback hosts). */
  token?: string;
  /** Least time between two pushes of events to a page (ms). Default 100. */
  flushInterval?: number;
  /** Most events per push; the rest are counted as dropped. Default 500. */
  maxBatch?: number;
}

export interface LiveInspectorOptions extends InspectorOptions {
  /**
   * @deprecated Not needed: the inspector reads mailboxes and rollouts through the
   * runtime's own read API (`runtime.mailbox`, `runtime.history`). Accepted and ignored.
   */
  store?: Store;
}

export interface Inspector {
  /** Open this in a browser (carries the token when there is one). */
  url: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const WILDCARD = new Set(['0.0.0.0', '::', '']);

/**
 * Serves the inspector for a running runtime. It reads the runtime only through its
 * public API (`list`, `get`, `stats`, `on` and the read views `residency`, `mailbox`,
 * `history`, `machineOf`, `logicValue`), so any `Runtime` will do.
 *
 * @example
 * const inspector = await serveInspector(runtime);
 * console.log(inspector.url); // => http://127.0.0.1:54321/
 * await inspector.close();
 */
export function serveInspector(runtime: Runtime, options: LiveInspectorOptions = {}): Promise<Inspector> {
  assertOptions(options);
  return serve(runtimeSource(runtime), options);
}

/**
 * Serves a read-only inspector over a stored database: nothing runs, so every agent
 * shows as unloaded, with its mailbox and rollout (for `residency inspect --db <file>`).
 *
 * @example
 * const inspector = await serveStoredInspector(sqliteStore('.residency/residency.db'));
 */
export function serveStoredInspector(store: Store, options: InspectorOptions = {}): Promise<Inspector> {
  assertOptions(options);
  return serve(storeSource(store), options);
}

/** Bad options fail before anything is bound, with a TypeError worded as the rule. */
function assertOptions(o: InspectorOptions): void {
  if (o === null || typeof o !== 'object') throw new TypeError(`Expected inspector options { port?, host?, token? }, got ${String(o)}`);
  if (o.port !== undefined && (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)) {
    throw new TypeError(`Expected \`port\` to be an integer from 0 to 65535, got ${JSON.stringify(o.port)}`);
  }
  if (o.host !== undefined && typeof o.host !== 'string') throw new TypeError(`Expected \`host\` to be a string, got ${typeof o.host}`);
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token.length < 16)) {
    throw new TypeError('Expected `token` to be a string of at least 16 characters');
  }
}

function sameToken(given: string | null, token: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/** An error: a short line of text. */
function fail(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(`${message}\n`);
}

/** Thrown for a request the server cannot read: answered 400 with its message. */
class BadRequest extends Error {}

/** A path segment, percent-decoded; malformed percent-encoding is a bad request. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new BadRequest('Bad request: malformed percent-encoding in the path');
  }
}

const ID_RULE = 'ids are 1–255 characters of letters, digits and ._:@-, starting with a letter or digit';

function intParam(v: string | null, fallback: number, max: number): number {
  const n = v === null ? NaN : Number(v);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, max) : fallback;
}

async function serve(source: InspectorSource, options: InspectorOptions): Promise<Inspector> {
  const host = options.host ?? '127.0.0.1';
  const loopback = LOOPBACK.has(host);
  const token = options.token ?? (loopback ? null : randomBytes(24).toString('base64url'));
  // Layouts are computed once, on first request (elkjs loads then).
  let lifecycle: Promise<MachineDrawing> | null = null;
  const drawings = new Map<string, Promise<MachineDrawing>>();

  // --- live events: one subscription shared by every connected page ---
  const clients = new Set<ServerResponse>();
  let unsubscribe: (() => void) | null = null;
  const batcher = new EventBatcher(
    (batch: Batch) => {
      const frame = `data: ${JSON.stringify(batch)}\n\n`;
      for (const res of clients) {
        // A page that cannot keep up skips frames rather than buffering without bound.
        if (res.writableNeedDrain) continue;
        res.write(frame);
      }
    },
    { interval: options.flushInterval, maxBatch: options.maxBatch },
  );
  const attach = (res: ServerResponse) => {
    clients.add(res);
    if (!unsubscribe && source.subscribe) unsubscribe = source.subscribe((make) => batcher.offer(make));
  };
  const detach = (res: ServerResponse) => {
    clients.delete(res);
    if (clients.size === 0 && unsubscribe) {
      unsubscribe();
      unsubscribe = null;
      batcher.stop();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://inspector');
    } catch {
      throw new BadRequest('Bad request: the URL cannot be read');
    }
    if (token !== null) {
      const bearer = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7) : null;
      if (!sameToken(url.searchParams.get('token') ?? bearer, token)) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('Forbidden: this inspector needs its token; open the URL it printed (…?token=…)\n');
        return;
      }
    } else {
      // Loopback without a token: refuse other Host names, so a web page cannot reach us by DNS rebinding.
      const hostname = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      if (!LOOPBACK.has(hostname)) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`Forbidden: unexpected Host "${hostname}"; use http://127.0.0.1\n`);
        return;
      }
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const path = url.pathname;
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
      });
      res.end(INSPECTOR_PAGE);
      return;
    }
    if (path === '/api/lifecycle') {
      lifecycle ??= drawMachine(agentMachine);
      return json(res, 200, await lifecycle);
    }
    const machineMatch = /^\/api\/machine\/(.+)$/.exec(path);
    if (machineMatch) {
      const type = decodeSegment(machineMatch[1]!);
      const machine = source.machine(type);
      if (!machine) {
        return fail(
          res,
          404,
          source.live
            ? `Agent type ${JSON.stringify(type)} has no statechart to draw: it is not defined here or its logic is a fromTurn function`
            : 'A stored view has no agent definitions, so no agent statechart to draw',
        );
      }
      let drawing = drawings.get(type);
      if (!drawing) {
        drawing = drawMachine(machine);
        drawings.set(type, drawing);
      }
      return json(res, 200, await drawing);
    }
    if (path === '/api/snapshot') {
      const p = url.searchParams;
      const resident = p.get('resident');
      const snapshot = await source.snapshot({
        limit: intParam(p.get('limit'), 50, 1000),
        cursor: p.get('cursor') || null,
        type: p.get('type') || undefined,
        state: p.get('state') || undefined,
        resident: resident === 'true' ? true : resident === 'false' ? false : undefined,
        top: intParam(p.get('top'), 20, 1000),
      });
      return json(res, 200, snapshot);
    }
    const agentMatch = /^\/api\/agent\/(.+)$/.exec(path);
    if (agentMatch) {
      const id = decodeSegment(agentMatch[1]!);
      try {
        assertAgentId(id);
      } catch {
        throw new BadRequest(`Bad request: not an agent id: ${ID_RULE}`);
      }
      let detail: Awaited<ReturnType<InspectorSource['agent']>>;
      try {
        detail = await source.agent(id, {
          rollout: intParam(url.searchParams.get('rollout'), 200, 10_000),
          mailbox: intParam(url.searchParams.get('mailbox'), 50, 1000),
          timers: intParam(url.searchParams.get('timers'), TIMERS_LIMIT, 1000),
        });
      } catch (err) {
        // Damaged stored data: the page says what is damaged, in place of the agent.
        if (err instanceof StoreCorruptionError) return json(res, 200, { live: source.live, id, error: err.what });
        throw err;
      }
      if (!detail) return fail(res, 404, `Agent "${id}" does not exist`);
      return json(res, 200, { live: source.live, ...detail });
    }
    if (path === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`retry: 2000\n: ${source.live ? 'live' : 'stored (no events)'}\n\n`);
      attach(res);
      req.on('close', () => detach(res));
      return;
    }
    fail(res, 404, `No such page: ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) res.end();
      else if (err instanceof BadRequest) fail(res, 400, err.message);
      else fail(res, 500, `Internal error: ${err instanceof Error ? err.message : String(err)}`);
    });
  });
  // Keeps SSE connections open through proxies and notices dead peers.
  const heartbeat = setInterval(() => {
    for (const res of clients) if (!res.writableNeedDrain) res.write(': ping\n\n');
  }, 15_000);
  heartbeat.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shown = WILDCARD.has(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/${token !== null ? `?token=${encodeURIComponent(token)}` : ''}`,
    async close() {
      clearInterval(heartbeat);
      for (const res of [...clients]) {
        res.end();
        detach(res);
      }
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
