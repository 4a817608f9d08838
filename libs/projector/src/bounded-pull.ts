import {
  createInbox,
  type Msg,
  type NatsConnection,
  nanos,
  type Status,
  type Subscription,
} from "@nats-io/transport-node";
import { PullEndedError } from "./errors.ts";

/** A message a pull delivered: what a partition worker reads, acknowledges and keeps alive. */
export interface Delivery {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Its sequence in the stream. */
  readonly seq: number;
  /** Its delivery sequence of the consumer: one more for every delivery, redeliveries too. */
  readonly deliverySeq: number;
  /** Bytes as JetStream counts them against a pull's max_bytes: subject, reply, headers, data. */
  readonly size: number;
  /** A header of the stored message; undefined when it has none of that name. */
  header(name: string): string | undefined;
  /** Acknowledges it, and with AckPolicy.All every delivery before it. */
  ack(): void;
  /** Hands it back for redelivery (after `delayMs`, when given). */
  nak(delayMs?: number): void;
  /** Restarts its ack wait: still being worked on. */
  working(): void;
}

export interface BoundedPullOptions {
  readonly nc: NatsConnection;
  readonly stream: string;
  /**
   * A durable pull consumer of the stream, made for this pull and pulled by nothing else: its
   * deliveries are numbered from 1, and a number skipped is a delivery lost on the way.
   */
  readonly consumer: string;
  /** JetStream API prefix (default `$JS.API`). */
  readonly apiPrefix?: string;
  /** Prefix of the reply subjects (default `_INBOX`, as the connection's). */
  readonly inboxPrefix?: string;
  /** Most messages requested and not delivered yet, plus delivered and not taken yet. */
  readonly maxMessages: number;
  /** Most bytes requested and not delivered yet, plus delivered and not taken yet. */
  readonly maxBytes: number;
  /** Most messages one pull request asks for. */
  readonly pullMessages: number;
  /**
   * The fewest bytes a pull request asks for: at least the largest message the server takes
   * (its max_payload), or a message larger than the room left would end every request unserved.
   */
  readonly minPullBytes: number;
  /** How long the server keeps a pull request waiting for messages (default 30 s). */
  readonly expiresMs?: number;
  /** How often the server says a waiting pull request is alive (default 5 s). */
  readonly heartbeatMs?: number;
  /** Called for every delivery as it is queued. */
  readonly onDelivery?: (delivery: Delivery) => void;
  /** Called once when the pull ended for good (see `ended`). */
  readonly onEnd?: (error: PullEndedError) => void;
}

/**
 * Pulls from a durable JetStream consumer with requests bounded by messages and by bytes, and
 * queues what arrives until it is taken. nats.js's `consume()` takes `max_messages` or
 * `max_bytes`, not both, and with bytes alone asks for 100 messages per pull, which starves a
 * projector's batches; so this makes the pull requests itself. It keeps one request at a time, and
 * asks only for what fits: what is requested and not delivered, plus what is queued and not taken,
 * stays within `maxMessages` and `maxBytes`. The server never sends more than a request asked for,
 * so what this process holds for the consumer, and what the server queues for this connection on
 * its behalf, is bounded too (nats-server cuts a client whose pending bytes pass its limit, 64 MB by
 * default: a "slow consumer").
 */
export interface BoundedPull {
  /**
   * Takes the oldest queued deliveries: at most `maxMessages`, and at most `maxBytes` unless the
   * first alone is larger. Makes room, so the next request may go out.
   */
  take(maxMessages: number, maxBytes: number): Delivery[];
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /**
   * Set once the pull ended for good: the consumer is gone, the server refused the request, or
   * deliveries were lost on the way.
   */
  readonly ended: PullEndedError | undefined;
  /** Stops pulling; returns what is queued, for the caller to hand back. */
  close(): Delivery[];
}

export function createBoundedPull(options: BoundedPullOptions): BoundedPull {
  return new JetStreamBoundedPull(options);
}

