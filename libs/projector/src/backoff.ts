import { untilAborted } from "@ctx/config";
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  type IBackoff,
  retry,
  wrap,
} from "cockatiel";

/**
 * How a reader of the stream waits out an outage of what it writes to (a read model, the snapshot
 * stream): exponential back-off with jitter, and a circuit breaker that stops calling a store that
 * failed several times in a row for a while. One policy for the projectors, their set-up and the
 * snapshotter, so every consumer of the stream behaves the same under an outage.
 */
export interface BackoffSettings {
  /** First retry delay (default 100 ms); grows about twofold per retry, with jitter, up to maxDelayMs. */
  readonly initialDelayMs?: number;
  /** Longest wait between two retries (default 10 s). */
  readonly maxDelayMs?: number;
  /** How long the circuit stays open after 5 failures in a row (default 5 s). */
  readonly halfOpenAfterMs?: number;
}

export const defaultBackoffSettings = {
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  halfOpenAfterMs: 5_000,
} as const satisfies Required<BackoffSettings>;

/** Failures in a row that open the circuit. */
const BREAKER_THRESHOLD = 5;

/** The delays between retries: exponential with (decorrelated) jitter, capped, as configured. */
export function exponentialBackoff(settings: BackoffSettings = {}): ExponentialBackoff<unknown> {
  return new ExponentialBackoff({
    initialDelay: settings.initialDelayMs ?? defaultBackoffSettings.initialDelayMs,
    maxDelay: settings.maxDelayMs ?? defaultBackoffSettings.maxDelayMs,
  });
}

/**
 * The policy's delays one after another, for a loop that retries by itself (e.g. reopening a
 * consumer): `next()` is the wait before the next attempt, `reset()` after a success.
 */
export interface BackoffDelays {
  next(): number;
  reset(): void;
}

export function backoffDelays(settings: BackoffSettings = {}): BackoffDelays {
  const factory = exponentialBackoff(settings);
  let current: IBackoff<unknown> | undefined;
  return {
    next() {
      current = current ? current.next(undefined) : factory.next();
      return current.duration;
    },
    reset() {
      current = undefined;
    },
  };
}

export interface OutageRetryOptions {
  readonly settings?: BackoffSettings;
  /** Errors that mean "the store is unavailable": retried. Any other error is thrown at once. */
  readonly isOutage: (e: unknown) => boolean;
  /** Called before each wait, with the delay chosen and the failure (or the open circuit). */
  readonly onRetry?: (delayMs: number, error: unknown) => void;
}

/** Runs calls to a store, retrying outages forever with the shared back-off behind a breaker. */
export interface OutageRetry {
  /**
   * Runs `fn` until it succeeds or fails with something other than an outage. With a signal, an
   * abort ends the wait at once and rejects with the signal's reason; `fn` is not called again.
   */
  execute<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

export function outageRetry(options: OutageRetryOptions): OutageRetry {
  const settings = options.settings ?? {};
  const outage = handleWhen(options.isOutage);
  const breaker = circuitBreaker(outage, {
    halfOpenAfter: settings.halfOpenAfterMs ?? defaultBackoffSettings.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(BREAKER_THRESHOLD),
  });
  const retries = retry(
    handleWhen((e) => options.isOutage(e) || e instanceof BrokenCircuitError),
    { maxAttempts: Number.POSITIVE_INFINITY, backoff: exponentialBackoff(settings) },
  );
  if (options.onRetry) {
    const onRetry = options.onRetry;
    retries.onRetry((event) => onRetry(event.delay, "error" in event ? event.error : undefined));
  }
  const policy = wrap(retries, breaker);
  function execute<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (!signal) return policy.execute(() => fn());
    signal.throwIfAborted();
    // cockatiel's wait between retries is not abortable: the abort ends ours, and the attempt it
    // would make after its wait finds the signal aborted and calls nothing.
    const run = policy.execute(() => {
      signal.throwIfAborted();
      return fn();
    }, signal);
    return untilAborted(run, signal);
  }
  return { execute };
}
