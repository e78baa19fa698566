/**
 * `npm run bench`: runs every benchmark and writes docs/benchmarks.md with the command,
 * the machine and the results. Ratios are measured side by side in one run; absolute
 * times on a shared machine are only indicative.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchChurn } from './churn.js';
import { benchDelivery } from './delivery.js';
import { benchDurable } from './durable.js';
import { benchEviction } from './eviction.js';
import { benchInspector } from './inspector.js';
import { machine } from './harness.js';
import { benchMemory } from './memory.js';
import { benchRuntimeEviction } from './runtimeEviction.js';

const sections: [string, () => string | Promise<string>][] = [
  ['eviction scaling', benchEviction],
  ['eviction scaling through the runtime', benchRuntimeEviction],
  ['delivery', benchDelivery],
  ['churn', benchChurn],
  ['memory', benchMemory],
  ['inspector overhead', benchInspector],
  ['durable accepts and reloads', benchDurable],
];

const out: string[] = [
  '# Benchmarks',
  '',
  'Produced by `npm run bench` (bench/index.ts). Each section compares candidates measured in',
  'alternating rounds within one run; the table shows medians. This machine is shared and noisy:',
  'read the ratios, not the absolute times. The runtime sections run each candidate in its own',
  'process (bench/isolated.ts), rounds still alternating; the memory section measures the heap in',
  'fresh `node --expose-gc` processes.',
  '',
  `- machine: ${machine()}`,
  `- date: ${new Date().toISOString().slice(0, 10)}`,
  '',
];
for (const [name, run] of sections) {
  process.stdout.write(`${name}… `);
  const t = performance.now();
  const section = await run();
  console.log(`${((performance.now() - t) / 1000).toFixed(1)} s`);
  console.log(section + '\n');
  out.push(section, '');
}
const path = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
writeFileSync(path, out.join('\n'));
console.log(`written to docs/benchmarks.md`);
