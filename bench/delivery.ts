/**
 * Delivery: messages per second to resident agents through the runtime, against the
 * same XState machine driven bare (`createActor(machine).start()` + `actor.send`).
 * Target: the runtime delivers at ≥ 0.5× the bare actor.
 */
import { fmt } from './harness.js';
import { compareIsolated, spec, type IsolatedMeasured } from './isolated.js';

export const row = (m: IsolatedMeasured) => `| ${m.name} | ${fmt(m.nsPerOp / 1000, 1)} µs | ${fmt(m.opsPerSec)} | ${fmt(m.gcShare * 100)} % |`;

export async function benchDelivery(): Promise<string> {
  const AGENTS = 64;
  const ms = await compareIsolated(
    [
      spec('bare XState actor: `actor.send`, 1 actor', 'bareSend', { agents: 1 }, 50_000),
      spec('runtime: `send` ×N, no await, 1 agent, then wait until all handled', 'runtimeSend', { agents: 1, runningCap: 1, mode: 'fire' }, 3_000),
      spec('runtime: `await ask` one at a time, 1 agent', 'runtimeSend', { agents: 1, runningCap: 1, mode: 'ask' }, 1_500),
      spec(`bare XState actors: \`actor.send\` round-robin, ${AGENTS} actors`, 'bareSend', { agents: AGENTS }, 50_000),
      spec(`runtime: ${AGENTS} concurrent senders (\`await send\` each), ${AGENTS} agents, runningCap 8`, 'runtimeSend', { agents: AGENTS, runningCap: 8, mode: 'senders' }, 3_200),
      spec(`runtime: \`send\` ×N round-robin, no await, ${AGENTS} agents, runningCap 8`, 'runtimeSend', { agents: AGENTS, runningCap: 8, mode: 'fire' }, 3_200),
      spec('part alone: the two statecharts, one message (lifecycle + supervisor, as wired by the Host)', 'statechartsOnly', undefined, 10_000),
      spec('part alone: the memoryStore calls of one turn (append, pending, beginTurn, commitTurn)', 'storeOnly', undefined, 10_000),
      spec('part alone: the logic actor as a turn uses it (2 persisted snapshots, subscribe, send)', 'logicOnly', undefined, 20_000),
    ],
    { rounds: 7, warmup: 2 },
  );
  const [bare1, fire1, ask1, bareN, sendersN, fireN, charts, store, logic] = ms;
  if (!logic || !bare1 || !fire1 || !ask1 || !bareN || !sendersN || !fireN || !charts || !store) throw new Error('missing candidate');
  const parts = charts.nsPerOp + store.nsPerOp + logic.nsPerOp;
  const share = (x: IsolatedMeasured) => `${fmt((x.nsPerOp / fire1.nsPerOp) * 100)} %`;
  const ratio = (rt: IsolatedMeasured, bare: IsolatedMeasured) => bare.nsPerOp / rt.nsPerOp;
  const verdict = (r: number) => (r >= 0.5 ? `**met**` : `**missed**: ${fmt(0.5 / r, 1)}× short of 0.5×`);
  return [
    '## Delivery to resident agents',
    '',
    'Messages per second to resident agents through the runtime (`memoryStore()`, a machine',
    'agent: the counter machine of bench/agents.ts, one `assign` per message) against the same',
    'machine as a bare XState actor. The runtime side counts a message once its turn has',
    'finished (the `turn.finished` event): accepted into the store, taken from the mailbox,',
    'sent to the actor, snapshot committed. Every candidate runs in its own process',
    '(bench/isolated.ts); rounds alternate; medians of 7 rounds. "GC" is the share of the',
    'round spent in garbage collection. Target: runtime ≥ 0.5× bare.',
    '',
    '| case | per message | messages/s | GC |',
    '| --- | ---: | ---: | ---: |',
    ...ms.map(row),
    '',
    `- one agent, \`send\` without await: runtime / bare = **${ratio(fire1, bare1).toFixed(3)}×** — ${verdict(ratio(fire1, bare1))}`,
    `- one agent, \`await ask\` one at a time: runtime / bare = **${ratio(ask1, bare1).toFixed(3)}×**`,
    `- ${AGENTS} agents, ${AGENTS} concurrent senders: runtime / bare = **${ratio(sendersN, bareN).toFixed(3)}×** — ${verdict(ratio(sendersN, bareN))}`,
    `- ${AGENTS} agents, \`send\` without await: runtime / bare = **${ratio(fireN, bareN).toFixed(3)}×**`,
    '',
    'Where a message\'s time goes (one agent, `send` without await = 100 %), from the parts',
    'measured alone: the two statecharts (3 lifecycle + 2 supervisor events per message,',
    `against the logic's 1) ${share(charts)}, the memoryStore calls ${share(store)}, the logic actor as a`,
    `turn uses it ${share(logic)}; together ${fmt((parts / fire1.nsPerOp) * 100)} %. The rest,`,
    `${fmt(((fire1.nsPerOp - parts) / fire1.nsPerOp) * 100)} %, is the glue between them: promises and the per-agent`,
    'chain, the accept pipeline, copies of the message, an AbortController and a subscription',
    'per turn, `persistable` (a copy and a JSON check of every snapshot), events.',
    `Even with a free store and free glue, the statecharts alone would cap the runtime at`,
    `**${(bare1.nsPerOp / (charts.nsPerOp + logic.nsPerOp)).toFixed(2)}×** the bare actor.`,
  ].join('\n');
}
