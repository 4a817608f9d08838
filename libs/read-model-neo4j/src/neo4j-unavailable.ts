import { StoreUnavailableError } from "@ctx/projector";
import neo4j from "neo4j-driver";

// Socket errors that mean "the server is not there (now)", wherever they appear in a cause chain.
const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ETIMEDOUT",
]);

// The pool's own give-up carries no code (N/A), only this message: no connection could be opened or
// freed in `connectionAcquisitionTimeout`. A frozen server (GC pause, stopped VM) looks like this, as
// TCP still connects but Bolt never answers; so does a pool exhausted by slow queries.
const acquisitionTimedOut = /^Connection acquisition timed out\b/;

/**
 * True for an error that says Neo4j cannot be reached or cannot serve right now: the driver's
 * ServiceUnavailable and SessionExpired, any error the driver classes as retryable (transient
 * errors such as deadlocks or a database that is starting, which outlived the driver's own
 * retries), a connection acquisition that timed out, and socket errors.
 */
export function isNeo4jUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; depth += 1) {
    if (e instanceof neo4j.Neo4jError) {
      if (e.code === neo4j.error.SERVICE_UNAVAILABLE || e.code === neo4j.error.SESSION_EXPIRED) {
        return true;
      }
      if (neo4j.isRetryableError(e)) return true;
      if (acquisitionTimedOut.test(e.message)) return true;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && networkCodes.has(code)) return true;
    e = e.cause;
  }
  return false;
}

/** Runs `work`, turning an outage into StoreUnavailableError (with the driver's error as cause). */
export async function unavailableAsStoreError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (isNeo4jUnavailable(e)) {
      throw new StoreUnavailableError(
        `Neo4j is unavailable: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    throw e;
  }
}
