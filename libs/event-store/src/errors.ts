import type { StoryId, StreamVersion } from "@ctx/domain";
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";

// The event store's errors. A story that does not exist is the domain's StoryNotFoundError
// (`@ctx/domain`): one error for one condition, whoever finds it.

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

/** Where a message that cannot be read sits, and why. */
export interface EventReadProblem {
  /** Its stream sequence. */
  readonly sequence: number;
  /** The story its subject names (the story a reader read), when known. */
  readonly storyId?: string;
  /** What is wrong with it, in a few words. */
  readonly reason: string;
}

/**
 * A stored message no reader can take as an event of its story. Every such error names the
 * message's stream sequence (and its story, when known) and the reason: an operator can look at it
 * (`ctx stories check`) and, when it is beyond repair, set it aside (`ctx stories repair`).
 */
export class EventReadError extends EventStoreError {
  override name = "EventReadError";
  readonly sequence: number;
  readonly storyId: string | undefined;
  readonly reason: string;

  constructor(problem: EventReadProblem, what: string, options?: ErrorOptions) {
    const story = problem.storyId === undefined ? "" : ` of story ${problem.storyId}`;
    super(`stream message ${problem.sequence}${story} ${what}: ${problem.reason}`, options);
    this.sequence = problem.sequence;
    this.storyId = problem.storyId;
    this.reason = problem.reason;
  }
}

/** A stored message is not a complete, valid envelope: undecodable bytes, a field missing or invalid. */
export class CorruptEventError extends EventReadError {
  override name = "CorruptEventError";

  constructor(problem: EventReadProblem, options?: ErrorOptions) {
    super(problem, "is not a valid event", options);
  }
}

/**
 * A stored event decodes but cannot be brought to its current shape: no upcaster chain reads its
 * (type, schema version), e.g. it was written by a newer release, or an upcaster refused its
 * payload. Readers never guess: a projector parks it, a query answers with an error.
 */
export class UnreadableEventError extends EventReadError {
  override name = "UnreadableEventError";

  constructor(problem: EventReadProblem, options?: ErrorOptions) {
    super(problem, "cannot be read in its current shape", options);
  }
}

/**
 * A stored message is a valid envelope that does not belong where it is stored: its envelope names
 * another story or event type than its subject, or its version does not follow the story's
 * previous event (a gap or a repeat). Never applied to any story: readers refuse it, projectors
 * park it.
 */
export class EventMismatchError extends EventReadError {
  override name = "EventMismatchError";

  constructor(problem: EventReadProblem, options?: ErrorOptions) {
    super(problem, "does not belong where it is stored", options);
  }
}

/** NATS or JetStream cannot be reached or did not answer in time; retrying later may succeed. */
export class EventStoreUnavailableError extends EventStoreError {
  override name = "EventStoreUnavailableError";
}

/** JetStream refused or mangled an append in a way that is no conflict and no outage. */
export class AppendFailedError extends EventStoreError {
  override name = "AppendFailedError";
}

/** The stream exists with settings provisioning must not change (storage, partition count). */
export class StreamConfigurationError extends EventStoreError {
  override name = "StreamConfigurationError";
}

/**
 * A set-aside request the store refuses: the message is readable, not the story's, already set
 * aside, or the story holds other unreadable messages the request leaves out.
 */
export class SetAsideRefusedError extends EventStoreError {
  override name = "SetAsideRefusedError";
}

/** What a backup or restore failed on, for callers that act on it (exit codes, retries). */
export type StreamBackupProblem =
  | "not_found"
  | "exists"
  | "refused"
  | "bad_backup"
  | "path"
  | "mismatch"
  | "interrupted"
  | "server";

/**
 * A backup or restore that could not be done: a stream missing (or already there), a backup
 * whose manifest or checksum does not hold, a path that cannot be used, or the server refusing.
 */
export class StreamBackupError extends EventStoreError {
  override name = "StreamBackupError";
  readonly problem: StreamBackupProblem;

  constructor(message: string, problem: StreamBackupProblem, options?: ErrorOptions) {
    super(message, options);
    this.problem = problem;
  }
}

export function isEventStoreError(e: unknown): e is EventStoreError {
  return e instanceof EventStoreError;
}
export function isConcurrencyError(e: unknown): e is ConcurrencyError {
  return e instanceof ConcurrencyError;
}
export function isEventReadError(e: unknown): e is EventReadError {
  return e instanceof EventReadError;
}
export function isCorruptEventError(e: unknown): e is CorruptEventError {
  return e instanceof CorruptEventError;
}
export function isUnreadableEventError(e: unknown): e is UnreadableEventError {
  return e instanceof UnreadableEventError;
}
export function isEventMismatchError(e: unknown): e is EventMismatchError {
  return e instanceof EventMismatchError;
}
export function isEventStoreUnavailableError(e: unknown): e is EventStoreUnavailableError {
  return e instanceof EventStoreUnavailableError;
}
export function isAppendFailedError(e: unknown): e is AppendFailedError {
  return e instanceof AppendFailedError;
}
export function isStreamConfigurationError(e: unknown): e is StreamConfigurationError {
  return e instanceof StreamConfigurationError;
}
export function isSetAsideRefusedError(e: unknown): e is SetAsideRefusedError {
  return e instanceof SetAsideRefusedError;
}
export function isStreamBackupError(e: unknown): e is StreamBackupError {
  return e instanceof StreamBackupError;
}

/**
 * JetStream API answers that mean the stream (or the cluster's meta layer) has no leader or quorum
 * right now, as while a clustered stream elects a leader or a stopped node comes back: "JetStream
 * system temporarily unavailable" (10008), "JetStream cluster can not handle request" (10009),
 * "stream is offline" (10118, 10194), "expected last sequence per subject temporarily unavailable"
 * (10163). The same request can succeed a moment later.
 */
export const TRANSIENT_API_ERRORS: ReadonlySet<number> = new Set([
  10008, 10009, 10118, 10163, 10194,
]);

/**
 * Whether a NATS client error means the server could not be reached or did not answer (a timeout,
 * a closed connection, no responders), or answered that it cannot serve the request right now (see
 * TRANSIENT_API_ERRORS): an outage, worth retrying later. Every lib that talks to JetStream
 * classifies its calls' failures with this one helper.
 */
export function isNatsOutage(e: unknown): boolean {
  return (
    (e instanceof JetStreamApiError && TRANSIENT_API_ERRORS.has(e.code)) ||
    // A direct get nobody answers (the stream is missing, or has no leader right now); nats.js
    // does not export the class, hence the name.
    (e instanceof Error &&
      e.name === "JetStreamStatusError" &&
      (e as { code?: unknown }).code === 503) ||
    e instanceof natsErrors.TimeoutError ||
    e instanceof natsErrors.ClosedConnectionError ||
    e instanceof natsErrors.NoRespondersError ||
    (e instanceof natsErrors.RequestError && e.isNoResponders())
  );
}
