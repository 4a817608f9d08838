import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import type { Logger } from "@ctx/config";
import { correlationOf } from "./correlation.ts";
import { type ErrorClassifier, toConnectError } from "./errors.ts";
import type { ServerMetrics } from "./server-metrics.ts";

export type { ErrorClassifier } from "./errors.ts";

/**
 * The error edge: every error a call fails with, from a unary handler or from a stream while it is
 * read (a watch failing after its first answer), becomes its status code through `toConnectError`,
 * the one mapping. Unknown errors are logged with the method and correlation id and answered
 * INTERNAL without details; the cause stays on the error.
 */
export function errorInterceptor(
  classify: ErrorClassifier,
  logger: Logger,
  metrics?: ServerMetrics,
): Interceptor {
  return (next) => async (req) => {
    const fail = (e: unknown, inStream: boolean): never => {
      const { error, reason } = toConnectError(e, classify, (cause) => {
        // The call's effective id (the one generated when the caller sent none, echoed back to it).
        const { correlationId } = correlationOf({ values: req.contextValues });
        logger.error(
          { err: cause, method: req.method.name, correlationId },
          inStream ? "unexpected error in a stream" : "unexpected error",
        );
      });
      if (reason !== undefined) metrics?.refused(reason);
      throw error;
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (e) {
      return fail(e, false);
    }
    if (!res.stream) return res;
    return { ...res, message: classified(res.message, (e) => fail(e, true)) } as StreamResponse;
  };
}

async function* classified<T>(
  messages: AsyncIterable<T>,
  fail: (e: unknown) => never,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (e) {
    fail(e);
  }
}
