/**
 * `npm run bench`: runs every benchmark and writes docs/benchmarks.md with the command,
 * the machine and the results. Ratios are measured side by side in one run; absolute
 * times on a shared machine are only indicative.
 *
 * Flags (after `npm run bench --`):
 * - `--only a,b`: runs those sections only (keys below) and replaces only them in the file;
 *   each says on its own when, where and at which commit it ran.
 * - `--label "text"`: writes the sections under a heading of their own,
 *   "## <title> — <text> (commit <sha>)"; such labelled sections are kept by later runs
 *   (full or not) unless a run writes the same heading again. Any section whose heading
 *   ends in "(commit <sha>)" is kept so, hand-written ones too (a summary of a change);
 *   kept sections that lead the file and have no section of the same title in the run
 *   stay at its top.
 * - `--no-write`: prints the sections, leaves the file alone.
 * - `--list`: prints the section keys.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchChurn } from './churn.js';
import { benchDelivery } from './delivery.js';
import { benchDurable } from './durable.js';
import { benchDurableTurns } from './durableTurns.js';
import { benchEventLoop } from './eventLoop.js';
import { benchEviction } from './eviction.js';
import { benchInspector } from './inspector.js';
import { machine } from './harness.js';
import { benchMemory } from './memory.js';
import { benchPostgres } from './postgres.js';
import { benchRuntimeEviction } from './runtimeEviction.js';
import { benchTimers } from './timers.js';
import { benchWriterThread } from './writerThread.js';

const sections: [key: string, name: string, run: () => string | Promise<string>][] = [
  ['eviction', 'eviction scaling', benchEviction],
  ['runtime-eviction', 'eviction scaling through the runtime', benchRuntimeEviction],
  ['delivery', 'delivery', benchDelivery],
  ['churn', 'churn', benchChurn],
  ['memory', 'memory', benchMemory],
  ['inspector', 'inspector overhead', benchInspector],
  ['durable', 'durable accepts and reloads', benchDurable],
  ['durable-turns', 'durable turns', benchDurableTurns],
  ['event-loop', 'event loop', benchEventLoop],
  ['writer-thread', 'SQLite writer: main thread or worker', benchWriterThread],
  ['timers', 'durable timers', benchTimers],
  ['postgres', 'PostgreSQL scale-out', benchPostgres],
];
const keys = sections.map(([k]) => k);

// --- flags -------------------------------------------------------------------------------

const argv = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = argv[i]!;
  if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}
const known = new Set(['--only', '--label', '--no-write', '--list']);
for (const a of argv) {
  if (a.startsWith('--') && !known.has(a.split('=')[0]!)) {
    console.error(`unknown flag ${a}; flags: ${[...known].join(', ')}`);
    process.exit(2);
  }
}
if (argv.includes('--list')) {
  console.log(keys.join('\n'));
  process.exit(0);
}
const onlyArg = flag('--only');
const only = onlyArg?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((k) => !keys.includes(k)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown section(s) ${unknown.join(', ')}; sections: ${keys.join(', ')}`);
  process.exit(2);
}
const label = flag('--label');
const write = !argv.includes('--no-write');
const partial = only !== undefined || label !== undefined;
const selected = only ? sections.filter(([k]) => only.includes(k)) : sections;

// --- provenance ----------------------------------------------------------------------------

const root = fileURLToPath(new URL('..', import.meta.url));
/** git's output without its final newline (not trimmed: a porcelain line starts with a space). */
function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).replace(/\n+$/, '');
  } catch {
    return null;
  }
}
const commit = git(['rev-parse', '--short', 'HEAD']) ?? 'unknown';
/** Uncommitted changes to what is measured (the runtime's code), said beside the commit. */
const dirty = (git(['status', '--porcelain', '--', 'src', 'machines']) ?? '')
  .split('\n')
  .filter(Boolean)
  .map((l) => l.slice(3));
const commitText = `commit ${commit}${dirty.length > 0 ? ` with uncommitted changes in ${dirty.map((f) => `\`${f}\``).join(', ')}` : ''}`;
const date = new Date().toISOString().slice(0, 10);
const command = `npm run bench${argv.length > 0 ? ` -- ${argv.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}` : ''}`;

// --- run ---------------------------------------------------------------------------------

const fresh: string[] = [];
for (const [, name, run] of selected) {
  process.stdout.write(`${name}… `);
  const t = performance.now();
  const section = await run();
  console.log(`${((performance.now() - t) / 1000).toFixed(1)} s`);
  console.log(section + '\n');
  fresh.push(section);
}
if (!write) process.exit(0);

