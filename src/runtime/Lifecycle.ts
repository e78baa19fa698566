/**
 * A small interpreter for the agent lifecycle statechart (machines/agent.ts).
 *
 * Why: a full XState actor per agent costs about 3.9 KB of heap and its own actor
 * system (measured in docs/benchmarks.md), which is most of the runtime's per-agent
 * overhead. The lifecycle machine only uses a subset of statecharts: nested states,
 * event and wildcard transitions, named guards, `assign` and named actions, eventless
 * transitions; no entry/exit actions, no invoke, no delays, no history, no parallel
 * states. This interpreter runs exactly that subset, from the machine definition
 * itself (with the runtime's `.provide()`d actions), and refuses a machine that uses
 * anything else. test/runtime/Lifecycle.test.ts replays every model path of the
 * machine on both this interpreter and a real XState actor and requires the same
 * states, contexts and effects at every step.
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition, EventObject } from 'xstate';

type Context = Record<string, unknown>;
type ActionImpl = ((args: { context: Context; event: EventObject }, params: unknown) => void) & {
  type?: string;
  assignment?: Record<string, unknown> | ((args: { context: Context; event: EventObject }, params: unknown) => Context);
};
type GuardImpl = (args: { context: Context; event: EventObject }, params: unknown) => boolean;

interface Compiled {
  machine: AnyStateMachine;
  actions: Record<string, ActionImpl>;
  guards: Record<string, GuardImpl>;
  /** For each leaf: its nodes from the leaf up to the root (the root last). */
  chains: Map<AnyStateNode, AnyStateNode[]>;
  values: Map<AnyStateNode, unknown>;
}

const compiled = new WeakMap<AnyStateMachine, Compiled>();

function nodesOf(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states as Record<string, AnyStateNode>).flatMap(nodesOf)];
}

function compile(machine: AnyStateMachine): Compiled {
  const cached = compiled.get(machine);
  if (cached) return cached;
  const all = nodesOf(machine.root);
  for (const n of all) {
    if (n.type === 'parallel' || n.type === 'history') throw new Error(`Lifecycle: ${n.type} state "${n.id}" is not supported`);
    if (n.entry.length || n.exit.length) throw new Error(`Lifecycle: entry/exit actions on "${n.id}" are not supported`);
    if (n.invoke.length) throw new Error(`Lifecycle: invoke on "${n.id}" is not supported`);
    if (n.after.length) throw new Error(`Lifecycle: delayed transitions on "${n.id}" are not supported`);
    const defs = [...[...n.transitions.values()].flat(), ...(n.always ?? [])] as AnyTransitionDefinition[];
    for (const t of defs) {
      if (t.guard && typeof t.guard !== 'string') throw new Error(`Lifecycle: only named guards are supported ("${n.id}")`);
      for (const a of t.actions as unknown[]) if (typeof a !== 'string') throw new Error(`Lifecycle: only named actions are supported ("${n.id}")`);
      if (t.reenter) throw new Error(`Lifecycle: reentering transitions are not supported ("${n.id}")`);
    }
  }
  const chains = new Map<AnyStateNode, AnyStateNode[]>();
  const values = new Map<AnyStateNode, unknown>();
  for (const n of all) {
    if (Object.keys(n.states).length > 0) continue;
    const chain: AnyStateNode[] = [];
    for (let p: AnyStateNode | undefined = n; p; p = p.parent) chain.push(p);
    chains.set(n, chain);
    // The state value: 'idle', or { unloaded: 'dormant' }.
    const path = n.path as string[];
    let value: unknown = path[path.length - 1];
    for (let i = path.length - 2; i >= 0; i--) value = { [path[i]!]: value };
    values.set(n, value);
  }
  const impl = machine.implementations as unknown as { actions: Record<string, ActionImpl>; guards: Record<string, GuardImpl> };
  const c: Compiled = { machine, actions: impl.actions, guards: impl.guards, chains, values };
  compiled.set(machine, c);
  return c;
}

/** Descends from a target through initial states to a leaf. */
function leafOf(node: AnyStateNode): AnyStateNode {
  let n = node;
  while ((n.initial?.target as AnyStateNode[] | undefined)?.length) n = (n.initial!.target as AnyStateNode[])[0]!;
  return n;
}

export interface LifecycleSnapshot<C> {
  value: unknown;
  context: C;
}

