import type { StoryId, StreamVersion } from "@ctx/domain";

/** Base of every error the event store throws. */
export class EventStoreError extends Error {
  override name = "EventStoreError";
}

/**
 * The story was not at the expected version when the append reached the server: another writer got
 * there first. Nothing of the append was stored.
 */
export class ConcurrencyError extends EventStoreError {
  override name = "ConcurrencyError";
  readonly storyId: StoryId;
  readonly expectedVersion: StreamVersion;
  readonly actualVersion: StreamVersion;

  constructor(
    storyId: StoryId,
    expectedVersion: StreamVersion,
    actualVersion: StreamVersion,
    options?: ErrorOptions,
  ) {
    super(
      `story ${storyId} is at version ${actualVersion}, not at the expected version ${expectedVersion}`,
      options,
    );
    this.storyId = storyId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/** The story has no events. */
export class StoryNotFoundError extends EventStoreError {
  override name = "StoryNotFoundError";
  readonly storyId: StoryId;

  constructor(storyId: StoryId, options?: ErrorOptions) {
    super(`story ${storyId} does not exist`, options);
    this.storyId = storyId;
  }
}

/** A stored message cannot be read as an event: undecodable bytes or a broken envelope. */
export class CorruptEventError extends EventStoreError {
  override name = "CorruptEventError";
  readonly sequence: number;

  constructor(sequence: number, reason: string, options?: ErrorOptions) {
    super(`stream message ${sequence} is not a valid event: ${reason}`, options);
    this.sequence = sequence;
  }
}

/**
 * A stored event decodes but cannot be brought to its current shape: no upcaster chain reads its
 * (type, schema version), e.g. it was written by a newer release, or an upcaster refused its
 * payload. Readers never guess: a projector parks it, a query answers with an error.
 */
export class UnreadableEventError extends EventStoreError {
  override name = "UnreadableEventError";
  readonly sequence: number;

  constructor(sequence: number, reason: string, options?: ErrorOptions) {
    super(`stream message ${sequence} cannot be read in its current shape: ${reason}`, options);
    this.sequence = sequence;
  }
}

/** NATS or JetStream cannot be reached or did not answer in time; retrying later may succeed. */
export class EventStoreUnavailableError extends EventStoreError {
  override name = "EventStoreUnavailableError";
}

export function isEventStoreError(e: unknown): e is EventStoreError {
  return e instanceof EventStoreError;
}
export function isConcurrencyError(e: unknown): e is ConcurrencyError {
  return e instanceof ConcurrencyError;
}
export function isStoryNotFoundError(e: unknown): e is StoryNotFoundError {
  return e instanceof StoryNotFoundError;
}
export function isCorruptEventError(e: unknown): e is CorruptEventError {
  return e instanceof CorruptEventError;
}
export function isEventStoreUnavailableError(e: unknown): e is EventStoreUnavailableError {
  return e instanceof EventStoreUnavailableError;
}

export function isUnreadableEventError(e: unknown): e is UnreadableEventError {
  return e instanceof UnreadableEventError;
}
