/**
 * readWal (sqliteSchema.ts): the header a database will have once SQLite recovers its
 * WAL, read with fs only, as SQLite's recovery reads it: committed transactions only,
 * frames with the WAL's current salts and a valid running checksum only.
 *
 * The WAL files are made by a real SQLite connection left open (so nothing checkpoints
 * them) and copied, with their database, to a folder of their own.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { readWal } from '../../src/store/sqliteSchema.js';
import { sqliteStoreOnThisThread as sqliteStore } from './sqliteFiles.js';

const tempDirs: string[] = [];
const connections: Database.Database[] = [];

afterAll(() => {
  for (const db of connections) db.close();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'residency-wal-'));
  tempDirs.push(dir);
  return dir;
}

const PAGE_SIZE = 4096;
const FRAME = 24 + PAGE_SIZE;

/** A WAL database written by `work` on a connection that stays open; returns a copy of the database and its WAL. */
function walCopy(work: (db: Database.Database) => void): string {
  const file = path.join(tempDir(), 'live.db');
  const db = new Database(file);
  connections.push(db);
  db.pragma(`page_size = ${PAGE_SIZE}`);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  work(db);
  const copy = path.join(tempDir(), 'copy.db');
  fs.copyFileSync(file, copy);
  fs.copyFileSync(`${file}-wal`, `${copy}-wal`);
  return copy;
}

const userVersion = (pageOne: Buffer | null | undefined) => pageOne?.readInt32BE(60);

describe('readWal', () => {
  it('returns the newest committed page 1 and the number of commits', () => {
    const copy = walCopy((db) => {
      db.exec('CREATE TABLE t (x)');
      db.pragma('user_version = 4');
      db.exec('INSERT INTO t VALUES (1)');
    });
    const wal = readWal(`${copy}-wal`);
    expect(wal?.commits).toBe(3);
    expect(userVersion(wal?.pageOne)).toBe(4);
  });

  it('ignores a transaction whose commit frame never reached the file (a writer that died mid-commit)', () => {
    const copy = walCopy((db) => {
      db.exec('CREATE TABLE t (x)');
      // One transaction writing page 1 (the header) and then page 2, its commit frame.
      db.transaction(() => {
        db.pragma('user_version = 9');
        db.exec('INSERT INTO t VALUES (1)');
      })();
    });
    const walFile = `${copy}-wal`;
    expect(userVersion(readWal(walFile)?.pageOne)).toBe(9);
    fs.truncateSync(walFile, fs.statSync(walFile).size - FRAME);
    const wal = readWal(walFile);
    expect(wal?.commits).toBe(1);
    expect(userVersion(wal?.pageOne)).toBe(0);
  });

  it('stops at the first frame whose checksum does not hold', () => {
    const copy = walCopy((db) => {
      db.exec('CREATE TABLE t (x)');
      db.pragma('user_version = 2');
    });
    const walFile = `${copy}-wal`;
    const bytes = fs.readFileSync(walFile);
    // A flipped byte in the page of the last frame (the second transaction's page 1).
    bytes[bytes.length - 10]! ^= 0xff;
    fs.writeFileSync(walFile, bytes);
    const wal = readWal(walFile);
    expect(wal?.commits).toBe(1);
    expect(userVersion(wal?.pageOne)).toBe(0);
  });

  it('ignores the frames of an earlier generation left behind a restarted WAL (other salts)', () => {
    const copy = walCopy((db) => {
      db.exec('CREATE TABLE t (x)');
      for (let i = 0; i < 20; i++) db.exec(`INSERT INTO t VALUES (${i})`);
      db.pragma('user_version = 3');
      db.pragma('wal_checkpoint(RESTART)');
      // The WAL starts over from its beginning, with new salts; the old frames stay behind.
      db.exec('INSERT INTO t VALUES (99)');
    });
    const wal = readWal(`${copy}-wal`);
    expect(fs.statSync(`${copy}-wal`).size).toBeGreaterThan(5 * FRAME);
    expect(wal?.commits).toBe(1);
    // The one new transaction did not write page 1: the header is the file's own.
    expect(wal?.pageOne).toBeNull();
  });

  it('is null without a WAL file, or with one SQLite would ignore', () => {
    const dir = tempDir();
    expect(readWal(path.join(dir, 'none.db-wal'))).toBeNull();
    fs.writeFileSync(path.join(dir, 'empty.db-wal'), '');
    expect(readWal(path.join(dir, 'empty.db-wal'))).toBeNull();
    fs.writeFileSync(path.join(dir, 'junk.db-wal'), Buffer.alloc(4096, 7));
    expect(readWal(path.join(dir, 'junk.db-wal'))).toBeNull();
  });
});

describe('sqliteStore and a WAL next to an empty file', () => {
  it('refuses an empty database file with a committed WAL next to it (SQLite would delete that WAL), leaving both', () => {
    const copy = walCopy((db) => db.exec('CREATE TABLE notes (text TEXT)'));
    fs.truncateSync(copy, 0);
    const dir = path.dirname(copy);
    const before = Object.fromEntries(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(path.join(dir, name))]));
    let error: unknown;
    try {
      sqliteStore(copy);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(`"${copy}"`);
    expect((error as Error).message).toMatch(/it is empty, yet a write-ahead log .* with committed data lies next to it/);
    expect(Object.fromEntries(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(path.join(dir, name))]))).toEqual(before);
  });
});
