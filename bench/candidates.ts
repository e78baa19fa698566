/**
 * The candidates of the runtime benchmarks, each built inside its own process by
 * bench/child.ts (see bench/isolated.ts). A candidate sets itself up once, then runs
 * `ops` operations per round; `check()` says afterwards whether it did what it claims.
 */
import { createActor, type Actor } from 'xstate';
import { agentMachine, type AgentContext, type AgentEvent } from '../machines/agent.js';
import { Lifecycle } from '../src/runtime/Lifecycle.js';
import { agentEventFor, supervisorBoundActions } from '../machines/protocol.js';
import { supervisorMachine, type SupervisorEffects } from '../machines/supervisor.js';
import { memoryStore, type Store, type StoreOp } from '../src/index.js';
import { stateValueOf, storedSnapshot, turnOver } from '../src/runtime/snapshots.js';
import { agentId, counterMachine, drivenRuntime, inc, populate } from './agents.js';
import { durableFactories } from './durable.js';
import { turnsFactories } from './durableTurns.js';
import { timersFactories } from './timers.js';
import { eventLoopFactories } from './eventLoop.js';

export interface AsyncCandidate {
  setup(): Promise<void> | void;
  run(ops: number): Promise<void> | void;
  /** Facts about what ran (counters, final state), for the report; throws if something is wrong. */
  check(): Promise<Record<string, number>> | Record<string, number>;
}

type Counter = Actor<typeof counterMachine>;

/** Bare XState: `agents` started counter actors; a round sends `ops` events, round-robin. */
function bareSend(arg: { agents: number }): AsyncCandidate {
  const actors: Counter[] = [];
  let sent = 0;
  return {
    setup() {
      for (let i = 0; i < arg.agents; i++) actors.push(createActor(counterMachine).start());
    },
    run(ops) {
      const n = actors.length;
      for (let k = 0; k < ops; k++) actors[k % n]!.send(inc);
      sent += ops;
    },
    check() {
      const total = actors.reduce((s, a) => s + a.getSnapshot().context.n, 0);
      if (total !== sent) throw new Error(`bare actors counted ${total}, sent ${sent}`);
      return { handledPerOp: 1 };
    },
  };
}

/**
 * Messages to resident agents through the runtime.
 * - `fire`: one caller sends `ops` messages without awaiting, round-robin over the agents,
 *   then waits until every one is handled;
 * - `senders`: `agents` concurrent callers, each awaiting its `send` before the next, one
 *   agent each, then waits until every message is handled;
 * - `ask`: one caller, `await ask()` one message at a time.
 */