export class Lifecycle<C extends object, E extends EventObject = EventObject> {
  readonly #c: Compiled;
  #leaf: AnyStateNode;
  #context: Context;
  /** Events sent while one is processed (by its own effects), made on first use. */
  #queue: EventObject[] | null = null;
  #busy = false;
  #stopped = false;
  /** One listener may serve many lifecycles: it is called with this lifecycle's owner. */
  #listener: ((owner: unknown) => void) | null = null;
  #owner: unknown = undefined;

  constructor(machine: AnyStateMachine, input: unknown) {
    this.#c = compile(machine);
    const config = machine.config as { context?: unknown };
    this.#context =
      typeof config.context === 'function' ? (config.context as (a: { input: unknown }) => Context)({ input }) : { ...(config.context as Context) };
    this.#leaf = leafOf(machine.root);
  }

  /** Takes the initial eventless transitions (their effects run now, like an actor's start). */
  start(): this {
    this.#run(null);
    return this;
  }

  getSnapshot(): LifecycleSnapshot<C> {
    return { value: this.#c.values.get(this.#leaf), context: this.#context as C };
  }

  /**
   * `listener(owner)` is called after every event has been processed (the runtime's
   * `subscribe`). Passing the owner lets one listener serve every lifecycle (no closure
   * per agent).
   */
  subscribe<O>(listener: (owner: O) => void, owner: O): void {
    this.#listener = listener as (owner: unknown) => void;
    this.#owner = owner;
  }

  stop(): void {
    this.#stopped = true;
    this.#queue = null;
  }

  /** Processes the event (and any event sent to this lifecycle by its own effects, after it). */
  send(event: E): void {
    if (this.#stopped) return;
    if (this.#busy) (this.#queue ??= []).push(event);
    else this.#run(event);
  }

  /**
   * Processes `first` (`null`: the start, its eventless transitions), then every event
   * queued meanwhile, in order; events sent meanwhile queue up behind.
   */
  #run(first: EventObject | null): void {
    this.#busy = true;
    try {
      if (first === null) this.#settle({ type: 'xstate.init' });
      else this.#step(first);
      while (this.#queue !== null && this.#queue.length > 0 && !this.#stopped) this.#step(this.#queue.shift()!);
    } finally {
      this.#busy = false;
      if (this.#queue?.length === 0) this.#queue = null;
    }
    this.#listener?.(this.#owner);
  }

  #step(e: EventObject): void {
    const t = this.#select(e, false);
    if (t) this.#take(t, e);
    this.#settle(e);
  }

  /** Takes eventless transitions until none is enabled. */
  #settle(event: EventObject): void {
    for (let i = 0; i < 100; i++) {
      const t = this.#select(event, true);
      if (!t) return;
      this.#take(t, event);
    }
    throw new Error('Lifecycle: eventless transitions did not settle');
  }

  #select(event: EventObject, eventless: boolean): AnyTransitionDefinition | null {
    for (const node of this.#c.chains.get(this.#leaf)!) {
      const candidates: AnyTransitionDefinition[] = eventless
        ? (node.always ?? [])
        : [...(node.transitions.get(event.type) ?? []), ...(node.transitions.get('*') ?? [])];
      for (const t of candidates) {
        if (!t.guard || this.#c.guards[t.guard as string]!({ context: this.#context, event }, undefined)) return t;
      }
    }
    return null;
  }

  #take(t: AnyTransitionDefinition, event: EventObject): void {
    for (const name of t.actions as string[]) {
      const a = this.#c.actions[name];
      if (!a) throw new Error(`Lifecycle: no implementation for action "${name}"`);
      if (a.type === 'xstate.assign') {
        const args = { context: this.#context, event };
        const assignment = a.assignment!;
        let partial: Context;
        if (typeof assignment === 'function') partial = assignment(args, undefined);
        else {
          partial = {};
          for (const [k, v] of Object.entries(assignment)) {
            partial[k] = typeof v === 'function' ? (v as (x: typeof args, p: unknown) => unknown)(args, undefined) : v;
          }
        }
        // A copy, then the changes (not `{ ...a, ...b }`): every context keeps one hidden class
        // and its fields in the object (a two-spread literal gets a class of its own and spills).
        this.#context = Object.assign({ ...this.#context }, partial);
      } else {
        a({ context: this.#context, event }, undefined);
      }
    }
    const target = (t.target as AnyStateNode[] | undefined)?.[0];
    if (target) this.#leaf = leafOf(target);
  }
}
