import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { overloaded } from "./errors.ts";

export interface TurnBudgetOptions {
  /** Calls whose handlers start per event-loop turn; 0 lets every call start at once. */
  readonly callsPerTurn: number;
  /** Calls that may wait for a turn; a call beyond them is shed (UNAVAILABLE). */
  readonly maxQueued: number;
  /** Told of every call shed. */
  readonly onShed?: () => void;
}

/**
 * Lets at most `callsPerTurn` calls start their handlers per event-loop turn; the others wait, in
 * order of arrival, for the next turns. 0 lets every call start at once.
 *
 * Why: one read from an HTTP/2 connection can hold hundreds of requests, and Node handles all of
 * them before it looks at any socket again. Unbudgeted, a burst of 200 commands took the service
 * about 18 ms of decoding, deciding and hashing while the answers to the first ones (JetStream acks)
 * waited unread; then the acks came back together, the responses left together, and the client's
 * next requests arrived together: the work moved in one wave, and between waves the service sat
 * idle, waiting for the round trip. Starting a few calls per turn lets the loop read acks and send
 * responses between groups, so the round trips overlap the work. (The idea of Tokio's cooperative
 * budget and Netty's messages-per-read.) See docs/BENCHMARKS.md for what it changed.
 *
 * Only unary calls take turns: a stream's start is one read, and streams have caps of their own.
 *
 * The queue is bounded: when `maxQueued` calls wait, the next is shed with UNAVAILABLE at once (a
 * server that has that much to start is behind; a client should back off or go elsewhere, and a
 * queue that grows without end only makes every call late and the heap large). A waiting call
 * whose signal is aborted (the client cancelled, its deadline passed) never starts: it fails with
 * the signal's reason when its turn comes, without taking the turn, or as soon as the queue is
 * full, giving its place to the call that found it full. (Not through an abort listener per
 * waiting call: at 256 calls in flight most calls wait, and adding and removing one cost about
 * 1 µs per call.)
 */
export function turnBudgetInterceptor(options: TurnBudgetOptions): Interceptor {
  const { callsPerTurn, maxQueued, onShed } = options;
  if (!Number.isInteger(callsPerTurn) || callsPerTurn < 0) {
    throw new RangeError(`calls per turn must be a whole number ≥ 0, not ${callsPerTurn}`);
  }
  if (!Number.isInteger(maxQueued) || maxQueued < 1) {
    throw new RangeError(`the queue must hold a whole number ≥ 1 of calls, not ${maxQueued}`);
  }
  if (callsPerTurn === 0) return (next) => next;
  const budget = new TurnBudget(callsPerTurn, maxQueued, onShed);
  return (next) => (req) => {
    // Streams (WatchContext) are long-lived and bounded by their own caps; a burst of them shed
    // here and retried at once kept Node's HTTP/2 server from closing the shed streams fast enough
    // for the streams that followed (see docs/OPERATIONS.md, Limits).
    if (req.method.methodKind !== "unary") return next(req);
    const admitted = budget.enter(req.signal);
    return admitted === undefined ? next(req) : admitted.then(() => next(req));
  };
}

/** A call waiting for its turn. */
interface Waiting {
  readonly start: () => void;
  readonly fail: (reason: unknown) => void;
  readonly signal: AbortSignal;
}

class TurnBudget {
  readonly #perTurn: number;
  readonly #maxQueued: number;
  readonly #onShed: (() => void) | undefined;
  /** Calls started since the last turn ended. */
  #started = 0;
  readonly #waiting: Waiting[] = [];
  /** Whether the end of this turn is marked (a `setImmediate` is pending). */
  #marked = false;

  constructor(perTurn: number, maxQueued: number, onShed: (() => void) | undefined) {
    this.#perTurn = perTurn;
    this.#maxQueued = maxQueued;
    this.#onShed = onShed;
  }

  /** undefined: start now. Otherwise start when the promise resolves (in a later turn). */
  enter(signal: AbortSignal): Promise<void> | undefined {
    this.#markTurnEnd();
    if (this.#started < this.#perTurn && this.#waiting.length === 0) {
      this.#started++;
      return undefined;
    }
    if (signal.aborted) return Promise.reject(ConnectError.from(signal.reason));
    if (this.#waiting.length >= this.#maxQueued && this.#dropAborted() === 0) {
      this.#onShed?.();
      return Promise.reject(overloaded(this.#waiting.length));
    }
    return new Promise((resolve, reject) => {
      this.#waiting.push({ start: resolve, fail: reject, signal });
    });
  }

  /**
   * Fails the waiting calls whose signal is aborted; returns how many left the queue. Only when the
   * queue is full: a look at every waiting call (about 4.5 µs for 1,000 of them) on each call that
   * arrives then, in place of a listener on every call that waits.
   */
  #dropAborted(): number {
    const before = this.#waiting.length;
    let kept = 0;
    for (const w of this.#waiting) {
      if (w.signal.aborted) w.fail(ConnectError.from(w.signal.reason));
      else this.#waiting[kept++] = w;
    }
    this.#waiting.length = kept;
    return before - kept;
  }

  #markTurnEnd(): void {
    if (this.#marked) return;
    this.#marked = true;
    setImmediate(() => this.#nextTurn());
  }

  /**
   * Runs in the check phase, after the turn's I/O: the next group starts, and counts against the
   * turn that follows. (An immediate scheduled now runs one turn later, after the next poll.)
   */
  #nextTurn(): void {
    this.#marked = false;
    // The next calls that are still wanted; an aborted one fails without taking a turn.
    const group: Waiting[] = [];
    let taken = 0;
    while (group.length < this.#perTurn && taken < this.#waiting.length) {
      const w = this.#waiting[taken++] as Waiting;
      if (w.signal.aborted) w.fail(ConnectError.from(w.signal.reason));
      else group.push(w);
    }
    this.#waiting.splice(0, taken);
    this.#started = group.length;
    if (group.length > 0) this.#markTurnEnd();
    for (const w of group) w.start();
  }
}
