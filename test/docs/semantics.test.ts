import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { SEMANTICS_PATH, drawn, generatedBlock, mermaidOf, render, tableOf } from '../../scripts/drawMachines.js';
import { transitionsOf } from '../../machines/describe.js';
import { agentMachine } from '../../machines/agent.js';

describe('docs/semantics.md', () => {
  it('holds the drawings of the machines as they are now (run `npm run draw` if this fails)', () => {
    const doc = readFileSync(SEMANTICS_PATH, 'utf8');
    expect(render(doc)).toBe(doc);
  });

  it('draws every transition of each machine in its table', () => {
    for (const [name, machine] of Object.entries(drawn)) {
      const block = generatedBlock(name);
      const rows = block.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| from') && !l.startsWith('| ---'));
      expect(rows.length, name).toBe(transitionsOf(machine).length);
    }
  });

  it('would notice a machine that changed, and puts back a hand-edited drawing', () => {
    const changed = createMachine({ ...(agentMachine.config as object), initial: 'idle' } as never);
    expect(mermaidOf(changed)).not.toBe(mermaidOf(agentMachine));
    expect(tableOf(createMachine({ ...(agentMachine.config as object), on: {} } as never))).not.toBe(tableOf(agentMachine));
    const doc = readFileSync(SEMANTICS_PATH, 'utf8');
    const tampered = doc.replace('`requestSlot` |', '`requestSlotX` |');
    expect(tampered).not.toBe(doc);
    expect(render(tampered)).toBe(doc);
  });
});
