/**
 * Small output helpers for the CLI: aligned tables, percentiles, numbers, and the
 * escaping of stored text before it reaches a terminal.
 */

/** Where the CLI writes: swapped in tests so `main()` can run in-process. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** True when stdout is a terminal (a live progress line is rewritten with `\r`). */
  isTTY: boolean;
  /** Resolves when the user asks a long-running command (`inspect`) to stop; default: the first SIGINT. */
  interrupted?: () => Promise<void>;
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  isTTY: process.stdout.isTTY === true,
};

/**
 * Thrown for bad arguments: the CLI prints it and exits 2; with the usage, unless
 * `usage: false` (a one-line message, when the usage would not help, as for a path).
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly usage: boolean;
  constructor(message: string, options: { usage?: boolean } = {}) {
    super(message);
    this.usage = options.usage ?? true;
  }
}

/** A failure to report in one line (exit 1), not a usage error. */
export class CliError extends Error {
  override readonly name = 'CliError';
}

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Stored text made safe to print: every control character (C0, DEL, C1) is shown as an
 * escape (`\x1b`, `\n`…), so a stored string can neither move the cursor, set the window
 * title, clear the screen nor start a line of its own.
 *
 * @example
 * printable('boom \x1b]0;owned\x07'); // => 'boom \\x1b]0;owned\\x07'
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => NAMED[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * JSON for a terminal: JSON.stringify escapes C0 characters already; DEL and C1 ones
 * are escaped too (`\u009b`). The same JSON value, parsed back.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** An agent a reader could not read: its id, and what is damaged (StoreCorruptionError's `what`). */
export interface Damaged {
  id: string;
  error: string;
}

/** How many damaged agents a line names, with what is damaged; the rest are counted. */
const DAMAGED_SHOWN = 10;

/**
 * The damaged agents, escaped: `b (its snapshot is not valid JSON …), d (…)`, the first
 * ten, then how many more.
 */
export function damagedList(damaged: readonly Damaged[]): string {
  const shown = damaged.slice(0, DAMAGED_SHOWN).map((d) => `${printable(d.id)} (${printable(d.error)})`);
  const more = damaged.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? `, and ${count(more)} more (--json lists them all)` : ''}`;
}

/**
 * The line a reader prints after what it could read.
 *
 * @example
 * damagedLine([{ id: 'b', error: 'its snapshot is not valid JSON (…)' }]);
 * // => '1 agent could not be read: b (its snapshot is not valid JSON (…))'
 */
export function damagedLine(damaged: readonly Damaged[]): string {
  return `${count(damaged.length)} agent${damaged.length === 1 ? '' : 's'} could not be read: ${damagedList(damaged)}`;
}

/** Rows as aligned columns under a header; numbers are right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `key  value` lines with the keys aligned. */
export function fields(pairs: readonly (readonly [string, string | number])[]): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** The p-th percentile (0 < p ≤ 1) of the values, nearest rank; `null` when there are none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export function ms(value: number | null): string {
  if (value === null) return '-';
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

export function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** A stored time as `YYYY-MM-DD hh:mm:ss.mmm` (UTC); `-` when absent, the raw value (escaped) when not a time. */
export function time(at: unknown): string {
  if (at === null || at === undefined) return '-';
  const date = typeof at === 'number' ? new Date(at) : null;
  if (date === null || Number.isNaN(date.getTime())) return printable(String(at));
  return date.toISOString().replace('T', ' ').replace('Z', '');
}
