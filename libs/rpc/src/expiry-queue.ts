/**
 * Timeouts that all have the same duration (a server-wide limit: the longest deadline, the time to
 * read a request), kept with one timer instead of one per call. Items that share a duration expire
 * in the order they were added, so the queue is a list in that order: adding and removing an item
 * cost a few property writes, and the one timer is set for the oldest item. Removing an item does
 * not move the timer: when it fires early, it finds the new oldest item and waits for that one. At
 * a steady rate of short calls that is one timer callback per `durationMs`, not a timer per call.
 */
export interface ExpiryQueue<T> {
  readonly durationMs: number;
  /** Starts the item's time; returns the handle that takes it out before then. */
  add(item: T): ExpiryHandle;
  /** Items waiting to expire. */
  readonly size: number;
  /** Drops every item without expiring it and stops the timer. */
  clear(): void;
}

/** An item in the queue; `remove()` takes it out before its time (idempotent). */
export interface ExpiryHandle {
  remove(): void;
}

/** A queue whose items expire `durationMs` after they are added: `onExpire` is called with each. */
export function createExpiryQueue<T>(
  durationMs: number,
  onExpire: (item: T) => void,
): ExpiryQueue<T> {
  if (!Number.isInteger(durationMs) || durationMs < 1) {
    throw new RangeError(
      `an expiry queue's duration must be a whole number of ms ≥ 1, not ${durationMs}`,
    );
  }
  return new Queue(durationMs, onExpire);
}

class Node<T> implements ExpiryHandle {
  readonly queue: Queue<T>;
  readonly item: T;
  readonly expiresAt: number;
  prev: Node<T> | undefined;
  next: Node<T> | undefined;
  queued = true;

  constructor(queue: Queue<T>, item: T, expiresAt: number) {
    this.queue = queue;
    this.item = item;
    this.expiresAt = expiresAt;
  }

  remove(): void {
    if (this.queued) this.queue.unlink(this);
  }
}

class Queue<T> implements ExpiryQueue<T> {
  readonly durationMs: number;
  readonly #onExpire: (item: T) => void;
  #head: Node<T> | undefined;
  #tail: Node<T> | undefined;
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(durationMs: number, onExpire: (item: T) => void) {
    this.durationMs = durationMs;
    this.#onExpire = onExpire;
  }

  get size(): number {
    return this.#size;
  }

  add(item: T): ExpiryHandle {
    const node = new Node(this, item, performance.now() + this.durationMs);
    const tail = this.#tail;
    node.prev = tail;
    if (tail) tail.next = node;
    else this.#head = node;
    this.#tail = node;
    this.#size++;
    if (this.#timer === undefined) this.#arm(this.durationMs);
    return node;
  }

  unlink(node: Node<T>): void {
    node.queued = false;
    const { prev, next } = node;
    if (prev) prev.next = next;
    else this.#head = next;
    if (next) next.prev = prev;
    else this.#tail = prev;
    node.prev = undefined;
    node.next = undefined;
    this.#size--;
  }

  clear(): void {
    for (let node = this.#head; node; node = node.next) node.queued = false;
    this.#head = undefined;
    this.#tail = undefined;
    this.#size = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    // Unref'd: the calls it guards keep the process alive, or not.
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(ms)));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    const now = performance.now();
    const expired: T[] = [];
    let node = this.#head;
    while (node && node.expiresAt <= now) {
      const next = node.next;
      this.unlink(node);
      expired.push(node.item);
      node = next;
    }
    if (this.#head) this.#arm(this.#head.expiresAt - now);
    // Expire once the list is consistent: onExpire may add or remove items.
    for (const item of expired) this.#onExpire(item);
  }
}
