import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "@ctx/config";
import { correlationOf, type ErrorClassifier } from "@ctx/rpc";

/**
 * The error edge for server streams: `@ctx/rpc`'s error interceptor sees what a handler throws
 * before its first message, not what a stream throws while it is read (WatchContext fails after
 * its first answer, or in its generator's first step). This applies the same classifier there;
 * unknown errors are logged and answered INTERNAL, as for unary calls.
 */
export function streamErrorInterceptor(classify: ErrorClassifier, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) return res;
    const method = req.method.name;
    const messages = res.message;
    async function* classified() {
      try {
        yield* messages;
      } catch (e) {
        if (e instanceof ConnectError) throw e;
        const known = classify(e);
        if (known) throw known;
        const { correlationId } = correlationOf({ values: req.contextValues });
        logger.error({ err: e, method, correlationId }, "unexpected error in a stream");
        throw new ConnectError("internal error; the server log has the details", Code.Internal);
      }
    }
    return { ...res, message: classified() };
  };
}