function runtimeSend(arg: { agents: number; runningCap: number; mode: 'fire' | 'senders' | 'ask' }): AsyncCandidate {
  let d!: Awaited<ReturnType<typeof drivenRuntime>>;
  let sent = 0;
  let loadsAfterSetup = 0;
  // The store's group commits while measured (warm-up included): batches and ops in them.
  const batches = { calls: 0, ops: 0, appends: 0, commits: 0, begins: 0, since: 0 };
  const countBatches = (store: Store) => {
    const batch = store.batch!.bind(store);
    store.batch = (ops: readonly StoreOp[]) => {
      batches.calls++;
      batches.ops += ops.length;
      for (const op of ops) {
        if (op.op === 'append') batches.appends++;
        else if (op.op === 'commitTurn') batches.commits++;
        else if (op.op === 'beginTurn') batches.begins++;
      }
      return batch(ops);
    };
  };
  return {
    async setup() {
      d = await drivenRuntime({ residentCap: arg.agents, runningCap: arg.runningCap, onStore: countBatches });
      await populate(d, arg.agents, arg.agents);
      sent = arg.agents;
      loadsAfterSetup = d.runtime.stats().loads;
      batches.calls = batches.ops = batches.appends = batches.commits = batches.begins = 0;
      batches.since = sent;
    },
    async run(ops) {
      const { runtime } = d;
      const n = arg.agents;
      const target = d.finished + ops;
      if (arg.mode === 'fire') {
        for (let k = 0; k < ops; k++) void runtime.send(agentId(k % n), inc);
        await d.until(target);
      } else if (arg.mode === 'senders') {
        const each = Math.ceil(ops / n);
        const loops: Promise<void>[] = [];
        for (let s = 0; s < n; s++) {
          const id = agentId(s);
          const count = Math.min(each, ops - s * each);
          loops.push(
            (async () => {
              for (let k = 0; k < count; k++) await runtime.send(id, inc);
            })(),
          );
        }
        await Promise.all(loops);
        await d.until(target);
      } else {
        for (let k = 0; k < ops; k++) await runtime.ask(agentId(k % n), inc);
      }
      sent += ops;
    },
    async check() {
      if (d.failed > 0) throw new Error(`${d.failed} turns failed`);
      let total = 0;
      for (let i = 0; i < arg.agents; i++) {
        const r = await d.runtime.ask(agentId(i), { type: 'inc', by: 0 });
        total += (r.state as { context: { n: number } }).context.n;
      }
      if (total !== sent) throw new Error(`agents counted ${total}, sent ${sent}`);
      const s = d.runtime.stats();
      const reloads = s.loads - loadsAfterSetup;
      if (reloads !== 0) throw new Error(`${reloads} agents were reloaded during a delivery benchmark`);
      const messages = sent - batches.since;
      return {
        handledPerOp: 1,
        reloads,
        batchesPerMessage: batches.calls / messages,
        opsPerBatch: batches.ops / batches.calls,
        beginsPerMessage: batches.begins / messages,
      };
    },
  };
}

/**
 * Evict + reload cycles through the runtime: `resident` agents fill the cap, `batch`
 * more exist; each round sends one message at a time to the `batch` agents least
 * recently used (all unloaded), waits until they are handled, and so on: every
 * message loads its agent and evicts the least recently used resident.
 */
function runtimeCycle(arg: { resident: number; batch: number; runningCap: number }): AsyncCandidate {
  let d!: Awaited<ReturnType<typeof drivenRuntime>>;
  const total = arg.resident + arg.batch;
  let next = arg.resident;
  let cycles = 0;
  let base = { loads: 0, evictions: 0, hits: 0 };
  return {
    async setup() {
      d = await drivenRuntime({ residentCap: arg.resident, runningCap: arg.runningCap });
      await populate(d, total, arg.resident);
      const s = d.runtime.stats();
      base = { loads: s.loads, evictions: s.evictions, hits: s.hits };
    },
    async run(ops) {
      const { runtime } = d;
      for (let done = 0; done < ops; done += arg.batch) {
        const k = Math.min(arg.batch, ops - done);
        const handled = d.until(d.finished + k);
        for (let j = 0; j < k; j++) void runtime.send(agentId(next++ % total), inc);
        await handled;
      }
      cycles += ops;
    },
    check() {
      if (d.failed > 0) throw new Error(`${d.failed} turns failed`);
      const s = d.runtime.stats();
      return {
        loadsPerOp: (s.loads - base.loads) / cycles,
        evictionsPerOp: (s.evictions - base.evictions) / cycles,
        hitsPerOp: (s.hits - base.hits) / cycles,
        resident: s.resident,
      };
    },
  };
}

/**
 * The same cycle on bare XState: `resident` live actors, `batch` more kept as persisted
 * snapshots. A cycle persists and stops the least recently used actor, restores the
 * target from its snapshot, starts it and sends it the message.
 */
