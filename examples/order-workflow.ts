/**
 * An XState machine as agent logic: an order workflow.
 *
 *   npm run example:order                      # memoryStore
 *   npx tsx examples/order-workflow.ts my.db   # sqliteStore('my.db')
 *
 * The machine stays pure: it asks for effects by emitting events (`agent.send` to message
 * another agent); the runtime carries them out when the turn commits. Between every step
 * the order is evicted (`runtime.close`) and reloaded from the store: it does not notice.
 */
import { assign, emit, setup } from 'xstate';
import { createRuntime, defineAgent, fromTurn, memoryStore, sqliteStore } from '../src/index.js'; // in your project: from 'residency'

const order = defineAgent({
  type: 'order',
  logic: setup({
    types: {
      context: {} as { orderId: string; items: string[]; total: number; trackingNo: string | null },
      input: {} as { orderId: string },
      events: {} as
        | { type: 'item.added'; item: string; price: number }
        | { type: 'order.placed' }
        | { type: 'payment.succeeded' }
        | { type: 'payment.failed'; reason: string }
        | { type: 'shipped'; trackingNo: string }
        | { type: 'delivered' }
        | { type: 'cancel' },
      // What the machine emits: effects for the runtime (agent.send) and outputs (the rest).
      emitted: {} as
        | { type: 'agent.send'; to: string; message: { type: string; orderId: string; amount: number } }
        | { type: 'order.status'; status: string },
    },
  }).createMachine({
    id: 'order',
    context: ({ input }) => ({ orderId: input.orderId, items: [], total: 0, trackingNo: null }),
    initial: 'cart',
    states: {
      cart: {
        on: {
          'item.added': { actions: assign(({ context, event }) => ({ items: [...context.items, event.item], total: context.total + event.price })) },
          'order.placed': {
            guard: ({ context }) => context.items.length > 0,
            target: 'awaitingPayment',
            // An effect, as an emitted event: the runtime sends it to the billing agent.
            actions: emit(({ context }) => ({
              type: 'agent.send',
              to: 'billing',
              message: { type: 'charge', orderId: context.orderId, amount: context.total },
            })),
          },
        },
      },
      awaitingPayment: {
        on: {
          'payment.succeeded': { target: 'paid', actions: emit({ type: 'order.status', status: 'paid' }) },
          'payment.failed': { target: 'cart', actions: emit(({ event }) => ({ type: 'order.status', status: `payment failed: ${event.reason}` })) },
          cancel: 'cancelled',
        },
      },
      paid: {
        on: {
          shipped: { target: 'shipped', actions: assign({ trackingNo: ({ event }) => event.trackingNo }) },
          cancel: { target: 'cancelled', actions: emit({ type: 'order.status', status: 'refund requested' }) },
        },
      },
      shipped: { on: { delivered: 'delivered' } },
      delivered: { type: 'final' },
      cancelled: { type: 'final' },
    },
  }),
});

// Billing is a turn function: it charges and answers the order that asked.
const billing = defineAgent({
  type: 'billing',
  logic: fromTurn<{ charged: number }>(
    async ({ state, message, send }) => {
      const amount = Number(message.amount);
      if (amount > 1000) send(String(message.orderId), { type: 'payment.failed', reason: 'over the limit' });
      else send(String(message.orderId), { type: 'payment.succeeded' });
      return { charged: state.charged + (amount > 1000 ? 0 : amount) };
    },
    { initialState: { charged: 0 } },
  ),
});

const dbPath = process.argv[2];
const runtime = await createRuntime({
  agents: [order, billing],
  residentCap: 4,
  runningCap: 2,
  store: dbPath ? sqliteStore(dbPath) : memoryStore(),
});
const id = `order-${Date.now().toString(36)}`;
await runtime.spawn('billing', { id: 'billing' }).catch(() => {}); // already there on a second run with a db
await runtime.spawn('order', { id, input: { orderId: id } });

/** Waits until `agent` has finished `n` more turns (billing's reply arrives as a message). */
const turnsOf = (agent: string, n: number) =>
  new Promise<void>((resolve) => {
    const off = runtime.on('turn.finished', (e) => {
      if (e.id === agent && --n === 0) (off(), resolve());
    });
  });

const step = async (message: { type: string; [k: string]: unknown }) => {
  const r = await runtime.ask(id, message);
  const { value, context } = r.state as { value: string; context: { total: number } };
  console.log(`${message.type.padEnd(18)} → ${value.padEnd(16)} total ${context.total}${r.outputs.length ? `  ${JSON.stringify(r.outputs)}` : ''}`);
  await runtime.close(id); // evict it: the next message reloads it from the store
};

await step({ type: 'item.added', item: 'keyboard', price: 120 });
await step({ type: 'item.added', item: 'mouse', price: 40 });
const paid = turnsOf(id, 2); // order.placed, then payment.succeeded
await step({ type: 'order.placed' });
await paid; // billing charged and answered: the order is paid
const info = await runtime.get(id);
console.log(`billing answered: ${info.turns} turns so far, the order is ${info.state} (the reply reloaded it)`);
await step({ type: 'shipped', trackingNo: 'TRACK-1' });
await step({ type: 'delivered' });
const final = await runtime.ask(id, { type: 'delivered' }); // a final state takes no more events
console.log(`final: ${(final.state as { value: string }).value}`);
await runtime.stop();
