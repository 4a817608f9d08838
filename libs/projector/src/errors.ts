import type { StoryId } from "@ctx/domain";

/** Base of every error the projector runtime and its read models throw. */
export class ProjectorError extends Error {
  override name = "ProjectorError";
}

/** The read model's store cannot be reached; retry later, nothing was written. */
export class StoreUnavailableError extends ProjectorError {
  override name = "StoreUnavailableError";
}

/** The model's version of a story is not what the write expected: someone else wrote it. */
export class VersionConflictError extends ProjectorError {
  override name = "VersionConflictError";
  readonly storyId: StoryId;

  constructor(storyId: StoryId, message: string, options?: ErrorOptions) {
    super(message, options);
    this.storyId = storyId;
  }
}

/**
 * A partition's pull from its consumer ended for good (the consumer was deleted, the server refused
 * the request): the worker opens a new consumer.
 */
export class PullEndedError extends ProjectorError {
  override name = "PullEndedError";
  /** The JetStream status code that ended it (409, 400, 503), 0 when none. */
  readonly code: number;

  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A listing of parked events lost messages on the way too often to be trusted as complete. */
export class ParkedListingError extends ProjectorError {
  override name = "ParkedListingError";
}

export function isProjectorError(e: unknown): e is ProjectorError {
  return e instanceof ProjectorError;
}
export function isStoreUnavailableError(e: unknown): e is StoreUnavailableError {
  return e instanceof StoreUnavailableError;
}
export function isVersionConflictError(e: unknown): e is VersionConflictError {
  return e instanceof VersionConflictError;
}
export function isPullEndedError(e: unknown): e is PullEndedError {
  return e instanceof PullEndedError;
}
export function isParkedListingError(e: unknown): e is ParkedListingError {
  return e instanceof ParkedListingError;
}
