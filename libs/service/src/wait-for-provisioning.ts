import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@ctx/config";

export interface WaitForProvisioningOptions {
  /** What is waited for, in words, for the log ("stream CONTEXT_EVENTS"). */
  readonly what: string;
  readonly logger: Logger;
  /** Stops waiting (the process is shutting down): rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** First wait (default 500 ms); doubles per attempt up to maxDelayMs (default 15 s). */
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
}

/**
 * Runs `check` until it passes, waiting longer after each failure and logging why. The services
 * check the streams and buckets they use instead of creating them (their NATS users may not): an
 * operator creates them with `ctx provision`, before or after the services start, so a Kubernetes
 * provisioning Job can run in any order. Meanwhile the process stays alive and not ready.
 */
export async function waitForProvisioning<T>(
  check: () => Promise<T>,
  options: WaitForProvisioningOptions,
): Promise<T> {
  const max = options.maxDelayMs ?? 15_000;
  let delay = options.initialDelayMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      const result = await check();
      if (attempt > 1) options.logger.info({ what: options.what }, "provisioned; going on");
      return result;
    } catch (e) {
      options.logger.warn(
        { what: options.what, err: e, retryInMs: delay, attempt },
        `${options.what} is not ready (run 'ctx provision' with the operator's credentials); waiting`,
      );
    }
    await sleep(delay, undefined, options.signal ? { signal: options.signal } : {});
    delay = Math.min(max, delay * 2);
  }
}
