/**
 * One agent in and out of memory: load (restore its actor from the stored snapshot, read
 * the head of its mailbox), flush (stop the actor: its state was committed by its last
 * turn), and quarantine (`failed`) when its stored record cannot be read or restored.
 */
import type { EvictReason } from '../../machines/agent.js';
import { MigrationError, StoreCorruptionError } from '../errors.js';
import { migrateSnapshot } from './migrate.js';
import { delayChanges } from './delays.js';
import { describeThrown } from '../validate.js';
import { asError } from './snapshots.js';
import { takeLeft, type Core, type Entry } from './types.js';

/** Messages read ahead into the inbox when an agent loads. */
const READ_AHEAD = 32;

export class Loads {
  constructor(private readonly core: Core) {}

  /** The lifecycle's `startLoad`. */
  load(entry: Entry): void {
    const { core } = this;
    const started = core.clock.now();
    core.counters.loads++;
    core.emitter.emit('agent.loading', () => ({ id: entry.id, at: started }));
    core.queue(entry, async () => {
      if (entry.destroyed) return;
      let snapshot: unknown;
      try {
        snapshot = await core.store.loadSnapshot(entry.id);
        // The next messages must be readable too; they wait in the inbox for their turns.
        const head = await core.store.pending(entry.id, READ_AHEAD);
        if (head.length > 0) entry.inbox ??= new Map();
        for (const m of head) entry.inbox!.set(m.seq, m);
        entry.nextSeq = head[0]?.seq ?? null;
      } catch (err) {
        if (!entry.destroyed) this.#failed(entry, err, err instanceof StoreCorruptionError);
        return;
      }
      if (entry.destroyed) return; // destroyed while reading: nothing to load any more
      let from = entry.def.version;
      try {
        if (snapshot != null && (typeof snapshot !== 'object' || !('value' in (snapshot as object)))) {
          throw new StoreCorruptionError(entry.id, 'its snapshot is not an XState snapshot');
        }
        // Brought to the current version first (written at the agent's next commit).
        if (snapshot != null) ({ snapshot, from } = migrateSnapshot(entry.id, entry.def, snapshot));
        entry.actor = core.actors.create(entry, snapshot);
        entry.lastPersisted = snapshot ?? undefined;
      } catch (err) {
        if (entry.actor) core.inspection.stop(entry.actor);
        entry.actor = null;
        const error =
          err instanceof StoreCorruptionError || err instanceof MigrationError
            ? err
            : from !== entry.def.version
              ? new MigrationError(entry.id, from, entry.def.version, `the migrated snapshot does not restore: ${describeThrown(err)}`, { cause: err })
              : this.#unrestorable(entry, snapshot, err);
        this.#failed(entry, error, true);
        return;
      }
      entry.loadFailures = 0;
      if (snapshot == null && entry.actor) {
        // A fresh machine whose first state has delays: they are durable from the start.
        const changes = delayChanges(entry.id, entry.actor, new Map(), core.clock.now());
        for (const timer of changes?.schedule ?? []) {
          core.buffer.write({ op: 'schedule', timer }).then(
            () => core.armTimer(timer.at),
            (error: unknown) => core.emitter.emit('error', () => ({ id: entry.id, at: core.clock.now(), error: asError(error), where: 'timer' })),
          );
        }
      }
      core.buffer.write({ op: 'note', agentId: entry.id, entry: { kind: 'note', note: 'loaded', at: core.clock.now() } }).catch(() => {});
      entry.lifecycle.send({ type: 'load.done' });
      core.emitter.emit('agent.loaded', () => ({ id: entry.id, at: core.clock.now(), durationMs: core.clock.now() - started }));
    });
  }

  /** The error of a stored snapshot that the current logic cannot restore. */
  #unrestorable(entry: Entry, snapshot: unknown, err: unknown): StoreCorruptionError {
    const value = (snapshot as { value?: unknown } | null)?.value;
    let stored = '';
    try {
      stored = value === undefined ? '' : ` (stored in state ${JSON.stringify(value)})`;
    } catch {
      stored = '';
    }
    return new StoreCorruptionError(
      entry.id,
      `its stored snapshot${stored} does not restore with the current definition of type "${entry.def.type}": ${describeThrown(err)}. ` +
        'Deploy a definition that still has that state (or migrate it), or destroy the agent',
      { cause: err },
    );
  }

  #failed(entry: Entry, err: unknown, corrupt: boolean): void {
    const { core } = this;
    const error = asError(err);
    entry.inbox = null;
    entry.nextSeq = null;
    if (!corrupt) entry.problem = { error, where: 'load' }; // reported by the lifecycle's reportError
    entry.lifecycle.send({ type: 'load.failed', corrupt });
    if (corrupt) {
      this.quarantine(entry, error);
      return;
    }
    // Back off, doubling up to a minute, then try again (a store outage must not become a hot loop).
    const delay = Math.min(100 * 2 ** entry.loadFailures, 60_000);
    entry.loadFailures++;
    core.clock.setTimeout(() => {
      if (!entry.destroyed) entry.lifecycle.send({ type: 'retry' });
    }, delay);
  }

  /** The agent is quarantined (`failed`): its asks are answered with the error at once. */
  quarantine(entry: Entry, error: Error): void {
    entry.failure = error;
    this.core.emitter.emit('agent.failed', () => ({ id: entry.id, at: this.core.clock.now(), error }));
    this.core.waiters.rejectAll(entry.id, error);
  }

  /**
   * The lifecycle's `startFlush`. State was committed at the end of every turn, so a flush
   * writes only its `evicted` note, then stops the actor. When the note cannot be written
   * (the store fails), the flush fails: the agent stays resident (`flush.failed`) and the
   * error is reported; it may be evicted again later.
   */
  flush(entry: Entry, reason: EvictReason): void {
    const { core } = this;
    core.queue(entry, async () => {
      if (!entry.destroyed) {
        try {
          await core.buffer.write({ op: 'note', agentId: entry.id, entry: { kind: 'note', note: 'evicted', reason, at: core.clock.now() } });
        } catch (err) {
          if (!entry.destroyed) {
            const error = asError(err);
            entry.problem = { error, where: 'flush' };
            entry.lifecycle.send({ type: 'flush.failed' });
            for (const r of takeLeft(entry)) r(error);
            return;
          }
        }
      }
      if (entry.actor) core.inspection.stop(entry.actor);
      entry.actor = null;
      entry.lastPersisted = undefined;
      entry.nextSeq = null;
      core.counters.evictions++;
      entry.lifecycle.send({ type: 'flush.done' });
      core.emitter.emit('agent.evicted', () => ({ id: entry.id, at: core.clock.now(), reason }));
      for (const r of takeLeft(entry)) r();
    });
  }
}