function bareCycle(arg: { resident: number; batch: number }): AsyncCandidate {
  const total = arg.resident + arg.batch;
  // Live actors in LRU order: a ring whose head is the least recently used (a cycle
  // always evicts the head and appends the target, so the order is strictly FIFO).
  const ring: { id: number; actor: Counter }[] = [];
  let head = 0;
  const snapshots: unknown[] = new Array(total).fill(undefined);
  let next = arg.resident;
  let sent = 0;
  return {
    setup() {
      for (let i = 0; i < arg.resident; i++) {
        const actor = createActor(counterMachine).start();
        actor.send(inc);
        sent++;
        ring.push({ id: i, actor });
      }
      for (let i = arg.resident; i < total; i++) snapshots[i] = createActor(counterMachine).getPersistedSnapshot();
    },
    run(ops) {
      for (let k = 0; k < ops; k++) {
        const t = next++ % total;
        const slot = ring[head]!;
        snapshots[slot.id] = slot.actor.getPersistedSnapshot();
        slot.actor.stop();
        const actor = createActor(counterMachine, { snapshot: snapshots[t] as never }).start();
        snapshots[t] = undefined;
        actor.send(inc);
        ring[head] = { id: t, actor };
        head = (head + 1) % ring.length;
      }
      sent += ops;
    },
    check() {
      let count = 0;
      for (const { actor } of ring) count += actor.getSnapshot().context.n;
      for (const s of snapshots) if (s) count += (s as { context: { n: number } }).context.n;
      if (count !== sent) throw new Error(`bare cycle counted ${count}, sent ${sent}`);
      return { loadsPerOp: 1, evictionsPerOp: 1 };
    },
  };
}

/**
 * Part of the runtime's work per message, alone: the statecharts, wired as the Host wires
 * them (bound supervisor actions, grants delivered to the agent, the lifecycle on the
 * Lifecycle interpreter), for a resident agent whose mailbox never empties (as under
 * `send` without await). No store, no logic actor, no promises, no Host subscription.
 * - `fast`: what a message costs the statecharts since the engine rework: the agent keeps
 *   its running permit for its next message (`turn.done` with `continue`), so a message is
 *   `message.accepted` (count it) and `turn.done` → `startTurn`: 2 lifecycle events and
 *   no supervisor event;
 * - `permit`: the permit handed back and asked for again at every turn (the path before
 *   the rework, and now when a streak of STREAK turns ends while others wait): per
 *   message `message.accepted`, then `turn.done` → `permit.release`, `permit.request` →
 *   `permit.granted` → `startTurn` (3 lifecycle + 2 supervisor events).
 */
function statechartsOnly(arg: { path: 'fast' | 'permit' }): AsyncCandidate {
  let turns = 0;
  let loads = 0;
  let life!: Lifecycle<AgentContext, AgentEvent>;
  const sup = createActor(
    supervisorMachine.provide({
      actions: {
        grantSlot: (_, p: SupervisorEffects['grantSlot']) => life.send(agentEventFor('grantSlot', p)),
        grantPermit: (_, p: SupervisorEffects['grantPermit']) => life.send(agentEventFor('grantPermit', p)),
        evict: (_, p: SupervisorEffects['evict']) => life.send(agentEventFor('evict', p)),
      },
    }),
    { input: { residentCap: 1, runningCap: 1 } },
  );
  const bound = supervisorBoundActions((e) => sup.send(e), () => Date.now());
  // As the Host runs it: the lifecycle statechart on the Lifecycle interpreter.
  life = new Lifecycle<AgentContext, AgentEvent>(
    agentMachine.provide({ actions: { ...bound, startLoad: () => void loads++, startTurn: () => void turns++ } }),
    { id: 'a' },
  );
  let messages = 0;
  const done: AgentEvent = arg.path === 'fast' ? { type: 'turn.done', outcome: 'done', continue: true } : { type: 'turn.done', outcome: 'done' };
  return {
    setup() {
      sup.start();
      life.start();
      life.send({ type: 'message.accepted' }); // slot granted → startLoad
      life.send({ type: 'load.done' }); // permit granted → startTurn: running, 1 message
      messages = 1;
    },
    run(ops) {
      for (let k = 0; k < ops; k++) {
        life.send({ type: 'message.accepted' });
        life.send(done);
      }
      messages += ops;
    },
    check() {
      if (turns !== messages || loads !== 1) throw new Error(`statecharts: ${turns} turns started for ${messages} messages, ${loads} loads`);
      if (life.getSnapshot().value !== 'running') throw new Error(`statecharts: the agent is ${JSON.stringify(life.getSnapshot().value)}, not running`);
      return { turnsPerOp: 1 };
    },
  };
}

