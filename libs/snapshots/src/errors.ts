/** Base of every error the snapshot store throws. */
export class SnapshotStoreError extends Error {
  override name = "SnapshotStoreError";
}

/** NATS or JetStream cannot be reached or did not answer in time; retrying later may succeed. */
export class SnapshotStoreUnavailableError extends SnapshotStoreError {
  override name = "SnapshotStoreUnavailableError";
}

export function isSnapshotStoreError(e: unknown): e is SnapshotStoreError {
  return e instanceof SnapshotStoreError;
}
export function isSnapshotStoreUnavailableError(e: unknown): e is SnapshotStoreUnavailableError {
  return e instanceof SnapshotStoreUnavailableError;
}
