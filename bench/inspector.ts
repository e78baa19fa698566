/**
 * Inspector overhead: delivery to a resident agent with the live inspector serving an open
 * page (an SSE client connected to `/events`, reading everything it is sent) against the
 * same runtime setup without any inspector. Both runtimes live in this process and are
 * measured in alternating rounds. Target: within 10 % of without.
 */
import http from 'node:http';
import { serveInspector } from '../src/inspector/serveInspector.js';
import { agentId, drivenRuntime, inc, type Driven } from './agents.js';
import { fmt, median } from './harness.js';

const MESSAGES = 2_000;
const ROUNDS = 15;

async function setup(withInspector: boolean) {
  const d = await drivenRuntime({ residentCap: 4, runningCap: 1 });
  await d.runtime.spawn('counter', { id: agentId(0) });
  await d.runtime.send(agentId(0), inc);
  await d.until(1);
  let close = async () => {};
  let received = 0;
  if (withInspector) {
    const inspector = await serveInspector(d.runtime, { store: d.store } as never);
    const url = new URL(inspector.url);
    const req = http.get(new URL(`/events${url.search}`, url), (res) => {
      if (res.statusCode !== 200) throw new Error(`the inspector's event stream answered ${res.statusCode}`);
      res.on('data', (chunk: Buffer) => void (received += chunk.length));
    });
    await new Promise<void>((resolve) => setTimeout(resolve, 200)); // let the page's stream open before measuring
    close = async () => {
      req.destroy();
      await inspector.close();
    };
  }
  return { d, close, received: () => received };
}

async function round(d: Driven): Promise<number> {
  const start = d.finished;
  const t0 = process.hrtime.bigint();
  // In chunks, yielding to the event loop between them (as an app doing I/O would), so the
  // inspector's timers and socket writes happen inside the measured time.
  for (let i = 0; i < MESSAGES; i++) {
    void d.runtime.send(agentId(0), inc);
    if (i % 50 === 49) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await d.until(start + MESSAGES);
  return Number(process.hrtime.bigint() - t0) / MESSAGES;
}

export async function benchInspector(): Promise<string> {
  const without = await setup(false);
  const withPage = await setup(true);
  const a: number[] = [];
  const b: number[] = [];
  await round(without.d);
  await round(withPage.d);
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await round(without.d));
    b.push(await round(withPage.d));
  }
  const bytes = withPage.received();
  await without.close();
  await withPage.close();
  await without.d.runtime.stop();
  await withPage.d.runtime.stop();
  const ma = median(a);
  const mb = median(b);
  const overhead = mb / ma - 1;
  return [
    '## Inspector overhead',
    '',
    `Delivery to one resident agent (${fmt(MESSAGES)} \`send\`s without await, yielding to the event loop every 50, then wait until handled), with the`,
    'live inspector serving one open page (an SSE client on `/events` reading everything) against',
    `no inspector; both in one process, ${ROUNDS} alternating rounds, medians. Target: within 10 %.`,
    '',
    '| case | per message |',
    '| --- | ---: |',
    `| no inspector | ${fmt(ma / 1000, 1)} µs |`,
    `| inspector with an open page | ${fmt(mb / 1000, 1)} µs |`,
    '',
    `- overhead: **${(overhead * 100).toFixed(1)} %** — ${overhead <= 0.1 ? '**met**' : `**missed** by ${((overhead - 0.1) * 100).toFixed(1)} points`} (the page received ${fmt(bytes / 1024, 1)} KB of event batches; under this load the batcher sends at most 500 events per 100 ms and counts the rest as dropped)`,
  ].join('\n');
}
