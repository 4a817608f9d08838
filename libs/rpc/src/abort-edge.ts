import { ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";

/**
 * Ends a call as soon as its signal is aborted (its deadline passed, the server's longest deadline
 * passed, the request stopped arriving), with the signal's reason, whether or not the handler
 * notices: a handler that ignores its signal would otherwise hold the call, and its caller, until it
 * is done. The handler's work goes on unwatched; handlers that honour their signal stop it.
 *
 * For Connect's handler (gRPC-Web, Connect, streams, compressed or JSON gRPC); the unary gRPC fast
 * path answers an expired call itself, without a promise and a listener per call.
 */
export function abortInterceptor(): Interceptor {
  return (next) => (req) => {
    const signal = req.signal;
    if (signal.aborted) return Promise.reject(reasonOf(signal));
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(reasonOf(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      next(req).then(
        (res) => {
          signal.removeEventListener("abort", onAbort);
          resolve(
            res.stream
              ? ({ ...res, message: untilAborted(res.message, signal) } as StreamResponse)
              : res,
          );
        },
        (e: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  };
}

function reasonOf(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason);
}

/** The messages of a stream, failing with the signal's reason as soon as it is aborted. */
function untilAborted<T>(messages: AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = messages[Symbol.asyncIterator]();
      let rejectPending: ((e: unknown) => void) | undefined;
      const onAbort = () => rejectPending?.(reasonOf(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      const stop = () => signal.removeEventListener("abort", onAbort);
      return {
        next() {
          if (signal.aborted) {
            stop();
            // The handler's generator is left to notice its signal; it is not waited for.
            void it.return?.().catch(() => undefined);
            return Promise.reject(reasonOf(signal));
          }
          return new Promise<IteratorResult<T>>((resolve, reject) => {
            rejectPending = reject;
            it.next().then(
              (r) => {
                rejectPending = undefined;
                if (r.done) stop();
                resolve(r);
              },
              (e: unknown) => {
                rejectPending = undefined;
                stop();
                reject(e);
              },
            );
          });
        },
        // A generator busy in a step (waiting for something that may never come) would make its
        // caller wait for return() and throw() too: then they are sent on and not waited for.
        return(value?: unknown) {
          stop();
          if (rejectPending === undefined && !signal.aborted) {
            return it.return?.(value) ?? Promise.resolve({ done: true, value: undefined });
          }
          void it.return?.(value)?.catch(() => undefined);
          return Promise.resolve({ done: true, value: undefined });
        },
        throw(e?: unknown) {
          stop();
          if (rejectPending === undefined && !signal.aborted) {
            return it.throw?.(e) ?? Promise.reject(e);
          }
          void it.throw?.(e)?.catch(() => undefined);
          return Promise.reject(e);
        },
      };
    },
  };
}
