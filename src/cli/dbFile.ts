/**
 * What lies at a `--db` path, told from the file itself with `fs` only (never opened with
 * SQLite, which could create side files or checkpoint another application's WAL): the
 * demo replaces a residency database only, and the readers (ls, show, stats, inspect)
 * open one only.
 *
 * A residency database carries `PRAGMA application_id` = APPLICATION_ID ("rsdy") at
 * offset 68 of its 100-byte SQLite header. A runtime that has the file open (or died
 * before a checkpoint) may still hold the newest header in its `-wal` file, so when the
 * file's own header does not say residency and a `-wal` file lies next to it, the newest
 * committed copy of page 1 in the WAL decides.
 */
import fs from 'node:fs';
import { APPLICATION_ID, readWal } from '../store/sqliteSchema.js';
import { CliError, UsageError } from './format.js';

export type DatabaseFile =
  | { kind: 'missing' }
  | { kind: 'directory' }
  /** Not a regular file: a device, a FIFO, a socket. */
  | { kind: 'special' }
  | { kind: 'residency' }
  /** Exists and is not a residency database; `why` says what it is. */
  | { kind: 'other'; why: string };

const SQLITE_MAGIC = 'SQLite format 3\u0000';
const HEADER_BYTES = 100;

/** Says what is at `path` (following a symbolic link), reading at most its header and its `-wal` file. */
export function examineDatabaseFile(path: string): DatabaseFile {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    throw new CliError(`Cannot read --db "${path}": ${(cause as Error).message}`);
  }
  if (stat.isDirectory()) return { kind: 'directory' };
  if (!stat.isFile()) return { kind: 'special' };
  if (stat.size === 0) return { kind: 'other', why: 'an empty file, 0 bytes' };
  let header: Buffer = Buffer.alloc(HEADER_BYTES);
  try {
    const fd = fs.openSync(path, 'r');
    try {
      header = header.subarray(0, fs.readSync(fd, header, 0, HEADER_BYTES, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (cause) {
    throw new CliError(`Cannot read --db "${path}": ${(cause as Error).message}`);
  }
  if (header.length < HEADER_BYTES || header.toString('latin1', 0, 16) !== SQLITE_MAGIC) {
    return { kind: 'other', why: 'a file that is not an SQLite database' };
  }
  if (header.readUInt32BE(68) !== APPLICATION_ID && fs.existsSync(`${path}-wal`)) {
    header = readWal(`${path}-wal`)?.pageOne ?? header;
  }
  const applicationId = header.readUInt32BE(68);
  if (applicationId === APPLICATION_ID) return { kind: 'residency' };
  if (applicationId !== 0) {
    return { kind: 'other', why: `another application's SQLite database, application id 0x${applicationId.toString(16)}` };
  }
  return { kind: 'other', why: "an SQLite database without residency's application id" };
}

/** A directory or a device at `--db`: a usage error in one line. */
export function notAFile(path: string, file: DatabaseFile): UsageError | null {
  if (file.kind === 'directory') return new UsageError(`--db "${path}" is a directory: pass the path of a database file`, { usage: false });
  if (file.kind === 'special') return new UsageError(`--db "${path}" is not a regular file: pass the path of a database file`, { usage: false });
  return null;
}
