import { Code, ConnectError } from "@connectrpc/connect";
import { isStoryNotFoundError } from "@ctx/domain";
import {
  isEventReadError,
  isEventStoreUnavailableError,
  isUnreadableEventError,
} from "@ctx/event-store";
import { isStoreUnavailableError } from "@ctx/projector";
import type { ErrorClassifier } from "@ctx/rpc";
import { isSnapshotStoreUnavailableError } from "@ctx/snapshots";
import {
  isInvalidQueryError,
  isShuttingDownError,
  isUnknownEntityError,
  isUnknownStoryError,
  isVersionOutOfRangeError,
  isWatchLaggingError,
  isWatchLimitError,
} from "../errors.ts";

/** The query side's errors as gRPC status codes (the only place this mapping is made). */
export const classifyQueryError: ErrorClassifier = (e) => {
  if (isUnknownStoryError(e) || isUnknownEntityError(e) || isStoryNotFoundError(e)) {
    return new ConnectError(e.message, Code.NotFound);
  }
  if (isVersionOutOfRangeError(e)) {
    return new ConnectError(e.message, Code.OutOfRange, {
      "x-current-version": String(e.currentVersion),
    });
  }
  if (isInvalidQueryError(e)) {
    return new ConnectError(e.message, Code.InvalidArgument, { "x-field": e.field });
  }
  if (isShuttingDownError(e)) return new ConnectError(e.message, Code.Unavailable);
  if (isWatchLimitError(e)) {
    return new ConnectError(e.message, Code.ResourceExhausted, { "x-limit": e.limit });
  }
  if (isWatchLaggingError(e)) return new ConnectError(e.message, Code.ResourceExhausted);
  if (
    isEventStoreUnavailableError(e) ||
    isSnapshotStoreUnavailableError(e) ||
    isStoreUnavailableError(e)
  ) {
    return new ConnectError(`${e.message}; retry later`, Code.Unavailable);
  }
  if (isEventReadError(e)) {
    // An event this release cannot bring to its current shape (no upcaster reads its version, or
    // one refused it): the story cannot be answered until an upcaster is deployed; never guessed.
    // A message that is no valid event of the story (corrupt, another story's envelope, a broken
    // version sequence): nothing a retry or the caller can fix, until an operator sets it aside.
    // The trailers say which message.
    const code = isUnreadableEventError(e) ? Code.FailedPrecondition : Code.DataLoss;
    return new ConnectError(e.message, code, {
      "x-stream-sequence": String(e.sequence),
      ...(e.storyId === undefined ? {} : { "x-story-id": e.storyId }),
    });
  }
  // A signal aborted without a ConnectError as its reason (a call's own signal carries one).
  if (e instanceof DOMException && e.name === "TimeoutError") {
    return new ConnectError("the call's deadline passed", Code.DeadlineExceeded);
  }
  if (e instanceof DOMException && e.name === "AbortError") {
    return new ConnectError("the call was cancelled", Code.Canceled);
  }
  return undefined;
};
