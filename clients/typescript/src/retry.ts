import { Code } from "@connectrpc/connect";
import { isContextServiceError } from "./errors.ts";

/**
 * How a call is repeated when the service could not answer it (UNAVAILABLE) or its attempt timed
 * out (DEADLINE_EXCEEDED). Safe for commands because every attempt carries the same command_id:
 * the service appends a command once and answers a repeat with the first result (deduplicated).
 */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 4; 1 turns retries off). */
  readonly maxAttempts?: number;
  /** Pause before the second attempt in ms (default 100); it doubles each time. */
  readonly initialDelayMs?: number;
  /** The longest pause in ms (default 2000). */
  readonly maxDelayMs?: number;
  /** Deadline of one attempt in ms (default none: only the caller's timeoutMs or signal). */
  readonly attemptTimeoutMs?: number;
}

/** The codes an attempt is repeated on: the request may not have been handled, or only once. */
export const RETRYABLE_CODES: readonly Code[] = [Code.Unavailable, Code.DeadlineExceeded];

export interface RetryOptions {
  /** The caller's signal: no further attempt, no further pause once it is aborted. */
  readonly signal?: AbortSignal | undefined;
  /** The caller's deadline for all attempts together, in ms from now. */
  readonly timeoutMs?: number | undefined;
  /** Randomness in [0, 1) for the jitter; Math.random unless a test fixes it. */
  readonly random?: () => number;
  /** Waits ms, or rejects with the signal's reason; a timer unless a test replaces it. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  /** The clock, in ms; Date.now unless a test replaces it. */
  readonly now?: () => number;
}

/**
 * What one attempt is given: the caller's signal, and the time it has (what is left of the
 * caller's deadline, at most the policy's attemptTimeoutMs), to pass on as the call's timeout.
 */
export interface Attempt {
  readonly signal: AbortSignal | undefined;
  readonly timeoutMs: number | undefined;
}

const defaults = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 2000 } as const;

/**
 * The pause before attempt `attempt + 1` (attempt counts from 1): "full jitter", a random time up
 * to the exponential bound, so clients that failed together do not come back together.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number): number {
  const initial = policy.initialDelayMs ?? defaults.initialDelayMs;
  const max = policy.maxDelayMs ?? defaults.maxDelayMs;
  const bound = Math.min(max, initial * 2 ** (attempt - 1));
  return Math.floor(random() * bound);
}

/**
 * Runs `attempt` until it succeeds, fails with a code not in RETRYABLE_CODES, the attempts run
 * out, the caller's signal aborts or the caller's deadline would pass during the pause; throws the
 * last error (or the signal's reason when it aborted during a pause).
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (call: Attempt, attemptNo: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = Math.max(1, policy.maxAttempts ?? defaults.maxAttempts);
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? Date.now;
  const { signal } = options;
  const deadline = options.timeoutMs === undefined ? undefined : now() + options.timeoutMs;
  for (let n = 1; ; n++) {
    const left = deadline === undefined ? undefined : Math.max(1, deadline - now());
    const timeoutMs =
      left === undefined
        ? policy.attemptTimeoutMs
        : Math.min(left, policy.attemptTimeoutMs ?? left);
    let delay: number;
    try {
      return await attempt({ signal, timeoutMs }, n);
    } catch (e) {
      if (n >= maxAttempts || signal?.aborted === true || !isRetryable(e)) throw e;
      delay = backoffDelay(policy, n, random);
      if (deadline !== undefined && now() + delay >= deadline) throw e;
    }
    await sleep(delay, signal);
  }
}

export function isRetryable(e: unknown): boolean {
  return isContextServiceError(e) && RETRYABLE_CODES.includes(e.code);
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
