/**
 * A store several runtimes share (postgresStore): one agent population, many processes.
 * Such a store carries a `cluster` (`Store.cluster`); an embedded store has none.
 *
 * Ownership is per shard, not per store. Agents hash to `shards` shards (`shardOf`: FNV-1a,
 * 32 bits, of the id's UTF-16 code units, modulo `shards`; fixed when the schema is made).
 * Each shard is owned by at most one member (a runtime that called `acquire`) through a
 * lease: (owner, epoch, expiry), the expiry on the database's clock, renewed for all of a
 * member's shards at once by a heartbeat (traffic O(shards), never O(agents)).
 *
 * Writes come in two kinds:
 * - client writes, allowed from any member for any agent: `createAgent`, `append`,
 *   `destroyAgent`, `schedule`, `cancel` (send, spawn, destroy and schedule work from any
 *   process). An `append` that makes a mailbox non-empty wakes the owner (a hint: see
 *   ClusterEvent 'mail'), in the same transaction.
 * - owner writes: `beginTurn`, `commitTurn`, `note`, `fire`. Each one checks, inside its
 *   transaction (postgresStore: in the same statement), that the agent's shard is still held
 *   by this member under the epoch it took it with (the lease row read `FOR SHARE`, so no
 *   takeover commits in between). One
 *   that is not gets a `FencedError` naming the agent in its own result slot (a `batch`
 *   fails only that op, unlike rule 10's whole-batch fence for a store with one owner), writes
 *   nothing, and the member reports the shard `lost`.
 * A store never acquired writes unfenced, as any store (tests, tools).
 *
 * A shared store is reached over a network: a write may commit and its acknowledgement be
 * lost with the connection, and the runtime then writes it again. So, once acquired, the
 * same `commitTurn` written again by the same member (same agent, seq, time, duration and
 * outcome) is answered with what it did the first time and changes nothing (rule 2 still
 * refuses any other commit of a consumed message).
 *
 * After `acquire`, the recovery reads (`turnsInFlight`, `agentsWithPending`) and the timer
 * reads (`dueTimers`, `nextDeadline`) answer for the shards this member owns; before it,
 * for all agents. Every other read answers for all agents.
 */
import type { StoreOwner } from './Store.js';

/** What a member learns about its shards and its agents, in order. */
export type ClusterEvent =
  /**
   * This member now owns these shards (a fresh epoch each). Turns in flight there belong to
   * a previous owner that died or was fenced: recover them (`inFlight`), then run the
   * agents with mail (`withPending`) and re-arm timers.
   */
  | { type: 'gained'; shards: number[] }
  /**
   * This member lost these shards (its lease expired before it was renewed, a renewal found
   * another owner, or a write was fenced): drop their agents without writing anything.
   */
  | { type: 'lost'; shards: number[]; reason: 'expired' | 'fenced' | 'taken' }
  /**
   * Mail arrived for agents this member owns, from any member (a hint: NOTIFY; lost hints
   * are made up for by polling `withPending` every `pollInterval`).
   */
  | { type: 'mail'; agentIds: string[] }
  /** Agents this member owns were destroyed by another member: drop them without writing. */
  | { type: 'destroyed'; agentIds: string[] }
  /** The reply to a remote ask of this member is stored (`takeReply`). A hint, as 'mail'. */
  | { type: 'reply'; agentId: string; seq: number };

/** The answer to a remote ask, stored with the turn's commit (`CommitTurn.reply`). */
export interface StoredReply {
  outcome: 'done' | 'interrupted' | 'failed' | 'crashed';
  /** The agent's state after the turn (what a local `ask` resolves with). */
  state?: unknown;
  outputs?: unknown[];
  /** The error text of a failed turn. */
  error?: string;
}

export interface ClusterMember {
  /** The member id (unique per acquire: `<epoch>` in base 36). */
  id: string;
  owner: StoreOwner;
  /** Shards it holds now. */
  shards: number;
  /** Its last heartbeat (ms since epoch, database clock). */
  seenAt: number;
}

export interface ClusterView {
  shards: number;
  /** Live members (heartbeat within the lease ttl), by id. */
  members: ClusterMember[];
  /** Shards with no live owner now. */
  unowned: number;
  /** Shard moves (an owner change) since the schema was created. */
  moves: number;
}

export interface StoreCluster {
  /** How many shards agents hash to. */
  readonly shards: number;
  /** The lease duration in ms. */
  readonly leaseTtl: number;
  /** The shard of an agent id (see the header). */
  shardOf(agentId: string): number;
  /** This member's id once `acquire` resolved; `null` before. */
  readonly memberId: string | null;
  /**
   * Whether this member owns the agent's shard now: acquired, not lost, and its lease not
   * past its expiry by this process's own clock (with a safety margin: a member stops
   * starting turns before the database would let another member take over).
   */
  owns(agentId: string): boolean;
  /** The shards this member owns now, ascending. */
  owned(): number[];
  /** Listens to this member's events; returns the unsubscribe function. */
  subscribe(listener: (event: ClusterEvent) => void): () => void;
  /**
   * Called before this member gives shards up when the cluster rebalances (a member
   * joined): the runtime finishes the running turns of those shards' agents and evicts them
   * (flushing), then the shards are released. Without a handler they are released at once.
   */
  onHandover(handler: (shards: number[]) => Promise<void>): void;
  /** Turns in flight in these shards (recovery after a takeover). */
  inFlight(shards: readonly number[]): Promise<{ agentId: string; seq: number }[]>;
  /** Agents of these shards with pending mail. */
  withPending(shards: readonly number[]): Promise<string[]>;
  /**
   * An agent's mailbox size and the seq of the last message ever accepted for it (0 when
   * none), read together (the runtime counts mail other processes wrote from them); `null`
   * when the agent does not exist.
   */
  mailState(agentId: string): Promise<{ mailbox: number; lastSeq: number } | null>;
  /**
   * Takes the reply of a remote ask, once (the row is deleted): `null` when the turn has
   * not finished yet.
   */
  takeReply(agentId: string, seq: number): Promise<StoredReply | null>;
  /**
   * Hands every shard this member owns over at once (a graceful stop, after the runtime
   * flushed its agents): the others take them on their next heartbeat, woken by a hint.
   */
  release(): Promise<void>;
  /** Members, shard owners and moves, for `runtime.stats()` and the inspector. */
  view(): Promise<ClusterView>;
}

/** FNV-1a (32 bits) of the id's UTF-16 code units, modulo `shards`. */
export function shardOf(agentId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < agentId.length; i++) {
    h ^= agentId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}
