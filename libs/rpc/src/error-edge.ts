import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "@ctx/config";
import { correlationOf } from "./correlation.ts";

/**
 * Turns an error a service threw into the ConnectError its callers should see, or returns undefined
 * for errors it does not know (which become INTERNAL). Each service passes one; this is the only place
 * where errors become status codes.
 */
export type ErrorClassifier = (error: unknown) => ConnectError | undefined;

/** Applies the service's ErrorClassifier to every failed call; unknown errors are logged as INTERNAL. */
export function errorInterceptor(classify: ErrorClassifier, logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      const known = classify(e);
      if (known) throw known;
      // The call's effective id (the one generated when the caller sent none, echoed back to it).
      const { correlationId } = correlationOf({ values: req.contextValues });
      logger.error({ err: e, method: req.method.name, correlationId }, "unexpected error");
      throw new ConnectError(
        "internal error; the server log has the details",
        Code.Internal,
        undefined,
        undefined,
        e,
      );
    }
  };
}
