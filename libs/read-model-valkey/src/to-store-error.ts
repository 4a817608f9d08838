import { StoreUnavailableError } from "@ctx/projector";

// iovalkey's own messages for a command that never got an answer.
const connectionMessages = new Set([
  "Connection is closed.",
  "Command timed out",
  "Stream isn't writeable and enableOfflineQueue options is false",
]);
// Names iovalkey (redis-errors) gives a command aborted by a lost connection or too many retries.
const abortNames = new Set(["AbortError", "InterruptError", "MaxRetriesPerRequestError"]);
const socketCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
// Server replies that mean "not now" rather than "never": loading a dump, a script running too
// long, a replica or a failover, out of memory.
const transientReply = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS) /;

/** Whether an error says the server could not be reached or cannot answer for now. */
export function isTransientValkeyError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (connectionMessages.has(e.message) || abortNames.has(e.name)) return true;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && socketCodes.has(code)) return true;
  return e.name === "ReplyError" && transientReply.test(e.message);
}

/**
 * The error a caller of the read model sees: StoreUnavailableError (retry later) for an outage,
 * the error itself for anything else.
 */
export function toStoreError(e: unknown, doing: string): unknown {
  if (e instanceof StoreUnavailableError || !isTransientValkeyError(e)) return e;
  const reason = e instanceof Error ? e.message : String(e);
  return new StoreUnavailableError(`Valkey is unavailable while ${doing}: ${reason}`, { cause: e });
}
