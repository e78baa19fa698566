/**
 * Every TypeScript block in the README and docs/testing.md runs, and every `expr; // => value` line in it
 * holds, so the README cannot drift from the code.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = fileURLToPath(new URL('./.blocks/', import.meta.url));

/** The ```ts blocks of a markdown file. */
export function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** Turns `expr; // => value` into a check, and points `residency` imports at the sources. */
export function instrument(block: string, depth: string): string {
  const body = block
    .replace(/from 'residency\/testing'/g, `from '${depth}src/testing/index.js'`)
    .replace(/from 'residency'/g, `from '${depth}src/index.js'`)
    .split('\n')
    .map((line) => {
      const m = /^(\s*)(.+?);?\s*\/\/ => (.+)$/.exec(line);
      return m ? `${m[1]}__checks.push([${JSON.stringify(m[2])}, ${m[2]}, ${m[3]}]);` : line;
    })
    .join('\n');
  return `export const __checks: [string, unknown, unknown][] = [];\n${body}\n`;
}

mkdirSync(tmp, { recursive: true });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

for (const doc of ['README.md', 'docs/testing.md', 'docs/guide.md']) describe(doc, () => {
  const blocks = tsBlocks(readFileSync(`${root}${doc}`, 'utf8'));

  it('has code to run', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  blocks.forEach((block, i) => {
    it(`block ${i + 1} runs and its // => results hold`, async () => {
      const file = `${tmp}${doc.replace(/\W/g, '-')}-${i + 1}.ts`;
      writeFileSync(file, instrument(block, '../../../'));
      const mod = (await import(pathToFileURL(file).href)) as { __checks: [string, unknown, unknown][] };
      for (const [expr, actual, expected] of mod.__checks) expect(actual, expr).toEqual(expected);
      if (block.includes('// =>')) expect(mod.__checks.length).toBeGreaterThan(0);
    });
  });
});
