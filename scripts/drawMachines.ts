/**
 * Draws the two statecharts into docs/semantics.md from the machine definitions
 * themselves (Mermaid diagrams plus a table of every transition), between
 * `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->` markers.
 *
 *   npm run draw          rewrite the generated parts
 *
 * test/docs/semantics.test.ts fails when the file is out of date with the machines.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AnyStateMachine } from 'xstate';
import { agentMachine } from '../machines/agent.js';
import { supervisorMachine } from '../machines/supervisor.js';
import { statesOf, transitionsOf, type TransitionInfo } from '../machines/describe.js';

export const SEMANTICS_PATH = fileURLToPath(new URL('../docs/semantics.md', import.meta.url));

export const drawn: Record<string, AnyStateMachine> = {
  agent: agentMachine,
  supervisor: supervisorMachine,
};

const short = (id: string, rootId: string) => (id === rootId ? rootId : id.slice(rootId.length + 1).replace(/\./g, '_'));

function label(t: TransitionInfo): string {
  const guard = t.guard ? ` [${t.guard}]` : '';
  return `${t.event === 'always' ? '(always)' : t.event}${guard}`.replace(/:/g, '');
}

/**
 * A Mermaid state diagram of the machine's targeted transitions. Compound states are
 * flattened (`unloaded_dormant`), and a transition into a compound state is drawn into
 * its initial leaf, because Mermaid cannot draw edges across composite borders.
 */
export function mermaidOf(machine: AnyStateMachine): string {
  const states = statesOf(machine);
  const rootId = states[0]!.id;
  const byId = new Map(states.map((s) => [s.id, s]));
  const leaf = (id: string): string => {
    const s = byId.get(id)!;
    return s.initial ? leaf(s.initial) : id;
  };
  const name = (id: string) => short(leaf(id), rootId);
  const lines = ['stateDiagram-v2', `  [*] --> ${name(rootId)}`];
  const all = transitionsOf(machine);
  const leaves = states.filter((s) => s.type === 'atomic' || s.type === 'final');
  const ancestors = (id: string): string[] => {
    const p = byId.get(id)!.parent;
    return p && p !== rootId ? [id, ...ancestors(p)] : [id];
  };
  // A root transition applies in every leaf that does not handle the event itself.
  const handles = (leafId: string, event: string) =>
    ancestors(leafId).some((a) => all.some((t) => t.source === a && (t.event === event || t.event === '*')));
  // A state left at once by an unguarded eventless transition never receives events.
  const transient = (leafId: string) => all.some((t) => t.source === leafId && t.event === 'always' && !t.guard);
  const seen = new Set<string>();
  for (const t of all) {
    if (t.targets.length === 0) continue;
    const sources =
      t.source === rootId
        ? leaves.filter((l) => l.type !== 'final' && !transient(l.id) && !handles(l.id, t.event)).map((l) => l.id)
        : [t.source];
    for (const source of sources) {
      for (const target of t.targets) {
        const line = `  ${name(source)} --> ${name(target)}: ${label(t)}`;
        if (!seen.has(line)) lines.push(line);
        seen.add(line);
      }
    }
  }
  for (const s of states) if (s.type === 'final') lines.push(`  ${name(s.id)} --> [*]`);
  return lines.join('\n');
}

/** A table of every transition: source, event, guard, target, actions. */
export function tableOf(machine: AnyStateMachine): string {
  const rootId = machine.root.id;
  const rows = transitionsOf(machine).map((t) => {
    const from = t.source === rootId ? '*(any state)*' : `\`${short(t.source, rootId)}\``;
    const to = t.targets.length ? t.targets.map((x) => `\`${short(x, rootId)}\``).join(', ') : '*(stays)*';
    const ev = t.event === 'always' ? '*(eventless)*' : `\`${t.event}\``;
    const guard = t.guard ? `\`${t.guard}\`` : '';
    const actions = t.actions.map((a) => `\`${a}\``).join(', ');
    return `| ${from} | ${ev} | ${guard} | ${to} | ${actions} |`;
  });
  return ['| from | event | guard | to | actions |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

export function generatedBlock(name: string): string {
  const machine = drawn[name]!;
  return [
    `<!-- BEGIN GENERATED: ${name} (npm run draw) -->`,
    '```mermaid',
    mermaidOf(machine),
    '```',
    '',
    tableOf(machine),
    `<!-- END GENERATED: ${name} -->`,
  ].join('\n');
}

const blockPattern = (name: string) =>
  new RegExp(`<!-- BEGIN GENERATED: ${name} \\(npm run draw\\) -->[\\s\\S]*?<!-- END GENERATED: ${name} -->`);

/** The document with every generated block brought up to date. */
export function render(doc: string): string {
  let out = doc;
  for (const name of Object.keys(drawn)) {
    if (!blockPattern(name).test(out)) throw new Error(`docs/semantics.md has no generated block for ${name}`);
    out = out.replace(blockPattern(name), () => generatedBlock(name));
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const before = readFileSync(SEMANTICS_PATH, 'utf8');
  const after = render(before);
  writeFileSync(SEMANTICS_PATH, after);
  console.log(before === after ? 'docs/semantics.md was up to date' : 'docs/semantics.md redrawn');
}
