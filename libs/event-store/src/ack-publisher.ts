import {
  type ConnectionOptions,
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  errors as natsErrors,
  type Subscription,
} from "@nats-io/transport-node";

/** One message of a publish: the last one of a request gets the reply subject. */
export interface OutgoingMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs;
}

/**
 * Publishes to JetStream and waits for the server's reply (the ack), like `nc.request`, but for the
 * append path's volume:
 *
 * - **One socket write per event-loop turn.** Requests are queued and published together from a
 *   `setImmediate`, so the appends of every call that reached this point in the same turn leave in
 *   one write (nats.js flushes its buffer once, from a microtask), instead of one write each.
 * - **One reply subscription** (`<inbox>.*`) and one timer for every pending request, instead of a
 *   timer, a deferred and two pre-built `Error`s (for their stack traces) per request.
 *
 * Failures are nats.js's own: `TimeoutError` when no reply came in time, `NoRespondersError` when no
 * stream listens on the subject, `ClosedConnectionError` when the connection closed meanwhile.
 */
export interface AckPublisher {
  /**
   * Publishes `messages` in order, in one write with the other publishes of this event-loop turn;
   * the last one carries the reply subject. Resolves with the reply.
   */
  request(messages: readonly OutgoingMessage[]): Promise<Msg>;
}

export function createAckPublisher(nc: NatsConnection, timeoutMs: number): AckPublisher {
  return new BatchingAckPublisher(nc, timeoutMs);
}

interface Pending {
  readonly subject: string;
  readonly deadline: number;
  readonly resolve: (msg: Msg) => void;
  readonly reject: (e: unknown) => void;
}

interface Queued {
  readonly messages: readonly OutgoingMessage[];
  readonly token: string;
}

class BatchingAckPublisher implements AckPublisher {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  /** `<inbox>.`: a reply subject is this plus a token. */
  readonly #prefix: string;
  #subscription: Subscription | undefined;
  /** By token, oldest first: every request has the same timeout, so also by deadline. */
  readonly #pending = new Map<string, Pending>();
  #queue: Queued[] = [];
  #flushScheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #nextToken = 0;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    const options = (nc as { options?: ConnectionOptions }).options;
    this.#prefix = `${createInbox(options?.inboxPrefix)}.`;
  }

  request(messages: readonly OutgoingMessage[]): Promise<Msg> {
    const last = messages[messages.length - 1];
    if (last === undefined) return Promise.reject(new RangeError("nothing to publish"));
    this.#subscribe();
    const token = String(this.#nextToken++);
    return new Promise<Msg>((resolve, reject) => {
      this.#pending.set(token, {
        subject: last.subject,
        deadline: Date.now() + this.#timeoutMs,
        resolve,
        reject,
      });
      this.#queue.push({ messages, token });
      this.#armTimer();
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #subscribe(): void {
    if (this.#subscription !== undefined) return;
    const sub = this.#nc.subscribe(`${this.#prefix}*`, {
      callback: (err, msg) => {
        if (err) {
          this.#failAll(err);
          return;
        }
        this.#onReply(msg);
      },
    });
    this.#subscription = sub;
    void sub.closed.then(
      () => this.#closed(sub),
      () => this.#closed(sub),
    );
  }

  #closed(sub: Subscription): void {
    if (this.#subscription === sub) this.#subscription = undefined;
    this.#failAll(new natsErrors.ClosedConnectionError());
  }

  #failAll(e: unknown): void {
    this.#queue = [];
    for (const pending of this.#pending.values()) pending.reject(e);
    this.#pending.clear();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (const { messages, token } of queue) {
      const pending = this.#pending.get(token);
      if (pending === undefined) continue; // timed out or failed while queued
      try {
        const last = messages.length - 1;
        for (let i = 0; i < last; i++) {
          const m = messages[i] as OutgoingMessage;
          this.#nc.publish(m.subject, m.data, { headers: m.headers });
        }
        const m = messages[last] as OutgoingMessage;
        this.#nc.publish(m.subject, m.data, {
          headers: m.headers,
          reply: `${this.#prefix}${token}`,
        });
      } catch (e) {
        this.#pending.delete(token);
        pending.reject(e);
      }
    }
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length);
    const pending = this.#pending.get(token);
    if (pending === undefined) return; // answered after its timeout
    this.#pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      pending.reject(new natsErrors.NoRespondersError(pending.subject));
    } else {
      pending.resolve(msg);
    }
  }

  /** One timer for the oldest pending request; it expires what is due and re-arms itself. */
  #armTimer(): void {
    if (this.#timer !== undefined) return;
    const oldest = this.#pending.values().next().value;
    if (oldest === undefined) return;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, oldest.deadline - Date.now()));
    this.#timer.unref();
  }

  #expire(): void {
    this.#timer = undefined;
    const now = Date.now();
    for (const [token, pending] of this.#pending) {
      if (pending.deadline > now) break;
      this.#pending.delete(token);
      pending.reject(new natsErrors.TimeoutError());
    }
    this.#armTimer();
  }
}
