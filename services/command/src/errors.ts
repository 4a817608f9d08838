import type { StoryId } from "@ctx/domain";

/**
 * Base of the command service's own errors. What the domain refuses (DomainError) and what the
 * event store fails with (EventStoreError) have hierarchies of their own; `rpc/classify-error.ts`
 * turns all of them into status codes.
 */
export class CommandServiceError extends Error {
  override readonly name: string = "CommandServiceError";
}

/**
 * A request whose `command_id` names an earlier command of the story, but which is not that
 * command again: another method, or the same method with other content (gRPC ALREADY_EXISTS).
 * Answering the earlier result would drop the new request without a word; applying it would
 * break the promise that a command id is applied once.
 */
export class CommandIdReusedError extends CommandServiceError {
  override readonly name = "CommandIdReusedError";
  readonly storyId: StoryId;
  readonly commandId: string;
  /** The method of the request that used the id first. */
  readonly earlierMethod: string;
  /** The method of the request refused now. */
  readonly method: string;

  constructor(
    storyId: StoryId,
    commandId: string,
    earlierMethod: string,
    method: string,
    options?: ErrorOptions,
  ) {
    const what =
      earlierMethod === method
        ? `by a ${method} request with other content`
        : `by a ${earlierMethod} request, not ${method}`;
    super(
      `command_id "${commandId}" was already used on story "${storyId}" ${what}; ` +
        "a new request needs a new command_id (the same request again returns its first result)",
      options,
    );
    this.storyId = storyId;
    this.commandId = commandId;
    this.earlierMethod = earlierMethod;
    this.method = method;
  }
}

/**
 * A request the service cannot turn into commands although it passed validation (gRPC
 * INVALID_ARGUMENT): validation and the mapping to commands disagree, which a test should catch.
 */
export class InvalidRequestError extends CommandServiceError {
  override readonly name = "InvalidRequestError";
}

export function isCommandServiceError(e: unknown): e is CommandServiceError {
  return e instanceof CommandServiceError;
}

export function isCommandIdReusedError(e: unknown): e is CommandIdReusedError {
  return e instanceof CommandIdReusedError;
}

export function isInvalidRequestError(e: unknown): e is InvalidRequestError {
  return e instanceof InvalidRequestError;
}