/** The request in flight: what it asked for, what came, and how much the server says is to come. */
interface PullRequest {
  readonly reply: string;
  readonly messages: number;
  readonly bytes: number;
  delivered: number;
  deliveredBytes: number;
  /** Messages the server will have sent for it in all, once it said the request is over. */
  expected: number | undefined;
  lastSeen: number;
}

const DEFAULT_EXPIRES_MS = 30_000;
const DEFAULT_HEARTBEAT_MS = 5_000;
/** After a request the server refused or cut short without reason, wait this long before the next. */
const RETRY_AFTER_MS = 1_000;
const ACK = new TextEncoder().encode("+ACK");
const NAK = new TextEncoder().encode("-NAK");
const WPI = new TextEncoder().encode("+WPI");
const PENDING_MESSAGES = "Nats-Pending-Messages";

class JetStreamBoundedPull implements BoundedPull {
  readonly #o: BoundedPullOptions;
  readonly #inbox: string;
  readonly #subject: string;
  readonly #expiresMs: number;
  readonly #heartbeatMs: number;
  readonly #sub: Subscription;
  readonly #queue: Delivery[] = [];
  #head = 0;
  #queuedBytes = 0;
  #minPullBytes: number;
  #request: PullRequest | undefined;
  #serial = 0;
  #retryAt = 0;
  /** The delivery sequence the next delivery must have (the consumer is this pull's own). */
  #nextDelivery = 1;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #watchdog: NodeJS.Timeout;
  // nats.js's status iterator has stop() (it is a listener of the connection until stopped), but
  // its type does not say so.
  readonly #status: AsyncIterable<Status> & { stop?: () => void };
  #ended: PullEndedError | undefined;
  #closed = false;

