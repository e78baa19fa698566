/**
 * A root agent that spawns sub-agents: the shape of a coding agent that hands parts of a
 * task to helpers, each a conversation of its own.
 *
 *   npm run example:chat                    # memoryStore
 *   npx tsx examples/chat-agents.ts my.db   # sqliteStore('my.db'): run it twice, the agents are still there
 *
 * The lead is pinned (never evicted); the helpers come and go through a resident cap of 3.
 */
import { createRuntime, defineAgent, fromTurn, memoryStore, sqliteStore } from '../src/index.js'; // in your project: from 'residency'

/** Stands in for a model call. */
const think = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });

const lead = defineAgent({
  type: 'lead',
  logic: fromTurn<{ task: string; helpers: string[]; results: Record<string, string> }>(
    async ({ state, message, self, spawn, send, emit }) => {
      switch (message.type) {
        case 'user.task': {
          // Split the task and hand each part to a new helper (spawned when this turn commits).
          const parts = message.parts as string[];
          const helpers = parts.map((part, i) => {
            const id = spawn('helper', { id: `${self}.helper-${state.helpers.length + i + 1}` });
            send(id, { type: 'subtask', part });
            return id;
          });
          return { task: String(message.text), helpers: [...state.helpers, ...helpers], results: state.results };
        }
        case 'helper.result':
          return { ...state, results: { ...state.results, [String(message.from)]: String(message.answer) } };
        case 'summary':
          emit({ task: state.task, done: Object.keys(state.results).length, of: state.helpers.length, results: state.results });
          return state;
        default:
          return state;
      }
    },
    { initialState: { task: '', helpers: [], results: {} } },
  ),
});

const helper = defineAgent({
  type: 'helper',
  logic: fromTurn<{ history: string[] }>(
    async ({ state, message, signal, self, send }) => {
      await think(20 + Math.random() * 30, signal);
      const answer = `looked at ${String(message.part)}`;
      send(self.slice(0, self.indexOf('.')), { type: 'helper.result', from: self, answer });
      return { history: [...state.history, String(message.part)] };
    },
    { initialState: { history: [] } },
  ),
});

const dbPath = process.argv[2];
const runtime = await createRuntime({
  agents: [lead, helper],
  residentCap: 3,
  runningCap: 2,
  store: dbPath ? sqliteStore(dbPath) : memoryStore(),
});
let evictions = 0;
runtime.on('agent.evicted', () => void evictions++);

const parts = ['src/parser.ts', 'src/lexer.ts', 'src/ast.ts', 'test/parser.test.ts', 'docs/grammar.md', 'README.md'];
const resultsIn = new Promise<void>((resolve) => {
  let left = parts.length;
  runtime.on('turn.finished', (e) => {
    if (e.id === 'lead' && e.outcome === 'done' && --left === -1) resolve(); // the task turn, then one per helper
  });
});

const existing = await runtime.get('lead').catch(() => null);
if (!existing) await runtime.spawn('lead', { id: 'lead', pinned: true });
await runtime.send('lead', { type: 'user.task', text: 'review the parser', parts });
await resultsIn;

const { outputs } = await runtime.ask('lead', { type: 'summary' });
const summary = outputs[0] as { task: string; done: number; of: number; results: Record<string, string> };
console.log(`lead: "${summary.task}": ${summary.done} of ${summary.of} helpers answered`);
for (const [helperId, answer] of Object.entries(summary.results).sort()) console.log(`  ${helperId}: ${answer}`);

const { agents } = await runtime.list({ parent: 'lead' });
console.log(`${agents.length} helpers exist; ${agents.filter((a) => a.resident).length} resident (cap 3); ${evictions} evictions so far`);
await runtime.stop();
