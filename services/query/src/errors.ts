import type { StoryId } from "@ctx/domain";

/** Base of the errors the query service throws; each becomes one status code (rpc/classify-error). */
export class QueryError extends Error {
  override name = "QueryError";
}

export function isQueryError(e: unknown): e is QueryError {
  return e instanceof QueryError;
}

/** The story has no events, or none at or before the point asked about (NOT_FOUND). */
export class UnknownStoryError extends QueryError {
  override name = "UnknownStoryError";
  readonly storyId: StoryId;

  constructor(
    storyId: StoryId,
    message = `story ${storyId} does not exist`,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.storyId = storyId;
  }
}

/**
 * A decision or subtask the story does not have (NOT_FOUND): in the graph read model, which may
 * lag the stream by a moment, or in the story folded from the stream.
 */
export class UnknownEntityError extends QueryError {
  override name = "UnknownEntityError";
  readonly storyId: StoryId;
  readonly kind: "decision" | "subtask";
  readonly entityId: string;

  constructor(
    storyId: StoryId,
    kind: "decision" | "subtask",
    entityId: string,
    where: "graph read model" | "event stream" = "graph read model",
  ) {
    super(
      where === "graph read model"
        ? `${kind} ${entityId} of story ${storyId} is not in the graph read model`
        : `story ${storyId} has no ${kind} ${entityId}`,
    );
    this.storyId = storyId;
    this.kind = kind;
    this.entityId = entityId;
  }
}

/** A version past the story's current one (OUT_OF_RANGE: it may exist later). */
export class VersionOutOfRangeError extends QueryError {
  override name = "VersionOutOfRangeError";
  readonly storyId: StoryId;
  readonly version: number;
  readonly currentVersion: number;

  constructor(storyId: StoryId, version: number, currentVersion: number) {
    super(
      `story ${storyId} is at version ${currentVersion}; version ${version} does not exist yet`,
    );
    this.storyId = storyId;
    this.version = version;
    this.currentVersion = currentVersion;
  }
}

/** A request that passes field validation but makes no sense (INVALID_ARGUMENT). */
export class InvalidQueryError extends QueryError {
  override name = "InvalidQueryError";
  /** The request field at fault. */
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

export function isUnknownStoryError(e: unknown): e is UnknownStoryError {
  return e instanceof UnknownStoryError;
}
export function isUnknownEntityError(e: unknown): e is UnknownEntityError {
  return e instanceof UnknownEntityError;
}
export function isVersionOutOfRangeError(e: unknown): e is VersionOutOfRangeError {
  return e instanceof VersionOutOfRangeError;
}
export function isInvalidQueryError(e: unknown): e is InvalidQueryError {
  return e instanceof InvalidQueryError;
}

/** The service is stopping: long-lived calls (WatchContext) end, to be retried elsewhere (UNAVAILABLE). */
export class ShuttingDownError extends QueryError {
  override name = "ShuttingDownError";

  constructor() {
    super("the query service is shutting down; call again");
  }
}

export function isShuttingDownError(e: unknown): e is ShuttingDownError {
  return e instanceof ShuttingDownError;
}

/** Which bound refused a watch. */
export const WatchLimit = {
  /** WATCH_MAX: watches open in this process. */
  Process: "process",
  /** WATCH_MAX_PER_CLIENT: watches open by one client (its address, until calls carry a principal). */
  Client: "client",
} as const;
export type WatchLimit = (typeof WatchLimit)[keyof typeof WatchLimit];

/** A watch refused because too many are open (RESOURCE_EXHAUSTED: close some, or call later). */
export class WatchLimitError extends QueryError {
  override name = "WatchLimitError";
  readonly limit: WatchLimit;
  readonly max: number;

  constructor(limit: WatchLimit, max: number) {
    super(
      limit === WatchLimit.Process
        ? `the query service has ${max} watches open, its maximum; call again later or another replica`
        : `this client has ${max} watches open, the maximum per client; close one first`,
    );
    this.limit = limit;
    this.max = max;
  }
}

export function isWatchLimitError(e: unknown): e is WatchLimitError {
  return e instanceof WatchLimitError;
}

/**
 * A watch ended because its client fell too far behind the story (RESOURCE_EXHAUSTED): it had not
 * taken the answers for more than `maxLag` versions. Calling again starts from the current state.
 */
export class WatchLaggingError extends QueryError {
  override name = "WatchLaggingError";
  readonly storyId: StoryId;
  readonly maxLag: number;

  constructor(storyId: StoryId, maxLag: number) {
    super(
      `the watch of story ${storyId} fell more than ${maxLag} versions behind (the client reads too slowly); call again to start from the current state`,
    );
    this.storyId = storyId;
    this.maxLag = maxLag;
  }
}

export function isWatchLaggingError(e: unknown): e is WatchLaggingError {
  return e instanceof WatchLaggingError;
}
