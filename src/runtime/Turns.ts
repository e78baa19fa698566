/**
 * One agent's turns: take the head of the mailbox, record that the turn began, run the
 * logic until the turn is over, commit the outcome with the new snapshot and the turn's
 * effects, answer the caller — in that order, each write through the write buffer (group
 * commit), each answer after its write is durable (output gate).
 *
 * Every turn ends with an outcome (`turn.done`), whatever is thrown and wherever; when not
 * even the outcome can be written, the agent is quarantined (`turn.lost` → `failed`). Either
 * way the permit is released and the caller answered.
 *
 * Fairness and the fast path: an agent with more mail keeps its running permit for the
 * next turn (no round trip through the supervisor) while nobody else waits for a permit,
 * and for at most STREAK turns in a row when someone does (Akka's dispatcher
 * `throughput`).
 */
import { FencedError, TurnFailedError, UnknownAgentTypeError } from '../errors.js';
import { isTurnLogic } from '../fromTurn.js';
import type { Retention } from '../defineAgent.js';
import type { StoredMessage, TurnOutcome } from '../store/Store.js';
import { describeThrown } from '../validate.js';
import { withVersion } from './migrate.js';
import { delayChanges, scheduledDelays } from './delays.js';
import * as slice from './slice.js';
import { asError, notPersistable, resultState, stateValueOf, storedSnapshot, turnOver } from './snapshots.js';
import type { Core, Entry, Turn } from './types.js';
import type { Actor, AnyStateMachine, Subscription } from 'xstate';

/** Turns an agent runs in a row under one permit while others wait for one. */
export const STREAK = 8;

export class Turns {
  constructor(
    private readonly core: Core,
    /** Quarantines the agent (`failed`): its asks are answered with the error. */
    private readonly quarantined: (entry: Entry, error: Error) => void,
  ) {}

  /** The lifecycle's `startTurn`: runs one turn on the head of the mailbox. */
  run(entry: Entry): void {
    this.core.queue(entry, () => this.#run(entry));
  }

  async #run(entry: Entry): Promise<void> {
    const { core } = this;
    if (entry.destroyed) return;
    let head: StoredMessage | undefined;
    try {
      if (!entry.actor) throw new Error(`agent "${entry.id}" was given a turn while not loaded`);
      head = await this.#head(entry);
      if (!head && core.cluster && !entry.destroyed) {
        // On a shared store the count comes from the store (Host.syncMail) and may have been
        // ahead of it (read before another turn consumed): nothing to run, the count goes down.
        core.emitter.emit('error', () => ({ id: entry.id, at: core.clock.now(), error: new Error(`agent "${entry.id}" had no message left for its turn (a mailbox count ahead of the store): nothing ran`), where: 'cluster' }));
        this.#done(entry, 'done');
        return;
      }
      if (!head) throw new Error(`agent "${entry.id}" was given a turn with an empty mailbox in the store`);
      if (head.seq === entry.lostSeq) return await this.#crashedBefore(entry, head);
    } catch (err) {
      if (!entry.destroyed) this.#lost(entry, null, err);
      return;
    }
    const actor = entry.actor;
    let before: unknown;
    let unpersistable: Turn['error'] = null;
    try {
      before = entry.lastPersisted ?? actor.getPersistedSnapshot();
    } catch (err) {
      unpersistable = { thrown: notPersistable(entry.id, err) }; // e.g. an inline child actor
    }
    const turn: Turn = {
      seq: head.seq,
      messageId: head.messageId,
      message: head.message,
      startedAt: core.clock.now(),
      outbox: [],
      spawned: [],
      outputs: [],
      timers: null,
      abort: null,
      phase: 'running',
      interrupted: false,
      error: unpersistable,
      before,
      wake: null,
      // Answered through the store only when another process asked (this one answers its own).
      replyTo: head.replyTo !== undefined && head.replyTo !== core.cluster?.memberId ? head.replyTo : undefined,
    };
    entry.turn = turn;
    if (entry.begun === turn.seq) {
      entry.begun = null; // begun by the previous turn's commit
    } else {
      try {
        await core.buffer.write({ op: 'beginTurn', agentId: entry.id, seq: turn.seq, at: turn.startedAt });
      } catch (err) {
        entry.turn = null;
        if (!entry.destroyed) this.#lost(entry, turn, err, false);
        return;
      }
    }
    core.emitter.emit('turn.started', () => ({ id: entry.id, at: turn.startedAt, seq: turn.seq }));
    if (slice.spent()) await slice.room(); // the host application's share of the event loop first
    if (unpersistable === null && !turn.interrupted) {
      if (isTurnLogic(entry.def.logic)) await core.actors.runTurnFunction(entry, turn);
      else {
        const delaysBefore = scheduledDelays(actor);
        await this.#execute(entry, actor, turn);
        // The machine's own delays that the turn started or cancelled: durable with its commit.
        const changes = entry.destroyed ? null : delayChanges(entry.id, actor, delaysBefore, core.clock.now());
        if (changes) {
          turn.timers ??= { schedule: [], cancel: [] };
          turn.timers.schedule.push(...changes.schedule);
          turn.timers.cancel.push(...changes.cancel);
        }
      }
    }
    if (entry.destroyed) return; // gone: nothing is written for it any more
    turn.phase = 'committing'; // from here an interrupt changes nothing
    if (turn.interrupted) await this.#commitInterrupted(entry, turn);
    else await this.#commit(entry, turn);
  }

