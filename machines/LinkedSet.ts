/**
 * An insertion-ordered set of string keys with O(1) add, delete, move-to-back and
 * peek-front: a `Map` from key to node plus an intrusive doubly linked list.
 *
 * Why not a bare `Map`? Its `keys().next()` walks over deleted slots, so taking the
 * oldest entry of a busy map gets slower as the map churns. The linked list keeps the
 * front one pointer away whatever happened before.
 *
 * Used for the LRU of evictable agents, the idle-time order and the FIFO admission
 * queues of the supervisor. A leaf structure: imports nothing.
 */
/** @internal */
export interface LinkedNode<V> {
  key: string;
  value: V;
  prev: LinkedNode<V> | null;
  next: LinkedNode<V> | null;
}

export class LinkedSet<V = undefined> {
  readonly #nodes = new Map<string, LinkedNode<V>>();
  #head: LinkedNode<V> | null = null;
  #tail: LinkedNode<V> | null = null;

  get size(): number {
    return this.#nodes.size;
  }

  has(key: string): boolean {
    return this.#nodes.has(key);
  }

  get(key: string): V | undefined {
    return this.#nodes.get(key)?.value;
  }

  /** Appends `key` at the back, or moves it there (updating its value) if present. */
  push(key: string, value: V): void {
    const existing = this.#nodes.get(key);
    if (existing) {
      existing.value = value;
      if (existing !== this.#tail) {
        this.#unlink(existing);
        this.#linkBack(existing);
      }
      return;
    }
    const node: LinkedNode<V> = { key, value, prev: null, next: null };
    this.#nodes.set(key, node);
    this.#linkBack(node);
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: string): boolean {
    const node = this.#nodes.get(key);
    if (!node) return false;
    this.#unlink(node);
    this.#nodes.delete(key);
    return true;
  }

  /** The oldest key, without removing it. */
  peek(): string | undefined {
    return this.#head?.key;
  }

  /** The oldest entry's value, without removing it. */
  peekValue(): V | undefined {
    return this.#head?.value;
  }

  /** The newest key. */
  peekLast(): string | undefined {
    return this.#tail?.key;
  }

  /** Removes and returns the oldest key. */
  shift(): string | undefined {
    const node = this.#head;
    if (!node) return undefined;
    this.#unlink(node);
    this.#nodes.delete(node.key);
    return node.key;
  }

  clear(): void {
    this.#nodes.clear();
    this.#head = this.#tail = null;
  }

  /** Keys from oldest to newest. */
  *keys(): IterableIterator<string> {
    for (let n = this.#head; n; n = n.next) yield n.key;
  }

  /** Entries from oldest to newest. */
  *entries(): IterableIterator<[string, V]> {
    for (let n = this.#head; n; n = n.next) yield [n.key, n.value];
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.keys();
  }

  /**
   * @internal Checks the list against the map: every link is mutual, the list holds
   * exactly the map's nodes, head has no prev and tail no next. Returns the problems
   * found (empty when sound). For tests only.
   */
  unsafeCheckLinks(): string[] {
    const problems: string[] = [];
    const seen = new Set<string>();
    let prev: LinkedNode<V> | null = null;
    let count = 0;
    for (let n = this.#head; n; n = n.next) {
      if (n.prev !== prev) problems.push(`node ${n.key}: prev link does not point back`);
      if (seen.has(n.key)) {
        problems.push(`node ${n.key}: appears twice (cycle)`);
        break;
      }
      seen.add(n.key);
      if (this.#nodes.get(n.key) !== n) problems.push(`node ${n.key}: not the map's node`);
      prev = n;
      if (++count > this.#nodes.size + 1) break;
    }
    if (prev !== this.#tail) problems.push('tail is not the last node of the list');
    if (count !== this.#nodes.size) problems.push(`list has ${count} nodes, map has ${this.#nodes.size}`);
    if (this.#head && this.#head.prev) problems.push('head has a prev link');
    if (this.#tail && this.#tail.next) problems.push('tail has a next link');
    return problems;
  }

  /**
   * @internal The raw nodes, for tests that check (or deliberately break) the links.
   */
  unsafeInternals(): { head: LinkedNode<V> | null; tail: LinkedNode<V> | null; nodes: Map<string, LinkedNode<V>> } {
    return { head: this.#head, tail: this.#tail, nodes: this.#nodes };
  }

  #linkBack(node: LinkedNode<V>): void {
    node.prev = this.#tail;
    node.next = null;
    if (this.#tail) this.#tail.next = node;
    else this.#head = node;
    this.#tail = node;
  }

  #unlink(node: LinkedNode<V>): void {
    if (node.prev) node.prev.next = node.next;
    else this.#head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.#tail = node.prev;
    node.prev = node.next = null;
  }
}
