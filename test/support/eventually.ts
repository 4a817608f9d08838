export interface EventuallyOptions {
  /** Give up after this many milliseconds (default 10 s). */
  readonly timeout?: number;
  /** Pause between attempts in milliseconds (default 50). */
  readonly interval?: number;
}

/**
 * Polls until the check passes (returns without throwing) and returns its result; rethrows the last
 * failure when the time is up. Tests wait for conditions with this, never with fixed sleeps.
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<T> {
  const timeout = options.timeout ?? 10_000;
  const interval = options.interval ?? 50;
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
