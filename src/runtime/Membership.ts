/**
 * This process's part in a cluster: a store several processes share (postgresStore; the
 * contract is src/store/Cluster.ts). Only agents of the shards this process owns live
 * here; to the others it only writes (accepts, spawns, destroys, timers), and the store
 * wakes their owner.
 *
 * It turns the store's cluster events into work:
 * - `gained`: shards taken over from a process that died or stopped: their turns left in
 *   flight are recorded `crashed` (recovery), their agents with mail are scheduled, timers
 *   re-armed;
 * - `lost`: their agents leave memory without a write (Control.drop); asks waiting for them
 *   are answered by the process that runs them now, through the store;
 * - `mail`: another process wrote to the mailbox of an agent owned here: count it (load it);
 * - `destroyed`: another process destroyed an agent owned here: drop it;
 * - `reply`: the answer to a remote ask is stored: take it.
 * Hints can be lost (NOTIFY reaches only live listeners): a poll every `pollInterval`
 * makes up for them (mail of owned shards, replies, the next timer deadline).
 * When the cluster rebalances, shards this process hands over are drained first: their
 * running turns finish, their agents are flushed, nothing of them loads again here.
 */
import { AgentNotFoundError, TurnFailedError } from '../errors.js';
import type { ClusterView, StoreCluster, StoredReply } from '../store/Cluster.js';
import type { AgentRecord } from '../store/Store.js';
import type { Host } from './Host.js';
import type { TurnResult } from './types.js';

export interface MembershipOptions {
  /** Recovers these shards (recovery.ts) and schedules their agents with mail. */
  recover(shards: number[]): Promise<void>;
  /** How often hints are made up for by reading the store (ms, on the runtime's clock). */
  pollInterval: number;
  /** Reports a failure of background work (an `error` event). */
  report(error: unknown): void;
}

/** What `stats().cluster` says: this member and the last view of the cluster. */
export interface ClusterStats {
  member: string | null;
  /** Shards this process owns. */
  owned: number;
  /** The cluster as last read (members, their shard counts, moves). */
  view: ClusterView | null;
}

export class Membership {
  /** Asks whose answer may come through the store: agentId \0 seq → the ask's message id. */
  readonly #asks = new Map<string, { agentId: string; seq: number; messageId: string; since: number }>();
  #unsubscribe: (() => void) | null = null;
  #poll: unknown = null;
  #polling = false;
  #stopped = false;
  #view: ClusterView | null = null;
  #polls = 0;

  constructor(
    private readonly host: Host,
    private readonly cluster: StoreCluster,
    private readonly o: MembershipOptions,
  ) {}

