import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { type ContextServiceError, isContextServiceError } from "./errors.ts";
import type { ContextQueryService, GetContextResponse } from "./gen/context/v1/query_service_pb.js";
import { backoffDelay, type RetryPolicy } from "./retry.ts";

export interface WatchOptions {
  /**
   * The first version to see: earlier ones the stream no longer sends are read one by one
   * (GetContextAtVersion). Default: start with the story's current state.
   */
  readonly fromVersion?: number;
  /** Ends the watch (the iterator finishes without an error). */
  readonly signal?: AbortSignal;
  /** Reconnects in a row without a new state before the watch gives up (default 8 attempts). */
  readonly retry?: RetryPolicy;
}

/**
 * Whether a watch that failed this way is worth opening again: the service or the connection went
 * away (UNAVAILABLE: a dropped connection is reported as one, see toCallError), or the service
 * ended a watch that fell behind (RESOURCE_EXHAUSTED without x-limit; with x-limit it is the limit
 * of open watches, which another try does not lift).
 */
export function isResumable(e: unknown): e is ContextServiceError {
  if (!isContextServiceError(e)) return false;
  if (e.code === Code.Unavailable) return true;
  return e.code === Code.ResourceExhausted && !e.metadata.has("x-limit");
}

/**
 * WatchContext streams whole states. After a reconnect the first state may be one the caller has
 * seen (skipped) or several versions ahead (the versions between are read at their version), so the
 * caller sees each version once, in order.
 */
export async function* watchStory(
  queries: Client<typeof ContextQueryService>,
  storyId: string,
  options: WatchOptions,
): AsyncGenerator<GetContextResponse, void> {
  const retry = options.retry ?? {};
  const maxAttempts = Math.max(1, retry.maxAttempts ?? 8);
  const controller = new AbortController();
  const callerSignal = options.signal;
  const onAbort = () => controller.abort(callerSignal?.reason);
  callerSignal?.addEventListener("abort", onAbort, { once: true });
  if (callerSignal?.aborted) controller.abort(callerSignal.reason);
  const { signal } = controller;
  let last = options.fromVersion === undefined ? undefined : Math.max(0, options.fromVersion - 1);
  let failures = 0;
  let lastError: unknown;
  try {
    while (!signal.aborted) {
      try {
        for await (const answer of queries.watchContext({ storyId }, { signal })) {
          const state = answer.state;
          if (state === undefined) continue;
          failures = 0;
          if (last !== undefined && state.version <= last) continue;
          if (last !== undefined) {
            for (let v = last + 1; v < state.version; v++) {
              // The client's queries retry on UNAVAILABLE themselves.
              yield await queries.getContextAtVersion({ storyId, version: v }, { signal });
              last = v;
            }
          }
          yield state;
          last = state.version;
        }
        // A watch never ends by itself: an end without an error is a connection that closed.
      } catch (e) {
        if (signal.aborted) return;
        if (!isResumable(e)) throw e;
        lastError = e;
      }
      failures++;
      if (failures >= maxAttempts) {
        throw (
          lastError ?? new Error(`watch ${storyId}: the stream kept closing (${failures} attempts)`)
        );
      }
      try {
        await sleep(backoffDelay(retry, failures, Math.random), signal);
      } catch {
        return;
      }
    }
  } finally {
    callerSignal?.removeEventListener("abort", onAbort);
    controller.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