  /** The next message: from the inbox when it holds it, else from the store. */
  async #head(entry: Entry): Promise<StoredMessage | undefined> {
    if (entry.nextSeq !== null) {
      const cached = entry.inbox?.get(entry.nextSeq);
      if (cached) return cached;
    }
    const ahead = await this.core.store.pending(entry.id, 32);
    if (ahead.length > 0) entry.inbox ??= new Map();
    for (const m of ahead) entry.inbox!.set(m.seq, m);
    return ahead[0];
  }

  /** The message was handled (any outcome): the next turn takes the one after it. */
  #consumed(entry: Entry, seq: number): void {
    entry.inbox?.delete(seq);
    if (entry.inbox?.size === 0) entry.inbox = null;
    entry.nextSeq = seq + 1;
  }

  /**
   * Its turn ran before but could not be recorded: it may have had effects, so it is
   * recorded `crashed` now (as recovery would), never silently run again.
   */
  async #crashedBefore(entry: Entry, head: StoredMessage): Promise<void> {
    const at = this.core.clock.now();
    const reply = head.replyTo !== undefined && head.replyTo !== this.core.cluster?.memberId ? { reply: { outcome: 'crashed' as const } } : {};
    await this.core.buffer.write({ op: 'commitTurn', commit: { retain: this.#retain(entry), agentId: entry.id, seq: head.seq, outcome: 'crashed', at, durationMs: 0, ...reply } });
    entry.lostSeq = null;
    this.#consumed(entry, head.seq);
    this.core.emitter.emit('turn.finished', () => ({ id: entry.id, at, seq: head.seq, outcome: 'crashed', durationMs: 0 }));
    this.#done(entry, 'failed');
  }

  /** Sends the message to the logic and waits until the turn is over (see `turnOver`). */
  #execute(entry: Entry, actor: Actor<AnyStateMachine>, turn: Turn): Promise<void> | void {
    // A machine that reached its final state takes no more events: the turn changes nothing.
    if (actor.getSnapshot().status !== 'active') return;
    try {
      actor.send(turn.message as never);
    } catch (err) {
      turn.error ??= { thrown: err };
    }
    if (turnOver(actor)) return; // a machine without promise children: over at once
    return new Promise<void>((resolve) => {
      let sub: Subscription | null = null;
      const check = () => {
        if (!sub) return;
        if (turnOver(actor) || turn.interrupted || entry.destroyed) {
          sub.unsubscribe();
          sub = null;
          turn.wake = null;
          resolve();
        }
      };
      sub = actor.subscribe({ next: check, error: check, complete: check });
      turn.wake = check;
      check();
    });
  }

  async #commit(entry: Entry, turn: Turn): Promise<void> {
    const { core } = this;
    const actor = entry.actor!;
    const snap = actor.getSnapshot() as { status: string; error?: unknown };
    let failure: Turn['error'] = turn.error ?? (snap.status === 'error' ? { thrown: snap.error } : null);
    const at = core.clock.now();
    const durationMs = at - turn.startedAt;
    let snapshot: unknown;
    let outbox: { request: Turn['outbox'][number]; seq: number; duplicate: boolean }[] = [];
    if (failure === null) {
      try {
        snapshot = storedSnapshot(entry.id, actor);
        // A statechart's state after the turn goes in the rollout too (the inspector's timeline);
        // not for fromTurn logic, nor a machine without states (its value is always `{}`).
        const value = isTurnLogic(entry.def.logic) ? undefined : stateValueOf(snapshot);
        await this.#checkTargets(turn);
        // When the agent will go on with its next message (already in its inbox), that
        // turn's begin rides in this commit: one write per turn.
        const next = this.#keeps(entry) && entry.inbox?.has(turn.seq + 1) === true ? { seq: turn.seq + 1, at } : undefined;
        const r = await core.buffer.write<{ outbox: { seq: number; duplicate: boolean }[] }>({
          op: 'commitTurn',
          commit: {
            retain: this.#retain(entry), agentId: entry.id, seq: turn.seq, outcome: 'done', snapshot: withVersion(entry.def, snapshot), value, outputs: turn.outputs,
            outbox: turn.outbox, spawned: turn.spawned, at, durationMs, ...(next ? { next } : {}), ...(turn.timers ? { timers: turn.timers } : {}),
            ...(turn.replyTo ? { reply: { outcome: 'done', state: resultState(entry.def, snapshot), outputs: turn.outputs } } : {}),
          },
        });
        if (next) entry.begun = next.seq;
        for (const t of turn.timers?.schedule ?? []) core.armTimer(t.at);
        entry.lastPersisted = snapshot;
        outbox = turn.outbox.map((request, i) => ({ request, seq: r.outbox[i]!.seq, duplicate: r.outbox[i]!.duplicate }));
      } catch (err) {
        if (err instanceof FencedError) return this.#lost(entry, turn, err);
        failure = { thrown: err };
      }
    }
    if (failure !== null) {
      // A failed turn leaves the state as it was: roll the logic back.
      this.#rollback(entry, turn);
      try {
        await core.buffer.write({
          op: 'commitTurn',
          commit: {
            retain: this.#retain(entry), agentId: entry.id, seq: turn.seq, outcome: 'failed', error: describeThrown(failure.thrown), at, durationMs,
            ...(turn.replyTo ? { reply: { outcome: 'failed', error: describeThrown(failure.thrown) } } : {}),
          },
        });
      } catch (err) {
        return this.#lost(entry, turn, err, true, failure.thrown);
      }
      this.#consumed(entry, turn.seq);
      this.#finish(entry, turn, 'failed', durationMs, failure.thrown);
      this.#done(entry, 'failed');
      return;
    }
    this.#consumed(entry, turn.seq);
    this.#finish(entry, turn, 'done', durationMs, undefined, snapshot);
    for (const rec of turn.spawned) {
      core.emitter.emit('agent.spawned', () => ({ id: rec.id, at, type: rec.type, parent: rec.parent, pinned: rec.pinned }));
    }
    if (outbox.length > 0) core.delivered(outbox);
    this.#done(entry, 'done');
  }

  /** Records an interrupted turn: its state rolls back, its message is consumed. */
  async #commitInterrupted(entry: Entry, turn: Turn): Promise<void> {
    this.#rollback(entry, turn);
    const at = this.core.clock.now();
    try {
      const reply = turn.replyTo ? { reply: { outcome: 'interrupted' as const, state: resultState(entry.def, entry.lastPersisted ?? turn.before), outputs: [] } } : {};
      await this.core.buffer.write({ op: 'commitTurn', commit: { retain: this.#retain(entry), agentId: entry.id, seq: turn.seq, outcome: 'interrupted', at, durationMs: at - turn.startedAt, ...reply } });
    } catch (err) {
      return this.#lost(entry, turn, err);
    }
    this.#consumed(entry, turn.seq);
    this.#finish(entry, turn, 'interrupted', at - turn.startedAt, undefined, entry.lastPersisted ?? turn.before);
    this.#done(entry, 'interrupted');
  }

  /** The turn is over: the lifecycle moves on, keeping the permit for the next turn when it may. */
  #done(entry: Entry, outcome: 'done' | 'failed' | 'interrupted'): void {
    const begun = entry.begun !== null;
    const keep = this.#keeps(entry) || begun;
    entry.streak = keep ? entry.streak + 1 : 0;
    entry.lifecycle.send({ type: 'turn.done', outcome, ...(keep ? { continue: true } : {}), ...(begun ? { begun: true } : {}) });
    // A shared store: the counted mail is all run; what other processes wrote meanwhile (no
    // hint comes while a mailbox is not empty) is read now.
    if (this.core.cluster && entry.lifecycle.getSnapshot().context.mailbox === 0) this.core.syncMail(entry);
  }

  /** The agent's history retention: its definition's, else the runtime's. */
  #retain(entry: Entry): Retention {
    return entry.def.history ?? this.core.history;
  }

  /** The agent keeps its permit for its next message: it has one, and its streak allows it. */
  #keeps(entry: Entry): boolean {
    const { mailbox, pendingClose } = entry.lifecycle.getSnapshot().context;
    return mailbox > 1 && pendingClose === null && (entry.streak < STREAK || !this.core.permitWanted());
  }

  /**
   * Refuses, before the commit, messages of a turn to agents whose type this runtime does
   * not define (a type removed in a new version): the turn fails instead.
   */
  async #checkTargets(turn: Turn): Promise<void> {
    if (turn.outbox.length === 0) return;
    const { entries, definitions, store } = this.core;
    const spawned = new Set(turn.spawned.map((r) => r.id));
    const ids = [...new Set(turn.outbox.map((m) => m.agentId))].filter((id) => !spawned.has(id) && !entries.has(id));
    if (ids.length === 0) return;
    for (const rec of await store.getAgents(ids)) {
      if (!definitions.has(rec.type)) throw new UnknownAgentTypeError(rec.type, [...definitions.keys()], rec.id);
    }
  }

  /**
   * The turn could not be recorded (the store kept failing, or this runtime was fenced):
   * its caller gets the error, the permit is released, and the agent is quarantined
   * (`failed`): its message stays durable and is recorded `crashed` before anything else
   * of the agent runs (a reload, or the next start), as after a crash.
   */
  #lost(entry: Entry, turn: Turn | null, err: unknown, began = true, thrown?: unknown): void {
    if (turn) {
      if (began) entry.lostSeq = turn.seq;
      this.#rollback(entry, turn);
      entry.turn = null;
      // Fenced on a shared store: the shard moved, the message is durable and the process that
      // owns it now answers the ask (through the store). Otherwise the caller hears of it now.
      const moved = err instanceof FencedError && this.core.cluster !== undefined;
      const w = moved ? undefined : this.core.waiters.take(entry.id, turn.messageId);
      w?.reject(err instanceof FencedError ? err : new TurnFailedError(entry.id, turn.seq, thrown ?? err, { recorded: false }));
    }
    if (entry.actor) this.core.inspection.stop(entry.actor);
    entry.actor = null;
    entry.inbox = null;
    entry.nextSeq = null;
    entry.lifecycle.send({ type: 'turn.lost' });
    if (!(err instanceof FencedError)) this.quarantined(entry, asError(err));
  }

  #rollback(entry: Entry, turn: Turn): void {
    if (turn.before === undefined || !entry.actor) return; // the turn did not run
    this.core.inspection.stop(entry.actor);
    entry.actor = null;
    try {
      entry.actor = this.core.actors.create(entry, turn.before);
    } catch {
      // It restored at load; if it no longer does, the agent reloads from the store later.
    }
  }

  /** Records the end of a turn for observers and ask() callers. */
  #finish(entry: Entry, turn: Turn, outcome: TurnOutcome, durationMs: number, failure: unknown, snapshot?: unknown): void {
    const { core } = this;
    entry.turn = null;
    entry.lastActiveAt = core.clock.now();
    const error = failure === undefined ? undefined : describeThrown(failure);
    core.emitter.emit('turn.finished', () => ({ id: entry.id, at: core.clock.now(), seq: turn.seq, outcome, durationMs, ...(error ? { error } : {}) }));
    const w = core.waiters.take(entry.id, turn.messageId);
    if (!w) return;
    if (outcome === 'failed') w.reject(new TurnFailedError(entry.id, turn.seq, failure));
    // An interrupted turn's outputs were never recorded: it answers with none.
    else w.resolve({ outcome: outcome === 'interrupted' ? 'interrupted' : 'done', state: resultState(entry.def, snapshot), outputs: outcome === 'interrupted' ? [] : turn.outputs });
  }

  /** The lifecycle's `abortTurn`: stops a turn whose logic still runs; otherwise nothing. */
  abort(entry: Entry): void {
    const turn = entry.turn;
    if (!turn || turn.phase !== 'running' || turn.interrupted) return;
    turn.interrupted = true;
    turn.abort?.abort(new Error('interrupted'));
    turn.wake?.();
  }
}
