import { Code, ConnectError } from "@connectrpc/connect";
import {
  isCommandTooLargeError,
  isEntityAlreadyExistsError,
  isEntityNotFoundError,
  isRuleViolationError,
  isStoryAlreadyExistsError,
  isStoryNotFoundError,
} from "@ctx/domain";
import {
  isConcurrencyError,
  isEventReadError,
  isEventStoreUnavailableError,
  isUnreadableEventError,
} from "@ctx/event-store";
import type { ErrorClassifier } from "@ctx/rpc";
import { isCommandIdReusedError, isInvalidRequestError } from "../errors.ts";

/** The command side's errors as gRPC status codes (the only place this mapping is made). */
export const classifyCommandError: ErrorClassifier = (e) => {
  if (isConcurrencyError(e)) {
    return new ConnectError(e.message, Code.Aborted, {
      "x-expected-version": String(e.expectedVersion),
      "x-actual-version": String(e.actualVersion),
    });
  }
  if (isStoryNotFoundError(e) || isEntityNotFoundError(e)) {
    return new ConnectError(e.message, Code.NotFound);
  }
  if (isStoryAlreadyExistsError(e) || isEntityAlreadyExistsError(e)) {
    return new ConnectError(e.message, Code.AlreadyExists);
  }
  if (isCommandIdReusedError(e)) {
    // The command the id names exists already; a new request needs a new id (gRPC's guide:
    // ALREADY_EXISTS, the thing the client tried to create exists). Not INVALID_ARGUMENT: the
    // request is valid on its own; not FAILED_PRECONDITION: no change of state makes it valid.
    return new ConnectError(e.message, Code.AlreadyExists, { "x-rule": "command_id_reused" });
  }
  if (isCommandTooLargeError(e)) {
    // Too large by itself, whatever the story holds.
    return new ConnectError(e.message, Code.InvalidArgument, { "x-limit": e.limit });
  }
  if (isInvalidRequestError(e)) {
    return new ConnectError(e.message, Code.InvalidArgument);
  }
  if (isRuleViolationError(e)) {
    // A story limit (StoryLimitError) is one: the story stays full whatever the client retries.
    return new ConnectError(e.message, Code.FailedPrecondition, { "x-rule": e.rule });
  }
  if (isEventStoreUnavailableError(e)) {
    return new ConnectError(`${e.message}; retry later`, Code.Unavailable);
  }
  if (isEventReadError(e)) {
    // The story holds a message no reader can read: deciding on a guessed history would be wrong.
    // One this release cannot bring to its current shape waits for an upcaster (or an operator);
    // one that is no valid event of the story (corrupt, another story's) is lost data until an
    // operator sets it aside (ctx stories repair). The trailers say which message.
    const code = isUnreadableEventError(e) ? Code.FailedPrecondition : Code.DataLoss;
    return new ConnectError(e.message, code, {
      "x-stream-sequence": String(e.sequence),
      ...(e.storyId === undefined ? {} : { "x-story-id": e.storyId }),
    });
  }
  if (e instanceof DOMException && (e.name === "AbortError" || e.name === "TimeoutError")) {
    return new ConnectError("the call was cancelled or its deadline passed", Code.DeadlineExceeded);
  }
  return undefined;
};
