/**
 * Mailbox counts on a shared store (postgresStore, several processes): an agent's lifecycle
 * counts the messages waiting for it, and other processes write to its mailbox too, so the
 * count cannot come from this process's accepts alone. Every seq is counted once, by
 * whoever learns of it first:
 * - a local accept of message `seq` counts every seq up to it not counted yet (the ones
 *   before it, written by others, are in the mailbox too: seqs are given in commit order);
 * - a sync (a hint, the poll, the first use of an entry, or the agent having run all the mail
 *   it counted) reads the mailbox size and the last seq together, in the agent's chain (after
 *   the store work queued before it, so a turn in progress has consumed its message), and
 *   counts the seqs past the highest counted; the first sync takes the store's size.
 * Without a shared store the Host counts each accept itself; this file is not used.
 */
import type { StoreCluster } from '../store/Cluster.js';
import type { AgentRecord } from '../store/Store.js';
import type { Entry } from './types.js';

/** What of the Host this needs. */
export interface MailHost {
  readonly entries: Map<string, Entry>;
  queue(entry: Entry, op: () => Promise<void>): void;
  ensureEntry(record: AgentRecord, mailbox?: number): Entry;
}

export class SharedMail {
  constructor(
    private readonly cluster: StoreCluster,
    private readonly host: MailHost,
    /** Drops the entry if it turns out to have nothing to do (Host.#maybeDrop). */
    private readonly dropIfIdle: (entry: Entry) => void,
  ) {}

  /** The entry of an agent found with mail: counted from the store in its chain. */
  withMail(record: AgentRecord): Entry {
    const entry = this.host.ensureEntry(record, 0);
    this.sync(entry);
    return entry;
  }

  /** Message `seq` is in the agent's mailbox: count it and the ones before it not counted yet. */
  count(entry: Entry, seq: number): void {
    if (entry.seen === null) {
      this.sync(entry); // the store says how many, the first time
      return;
    }
    for (let n = entry.seen; n < seq; n++) entry.lifecycle.send({ type: 'message.accepted' });
    if (seq > entry.seen) entry.seen = seq;
  }

  /**
   * Brings the count up to the store's, after the agent's queued store work. Calls while one
   * is queued (or asked to run again) fold into it.
   */
  sync(entry: Entry): void {
    if (entry.sync === 'queued' || entry.sync === 'again') return;
    if (entry.sync === 'running') {
      entry.sync = 'again';
      return;
    }
    entry.sync = 'queued';
    this.host.queue(entry, async () => {
      try {
        do {
          entry.sync = 'running';
          if (entry.destroyed) return;
          const state = (await this.cluster.mailState(entry.id)) ?? { mailbox: 0, lastSeq: 0 };
          if (entry.destroyed || this.host.entries.get(entry.id) !== entry) return;
          if (entry.seen === null) {
            // The first sync: the store's count stands (what was counted before is in it).
            for (let n = entry.lifecycle.getSnapshot().context.mailbox; n < state.mailbox; n++) entry.lifecycle.send({ type: 'message.accepted' });
            entry.seen = state.lastSeq;
          } else {
            this.count(entry, state.lastSeq);
          }
        } while ((entry.sync as Entry['sync']) === 'again');
      } finally {
        entry.sync = null;
        this.dropIfIdle(entry); // nothing was there after all: the entry can go
      }
    });
  }
}