  start(): void {
    this.#unsubscribe = this.cluster.subscribe((event) => {
      if (this.#stopped) return;
      switch (event.type) {
        case 'gained':
          for (const s of event.shards) this.host.leaving.delete(s);
          this.o.recover(event.shards).catch((err: unknown) => this.o.report(err));
          break;
        case 'lost':
          this.#dropShards(event.shards);
          break;
        case 'mail':
          for (const id of event.agentIds) this.wake(id);
          break;
        case 'destroyed':
          for (const id of event.agentIds) this.#destroyed(id);
          break;
        case 'reply':
          this.#take(`${event.agentId}\u0000${event.seq}`);
          break;
      }
    });
    this.cluster.onHandover((shards) => this.#handover(shards));
    this.#schedulePoll();
  }

  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#poll !== null) this.host.clock.clearTimeout(this.#poll);
    this.#poll = null;
  }

  stats(): ClusterStats {
    return { member: this.cluster.memberId, owned: this.cluster.owned().length, view: this.#view };
  }

  /** An ask's message was accepted as `seq`: its answer may come through the store. */
  expect(agentId: string, seq: number, messageId: string): void {
    const key = `${agentId}\u0000${seq}`;
    this.#asks.set(key, { agentId, seq, messageId, since: this.host.clock.now() });
    // Its agent lives elsewhere: the answer may already be there (a fast owner, a lost hint).
    if (!this.host.owns(agentId)) this.#take(key);
  }

  /** Mail for an agent (a hint or the poll): count it if the agent is here, load it if not. */
  wake(id: string): void {
    if (!this.host.owns(id)) return;
    const entry = this.host.entries.get(id);
    if (entry) {
      // Counted mail still to run: it reads the store again once it has run it (Turns), so
      // a busy agent costs no read per poll.
      if (entry.seen !== null && entry.lifecycle.getSnapshot().context.mailbox > 0) return;
      this.host.syncMail(entry);
      return;
    }
    this.host.store.getAgent(id).then((rec: AgentRecord | null) => {
      if (!rec || !this.host.definitions.has(rec.type) || !this.host.owns(id) || this.#stopped) return;
      this.host.withMail(rec, 0); // counted from the store in its chain (syncMail)
    }, (err: unknown) => this.o.report(err));
  }

  #dropShards(shards: readonly number[]): void {
    const lost = new Set(shards);
    for (const entry of [...this.host.entries.values()]) {
      if (lost.has(this.cluster.shardOf(entry.id))) this.host.control.drop(entry, null);
    }
    // Asks of those agents: their answers come from the new owner, through the store.
    for (const [key, a] of this.#asks) if (lost.has(this.cluster.shardOf(a.agentId))) this.#take(key);
  }

  #destroyed(id: string): void {
    this.host.control.destroy(id).catch((err: unknown) => this.o.report(err));
    this.host.waiters.rejectAll(id, new AgentNotFoundError(id));
  }

  /** Drains shards this process gives up (the cluster rebalances): nothing of them runs here after. */
  async #handover(shards: number[]): Promise<void> {
    const leaving = new Set(shards);
    for (const s of shards) this.host.leaving.add(s);
    const ids = [...this.host.entries.keys()].filter((id) => leaving.has(this.cluster.shardOf(id)));
    // A running turn finishes and commits; the agent is flushed; none loads again here (Host.owns).
    await Promise.allSettled(ids.map((id) => this.host.control.close(id, 'stop')));
    for (const id of ids) {
      const entry = this.host.entries.get(id);
      if (!entry) continue;
      await entry.chain;
      if (this.host.entries.get(id) === entry) this.host.control.drop(entry, null);
    }
  }

  /** Takes a stored answer, if there is one, and gives it to the ask still waiting. */
  #take(key: string): void {
    const a = this.#asks.get(key);
    if (!a) return;
    if (!this.host.waiters.has(a.agentId, a.messageId)) {
      this.#asks.delete(key); // answered here (a local turn) or given up (timeout)
      return;
    }
    this.cluster.takeReply(a.agentId, a.seq).then((reply) => {
      if (!reply) return;
      this.#asks.delete(key);
      const w = this.host.waiters.take(a.agentId, a.messageId);
      if (w) settle(w, a.agentId, a.seq, reply);
    }, (err: unknown) => this.o.report(err));
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#poll = this.host.clock.setTimeout(() => {
      this.#poll = null;
      if (this.#polling) return this.#schedulePoll();
      this.#polling = true;
      this.#pollOnce()
        .catch((err: unknown) => this.o.report(err))
        .finally(() => {
          this.#polling = false;
          this.#schedulePoll();
        });
    }, this.o.pollInterval);
  }

  /** What hints may have missed: mail of owned shards, answers to asks, the next deadline. */
  async #pollOnce(): Promise<void> {
    const owned = this.cluster.owned();
    if (owned.length > 0) {
      for (const id of await this.cluster.withPending(owned)) if (!this.#stopped) this.wake(id);
      const next = await this.host.store.nextDeadline();
      if (next !== null) this.host.armTimer(next);
    }
    // Every ask waiting longer than a poll: its turn may have run elsewhere, even before this
    // process took the agent over (the answer is stored for this process, its hint possibly
    // lost). Younger ones are mostly answered here, without a read.
    const before = this.host.clock.now() - this.o.pollInterval;
    for (const [key, a] of this.#asks) if (a.since <= before) this.#take(key);
    if (this.#polls++ % 10 === 0) this.#view = await this.cluster.view();
  }
}

/** Settles an ask with an answer stored by the process that ran its turn. */
function settle(w: { resolve: (r: TurnResult) => void; reject: (e: unknown) => void }, agentId: string, seq: number, reply: StoredReply): void {
  switch (reply.outcome) {
    case 'done':
      w.resolve({ outcome: 'done', state: reply.state, outputs: reply.outputs ?? [] });
      break;
    case 'interrupted':
      w.resolve({ outcome: 'interrupted', state: reply.state, outputs: [] });
      break;
    case 'failed':
      w.reject(new TurnFailedError(agentId, seq, reply.error ?? 'the turn failed'));
      break;
    case 'crashed':
      w.reject(new TurnFailedError(agentId, seq, new Error('its turn crashed: the process running it died mid-turn, so it is recorded "crashed"')));
      break;
  }
}
