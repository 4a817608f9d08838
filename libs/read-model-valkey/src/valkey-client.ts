import { type RedisOptions, Valkey } from "iovalkey";

/**
 * Options under which a call fails within a few seconds when Valkey is down, instead of waiting in
 * the offline queue for a reconnection: the projector backs off and retries on its own terms.
 */
const failFast: RedisOptions = {
  // A call waiting for a connection is rejected after the second failed reconnection attempt:
  // within about two seconds with reconnections at most a second apart.
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  connectTimeout: 2_000,
  // A server that accepts the connection but does not answer (stopped, swapping).
  commandTimeout: 10_000,
};

/**
 * A Valkey client for the read model, configured to fail fast during an outage (options given
 * here win). The caller owns it: `quit()` it when done; the projection and reader never close it.
 */
export function createValkeyClient(url: string, options: RedisOptions = {}): Valkey {
  return new Valkey(url, { ...failFast, ...options });
}

/**
 * @throws TypeError when the client would keep a call waiting forever during an outage (unlimited
 *   retries with the offline queue on): the projector could then never back off.
 */
export function assertFailsFast(valkey: Valkey): void {
  const { maxRetriesPerRequest, enableOfflineQueue } = valkey.options;
  if (maxRetriesPerRequest === null && enableOfflineQueue !== false) {
    throw new TypeError(
      "the Valkey client retries forever (maxRetriesPerRequest: null): set maxRetriesPerRequest or enableOfflineQueue: false, or use createValkeyClient",
    );
  }
}
