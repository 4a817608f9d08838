import type { Interceptor } from "@connectrpc/connect";

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
 * A waiting call is not watched for cancellation: it waits a few turns at most, and its handler
 * sees the aborted signal when it starts.
 */
export function turnBudgetInterceptor(callsPerTurn: number): Interceptor {
  if (!Number.isInteger(callsPerTurn) || callsPerTurn < 0) {
    throw new RangeError(`calls per turn must be a whole number ≥ 0, not ${callsPerTurn}`);
  }
  if (callsPerTurn === 0) return (next) => next;
  const budget = new TurnBudget(callsPerTurn);
  return (next) => (req) => {
    const admitted = budget.enter();
    return admitted === undefined ? next(req) : admitted.then(() => next(req));
  };
}

class TurnBudget {
  readonly #perTurn: number;
  /** Calls started since the last turn ended. */
  #started = 0;
  readonly #waiting: (() => void)[] = [];
  /** Whether the end of this turn is marked (a `setImmediate` is pending). */
  #marked = false;

  constructor(perTurn: number) {
    this.#perTurn = perTurn;
  }

  /** undefined: start now. Otherwise start when the promise resolves (in a later turn). */
  enter(): Promise<void> | undefined {
    this.#markTurnEnd();
    if (this.#started < this.#perTurn && this.#waiting.length === 0) {
      this.#started++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
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
    const group = this.#waiting.splice(0, this.#perTurn);
    this.#started = group.length;
    if (group.length > 0) this.#markTurnEnd();
    for (const start of group) start();
  }
}