/**
 * Part of the runtime's work per message, alone: the memoryStore writes of one message as
 * the runtime makes them since the rework for one agent sent to without await, through
 * `store.batch` (the write buffer's group commit): per message ONE batch of two ops, the
 * accept of a new message (`append`) and the `commitTurn` of the head with its snapshot,
 * which also begins the next turn (`CommitTurn.next`). That is the shape the delivery
 * runtime rows count (about 1 batch per message, 2 ops each, with memoryStore: it batches
 * as soon as the current job ends, so sends and commits trickle in pairs). No `pending` (a
 * resident agent takes its next message from its inbox) and no `beginTurn` of its own.
 * Like the runtime, the message is structured-cloned before it is handed to the store.
 */
function storeOnly(): AsyncCandidate {
  const store = memoryStore();
  const snapshot = JSON.parse(JSON.stringify(createActor(counterMachine).start().getPersistedSnapshot())) as unknown;
  let counter = 0;
  let head = 0;
  const id = 'a';
  const append = (): StoreOp => {
    const at = Date.now();
    const messageId = `${at.toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    return { op: 'append', request: { agentId: id, messageId, message: structuredClone(inc), at } };
  };
  const ok = (rs: { ok: boolean }[]) => {
    if (!rs.every((r) => r.ok)) throw new Error('store: an op failed');
  };
  return {
    async setup() {
      await store.createAgent({ id, type: 'counter', parent: null, pinned: false, input: null, createdAt: Date.now() });
      const [r] = await store.batch([append()]);
      head = (r as { value: { seq: number } }).value.seq;
      ok(await store.batch([{ op: 'beginTurn', agentId: id, seq: head, at: Date.now() }]));
    },
    async run(ops) {
      for (let k = 0; k < ops; k++) {
        const at = Date.now();
        ok(
          await store.batch([
            append(),
            { op: 'commitTurn', commit: { agentId: id, seq: head, outcome: 'done', snapshot, outputs: [], outbox: [], spawned: [], at, durationMs: 0, next: { seq: head + 1, at } } },
          ]),
        );
        head++;
      }
    },
    async check() {
      if ((await store.mailboxSize(id)) !== 1) throw new Error('store: not exactly one message ahead');
      return {};
    },
  };
}

/**
 * Part of the runtime's work per message, alone: what a turn does with the logic actor of
 * a machine agent since the rework (Turns.ts): the snapshot before is the one last stored
 * (no copy), the message is sent, `turnOver` finds the turn over at once (no promise
 * child: no subscription), then `storedSnapshot` (the persisted snapshot and its JSON copy
 * and check) and `stateValueOf`, the runtime's own functions. No store, no statecharts.
 */
function logicOnly(): AsyncCandidate {
  const actor = createActor(counterMachine);
  let sent = 0;
  return {
    setup() {
      actor.start();
    },
    run(ops) {
      let last: unknown = actor.getPersistedSnapshot();
      for (let k = 0; k < ops; k++) {
        const before = last;
        if (actor.getSnapshot().status !== 'active') throw new Error('unreachable');
        actor.send(inc);
        if (!turnOver(actor)) throw new Error('logic: the turn is not over');
        const after = storedSnapshot('a', actor);
        stateValueOf(after);
        if (before === after) throw new Error('unreachable');
        last = after;
      }
      sent += ops;
    },
    check() {
      if (actor.getSnapshot().context.n !== sent) throw new Error('logic: wrong count');
      return {};
    },
  };
}

export const factories = { bareSend, runtimeSend, runtimeCycle, bareCycle, statechartsOnly, storeOnly, logicOnly, ...durableFactories, ...turnsFactories, ...eventLoopFactories, ...timersFactories } as const;

export type Factories = typeof factories;
export type Kind = keyof Factories;
export type ArgOf<K extends Kind> = Parameters<Factories[K]>[0];