// --- write -------------------------------------------------------------------------------

const intro = [
  '# Benchmarks',
  '',
  'Produced by `npm run bench` (bench/index.ts). Each section compares candidates measured in',
  'alternating rounds within one run; the table shows medians. This machine is shared and noisy:',
  'read the ratios, not the absolute times. The runtime sections run each candidate in its own',
  'process (bench/isolated.ts), rounds still alternating; the memory section measures the heap in',
  'fresh `node --expose-gc` processes.',
  '',
  `How to run: \`npm run bench\` runs every section and rewrites this file. \`npm run bench -- --only`,
  'durable-turns,event-loop` runs those sections only and replaces only them here (each then says',
  'when, where and at which commit it ran); `--label "before the engine rework"` writes them under a',
  'heading of their own, "<title> — <label> (commit <sha>)", which later runs keep (so "before" and',
  '"after" figures stand side by side); `--no-write` only prints; `--list` lists the sections:',
  `${keys.map((k) => `\`${k}\``).join(', ')}.`,
  'A section written by hand under a heading that ends in "(commit <sha>)" (a summary of a change,',
  'first below) is kept by every run, in its place.',
  '',
];

interface Section {
  heading: string;
  text: string;
}
const headingOf = (text: string) => text.split('\n', 1)[0]!;
const baseOf = (heading: string) => heading.replace(/ — .*$/, '');
const isKept = (heading: string) => /\(commit [0-9a-f]{7,}[^)]*\)$/.test(heading);

/** Splits a benchmarks file into its preamble and its `## ` sections. */
function parse(file: string): { preamble: string[]; sections: Section[] } {
  const lines = file.replace(/\n+$/, '').split('\n');
  const preamble: string[] = [];
  const out: Section[] = [];
  let current: string[] | null = null;
  for (const line of lines) {
    if (line.startsWith('## ')) {
      current = [line];
      out.push({ heading: line, text: '' });
    } else if (current) current.push(line);
    else preamble.push(line);
    if (current) out[out.length - 1]!.text = current.join('\n').replace(/\n+$/, '');
  }
  return { preamble, sections: out };
}

/** A freshly run section as written: labelled and dated when the run is partial or labelled. */
function stamp(text: string): Section {
  const lines = text.replace(/\n+$/, '').split('\n');
  let heading = lines[0]!;
  if (label !== undefined) heading = `${heading} — ${label} (commit ${commit})`;
  if (!partial) return { heading, text: [heading, ...lines.slice(1)].join('\n') };
  const note = `_Measured on its own by \`${command}\` on ${date}, ${machine()}, at ${commitText}._`;
  return { heading, text: [heading, '', note, ...lines.slice(1)].join('\n') };
}

const path = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
const existing = existsSync(path) ? parse(readFileSync(path, 'utf8')) : { preamble: [], sections: [] };
const written = fresh.map(stamp);
let result: Section[];
let header: string[];
if (partial) {
  // The machine and date lines describe the last full run: kept.
  const kept = existing.preamble.filter((l) => l.startsWith('- '));
  header = [...intro, ...kept, ''];
  result = [...existing.sections];
  for (const s of written) {
    const at = result.findIndex((e) => e.heading === s.heading);
    if (at >= 0) {
      result[at] = s;
      continue;
    }
    // After the last section of the same title (its unlabelled run or other labels), else at the end.
    let after = -1;
    result.forEach((e, i) => void (baseOf(e.heading) === baseOf(s.heading) && (after = i)));
    if (after >= 0) result.splice(after + 1, 0, s);
    else result.push(s);
  }
} else {
  header = [...intro, `- machine: ${machine()}`, `- date: ${date}`, `- commit: ${commitText.slice('commit '.length)}`, ''];
  // Kept sections at the top of the file with no fresh section of their title (a summary) stay there.
  const orphan = (e: Section) => isKept(e.heading) && !written.some((w) => baseOf(w.heading) === baseOf(e.heading));
  let lead = 0;
  while (lead < existing.sections.length && orphan(existing.sections[lead]!)) lead++;
  result = [...existing.sections.slice(0, lead), ...written];
  for (const e of existing.sections.slice(lead).filter((x) => isKept(x.heading))) {
    let after = -1;
    result.forEach((r, i) => void (baseOf(r.heading) === baseOf(e.heading) && (after = i)));
    if (after >= 0) result.splice(after + 1, 0, e);
    else result.push(e);
  }
}
writeFileSync(path, [...header, ...result.flatMap((s) => [s.text, ''])].join('\n'));
console.log(`written to docs/benchmarks.md`);