  constructor(options: BoundedPullOptions) {
    this.#o = options;
    this.#expiresMs = options.expiresMs ?? DEFAULT_EXPIRES_MS;
    this.#heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#minPullBytes = options.minPullBytes;
    // The connection's own inbox prefix by default: a user may subscribe to its own replies only.
    const connection = (options.nc as { options?: { inboxPrefix?: string } }).options;
    this.#inbox = createInbox(options.inboxPrefix ?? connection?.inboxPrefix);
    const api = options.apiPrefix ?? "$JS.API";
    this.#subject = `${api}.CONSUMER.MSG.NEXT.${options.stream}.${options.consumer}`;
    this.#sub = options.nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, msg) => {
        if (err) this.#end(0, `the pull's subscription failed: ${err.message}`, err);
        else this.#receive(msg);
      },
    });
    // A request the server lost (a restart, a leader change, a connection cut) never ends by
    // itself: after two missed heartbeats it is given up and the next one goes out.
    this.#watchdog = setInterval(() => this.#checkAlive(), this.#heartbeatMs);
    // After a reconnect the request in flight is likely gone with the old connection: ask again at
    // once (as nats.js's consume() does). If it was not, its deliveries still come to the same
    // inbox, in order. What was on its way when the connection went is lost: #receive notices.
    const status: AsyncIterable<Status> & { stop?: () => void } = options.nc.status();
    this.#status = status;
    void (async () => {
      for await (const s of status) {
        if (s.type === "reconnect" && this.#request) {
          this.#request = undefined;
          this.#pull();
        }
      }
    })().catch(() => undefined);
    this.#pull();
  }

  get queuedMessages(): number {
    return this.#queue.length - this.#head;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get ended(): PullEndedError | undefined {
    return this.#ended;
  }

  take(maxMessages: number, maxBytes: number): Delivery[] {
    const out: Delivery[] = [];
    let bytes = 0;
    while (this.#head < this.#queue.length && out.length < maxMessages) {
      const next = this.#queue[this.#head] as Delivery;
      if (out.length > 0 && bytes + next.size > maxBytes) break;
      out.push(next);
      bytes += next.size;
      this.#head += 1;
    }
    this.#queuedBytes -= bytes;
    this.#compact();
    this.#pull();
    return out;
  }

  close(): Delivery[] {
    this.#closed = true;
    clearInterval(this.#watchdog);
    clearTimeout(this.#retryTimer);
    this.#status.stop?.();
    this.#sub.unsubscribe();
    const rest = this.#queue.slice(this.#head);
    this.#queue.length = 0;
    this.#head = 0;
    this.#queuedBytes = 0;
    return rest;
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Sends the next request if none is in flight and enough is free to make it worth it. */
  #pull(): void {
    if (this.#closed || this.#ended || this.#request) return;
    const now = Date.now();
    if (now < this.#retryAt) {
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = undefined;
        this.#pull();
      }, this.#retryAt - now);
      return;
    }
    const { maxMessages, maxBytes, pullMessages } = this.#o;
    const messages = Math.min(pullMessages, maxMessages - this.queuedMessages);
    const bytes = Math.max(maxBytes, this.#minPullBytes) - this.#queuedBytes;
    // Small requests cost a round trip each: wait until a quarter of a pull's messages is free.
    if (messages < Math.max(1, Math.floor(pullMessages / 4)) || bytes < this.#minPullBytes) return;
    this.#serial += 1;
    const reply = `${this.#inbox}.${this.#serial}`;
    this.#request = {
      reply,
      messages,
      bytes,
      delivered: 0,
      deliveredBytes: 0,
      expected: undefined,
      lastSeen: now,
    };
    const request = {
      batch: messages,
      max_bytes: bytes,
      expires: nanos(this.#expiresMs),
      idle_heartbeat: nanos(this.#heartbeatMs),
    };
    try {
      this.#o.nc.publish(this.#subject, JSON.stringify(request), { reply });
    } catch (e) {
      // The connection is closed or draining: the worker is being stopped, or will be.
      this.#end(0, "cannot send a pull request", e);
    }
  }

  #receive(msg: Msg): void {
    if (this.#closed) return;
    if (msg.subject.startsWith(`${this.#inbox}.`)) {
      this.#onStatus(msg);
      return;
    }
    const reply = msg.reply ?? "";
    const delivery = new PulledMessage(msg, reply, sizeOf(msg, reply));
    if (delivery.deliverySeq > this.#nextDelivery) {
      // Deliveries the server made never came (a connection cut while they were on their way).
      // The server holds them as unacknowledged until their ack wait ends, and with
      // AckPolicy.All acknowledging this one, or any later one, would acknowledge them unseen.
      // Nothing after the gap is queued: the pull ends, and a new consumer starts again from
      // what is acknowledged.
      this.#end(
        0,
        `deliveries ${this.#nextDelivery} to ${delivery.deliverySeq - 1} of the consumer never arrived (lost on the way)`,
      );
      return;
    }
    if (delivery.deliverySeq > 0) this.#nextDelivery = delivery.deliverySeq + 1;
    this.#queue.push(delivery);
    this.#queuedBytes += delivery.size;
    const request = this.#request;
    if (request) {
      request.delivered += 1;
      request.deliveredBytes += delivery.size;
      request.lastSeen = Date.now();
      this.#settle(request);
    }
    this.#o.onDelivery?.(delivery);
  }

  /** A status from the server about one of this pull's requests (JetStream ADR-13). */
  #onStatus(msg: Msg): void {
    const code = msg.headers?.code ?? 0;
    const description = (msg.headers?.description ?? "").toLowerCase();
    if (
      code === 400 ||
      code === 503 ||
      (code === 409 &&
        (description.includes("consumer deleted") || description.includes("push based")))
    ) {
      // The consumer is gone (deleted, a new tenure took over) or cannot be pulled from.
      this.#end(code, `the server ended the pull: ${code} ${description || "no responders"}`);
      return;
    }
    const request = this.#request;
    if (!request || msg.subject !== request.reply) return; // about a request given up already
    request.lastSeen = Date.now();
    if (code === 100) return; // idle heartbeat: the request is alive
    // The request is over: expired (408), cut by bytes or completed (409), or ended by a leader
    // change. What it delivered may still be on its way (a replicated stream sends statuses
    // ahead of data): the pending count says how many of the requested messages did not go out.
    const header = msg.headers?.get(PENDING_MESSAGES) ?? "";
    const pending = header === "" ? Number.NaN : Number(header);
    request.expected = Number.isFinite(pending)
      ? Math.max(0, request.messages - pending)
      : request.delivered;
    if (request.expected === 0 && code === 409 && description.includes("exceeds maxbytes")) {
      // A message larger than the room asked for: ask for more from now on (never expected, as
      // the room is at least the server's max_payload).
      this.#minPullBytes = 2 * request.bytes;
    }
    if (request.expected === 0 && code !== 408 && !description.includes("completed")) {
      this.#retryAt = Date.now() + RETRY_AFTER_MS;
    }
    this.#settle(request);
  }

  /** Ends the request once it delivered all it will, and sends the next. */
  #settle(request: PullRequest): void {
    const done =
      request.delivered >= request.messages ||
      request.deliveredBytes >= request.bytes ||
      (request.expected !== undefined && request.delivered >= request.expected);
    if (!done || this.#request !== request) return;
    this.#request = undefined;
    this.#pull();
  }

  #checkAlive(): void {
    const request = this.#request;
    if (!request) {
      this.#pull();
      return;
    }
    if (Date.now() - request.lastSeen > 2 * this.#heartbeatMs) {
      this.#request = undefined;
      this.#pull();
    }
  }

  #end(code: number, message: string, cause?: unknown): void {
    if (this.#ended || this.#closed) return;
    this.#ended = new PullEndedError(code, message, cause === undefined ? undefined : { cause });
    this.#request = undefined;
    this.#o.onEnd?.(this.#ended);
  }
}

/** The server's count of a delivery's bytes (subject, reply, headers and data). */
function sizeOf(msg: Msg, reply: string): number {
  // nats.js knows the size of headers and data as received, but only exposes it untyped.
  const size = (msg as Msg & { size?: () => number }).size;
  if (typeof size === "function") return size.call(msg);
  return msg.subject.length + reply.length + msg.data.length;
}

class PulledMessage implements Delivery {
  readonly #msg: Msg;
  readonly #reply: string;
  readonly size: number;
  readonly seq: number;
  readonly deliverySeq: number;
  #done = false;

  constructor(msg: Msg, reply: string, size: number) {
    this.#msg = msg;
    this.#reply = reply;
    this.size = size;
    const { stream, delivery } = ackSequences(reply);
    this.seq = stream;
    this.deliverySeq = delivery;
  }

  get subject(): string {
    return this.#msg.subject;
  }

  get data(): Uint8Array {
    return this.#msg.data;
  }

  header(name: string): string | undefined {
    return this.#msg.headers?.get(name) || undefined;
  }

  ack(): void {
    this.#respond(ACK, true);
  }

  nak(delayMs?: number): void {
    const body =
      delayMs === undefined
        ? NAK
        : new TextEncoder().encode(`-NAK ${JSON.stringify({ delay: nanos(delayMs) })}`);
    this.#respond(body, true);
  }

  working(): void {
    this.#respond(WPI, false);
  }

  #respond(body: Uint8Array, final: boolean): void {
    if (this.#done || this.#reply === "") return;
    this.#done = final;
    this.#msg.respond(body);
  }
}

/**
 * The stream and delivery sequences in a JetStream ack subject: `$JS.ACK.<stream>.<consumer>.
 * <delivered>.<stream seq>.<consumer seq>.<time>.<pending>`, or with `<domain>.<account hash>`
 * after `ACK` and a random token at the end. 0 for what is not there.
 */
function ackSequences(reply: string): { stream: number; delivery: number } {
  const tokens = reply.split(".");
  const at = tokens.length === 9 ? 5 : 7;
  const number = (token: string | undefined) => {
    const n = Number(token);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  };
  return { stream: number(tokens[at]), delivery: number(tokens[at + 1]) };
}
