/**
 * `work`, or the signal's reason as soon as it is aborted: for store calls that take no signal
 * (a direct get, bounded by the store's own timeout), so that a cancelled call or a passed deadline
 * is answered at once. `work` then settles unobserved. (One listener and one promise: this wraps
 * every unary call.)
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort);
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
