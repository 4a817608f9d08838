import type { Logger } from "@ctx/config";
import {
  type ContextEventData,
  type StoryId,
  type StreamVersion,
  streamVersion,
} from "@ctx/domain";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Registry } from "prom-client";
import type { EventUpcaster, RecordedEvent, StoredEvent, StreamSequence } from "./codec.ts";
import { EventAppender } from "./event-appender.ts";
import { EventReader } from "./event-reader.ts";
import type { SigningKey } from "./event-signing.ts";
import type { EventStreamNames } from "./event-stream.ts";
import type { MessageVerdict, StoredMessage } from "./set-aside.ts";
import { StoreCore } from "./store-core.ts";

/** An event to append; id and time are assigned when absent. */
export interface NewEvent {
  readonly data: ContextEventData;
  /**
   * Time-ordered unique id; a UUIDv7 is generated when absent. It is the message's Nats-Msg-Id:
   * 1-128 printable ASCII characters without spaces (append throws RangeError otherwise).
   */
  readonly eventId?: string;
  readonly occurredAt?: Date;
}

/** Who and what caused an append; copied into every envelope. */
export interface AppendMetadata {
  readonly commandId?: string;
  readonly correlationId?: string;
  readonly causationId?: string;
  /**
   * What the command was (its request's name and a digest of its content), written into the first
   * envelope only, so that a reader can tell a retry of the command from another request that
   * reuses its id.
   */
  readonly commandName?: string;
  readonly commandFingerprint?: Uint8Array;
  /**
   * The fingerprint is one a reader can compute from the command's events (the caller checked that
   * the events map back to exactly the request it fingerprinted): a version 2 envelope leaves it
   * out, and a reader of version 2 events without one derives it. Version 1 envelopes keep it.
   */
  readonly fingerprintDerivable?: boolean;
  /** Who issued the command (e.g. "jwt:alice"), written into every envelope; empty when unknown. */
  readonly principal?: string;
}

/**
 * The version the story must be at for an append to go through, checked by the JetStream server:
 * a number (0: the story must not exist yet), or `ExpectedVersion.Any` to append at the end whatever
 * the version (the store still orders and chains events correctly under concurrency).
 */
export type ExpectedVersion = StreamVersion | "any";
export const ExpectedVersion = {
  Any: "any",
  NoStory: streamVersion(0),
} as const;

export interface AppendResult {
  /** The story's version after the append. */
  readonly version: StreamVersion;
  readonly events: readonly RecordedEvent[];
  /** True when the server already held these events (a re-sent append) and stored nothing new. */
  readonly deduplicated: boolean;
}

export interface ReadOptions {
  /** First version to return (default 1). */
  readonly fromVersion?: number;
  /** Last version to return (default: the latest). */
  readonly toVersion?: number;
  /** Only events that occurred at or before this time. */
  readonly untilTime?: Date;
  /** Throw StoryNotFoundError instead of returning no events for a story that does not exist. */
  readonly mustExist?: boolean;
  /**
   * Skip the stream up to this sequence: a reader that already holds the story up to a known event
   * (a cache, a snapshot) reads only what came after it. Give `fromVersion` too (the version of the
   * first event after it): with `toVersion` the read then asks the server for that range alone
   * instead of a full batch, and without bounds it can read subject by subject (see readStored).
   */
  readonly afterSequence?: number;
  /**
   * The hash of the event at `afterSequence`, when the caller holds it: the first event read is
   * checked as its link (a version 2 envelope keeps no previous hash of its own), as every later
   * one is checked against the event before it.
   */
  readonly afterHash?: Uint8Array;
  /**
   * How many events the read probably returns, when the caller knows better than the bounds say
   * (from a snapshot: about one snapshot interval). It only sizes the first request to the server;
   * the read still returns every event within the bounds.
   */
  readonly sizeHint?: number;
  /**
   * False reads through the story's wildcard filter even where it could go subject by subject (see
   * readStored): what every read did before, kept for comparisons (the write bench).
   */
  readonly bySubject?: boolean;
  /**
   * Read through the stream's leader (`STREAM.MSG.GET`, one message per request) instead of
   * direct gets. Every replica of a replicated stream answers direct gets, and a follower may be a
   * little behind its leader (while it catches up after a restart, or under load): a reader that
   * knows the stream holds more than a direct get showed it (a projector delivered an event whose
   * predecessors a read did not find) asks the leader before it concludes that they are missing.
   */
  readonly fromLeader?: boolean;
}

export interface ReadAllOptions {
  /** First stream sequence to deliver (default 1). */
  readonly fromSequence?: number;
  /** Last stream sequence to deliver (default: the stream's last sequence when the replay starts). */
  readonly toSequence?: number;
  /**
   * readAllMessages: give each message's Ctx-Signature header (audits do). Off, the headers are
   * not decoded: replays and rebuilds have no use for them.
   */
  readonly signatures?: boolean;
}

/** Where a story's history ends: what the next append must chain onto. */
export interface StoryHead {
  readonly version: StreamVersion;
  readonly sequence: StreamSequence;
  readonly hash: Uint8Array;
}

/** The event store: one JetStream stream, one subject per event, stories as subject filters. */
export interface EventStore {
  readonly names: EventStreamNames;
  /** How this store's readers bring stored events to their current shape. */
  readonly upcaster: EventUpcaster;
  /**
   * Appends events to a story, all of them or none (one atomic batch when there are several), checked
   * against the expected version by the server. Throws ConcurrencyError on a conflict.
   */
  append(
    storyId: StoryId,
    events: readonly NewEvent[],
    expected: ExpectedVersion,
    metadata?: AppendMetadata,
  ): Promise<AppendResult>;
  /** A story's events in version order, upcast to their current shape. */
  read(storyId: StoryId, options?: ReadOptions): Promise<readonly RecordedEvent[]>;
  /**
   * A story's events as stored, not upcast (`ctx events upcast --dry-run` shows both). A message
   * that cannot be read (corrupt, another story's, versions that do not follow on) fails the read
   * only once the stream's leader has read it so too: a follower's view is not the last word.
   */
  readStored(storyId: StoryId, options?: ReadOptions): Promise<readonly StoredEvent[]>;
  /** Every event of the stream in stream order, upcast, with its partition, for replays and rebuilds. */
  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent & { readonly partition: number }>;
  /**
   * Every event of the stream in stream order as stored, not upcast: for tools that report what the
   * stream holds (`ctx events stats`) and rebuilds. A message no reader can read (and that no
   * EventsSetAside sets aside) does not end the replay: it comes as a StoredEvent with `unreadable`
   * set (what is known of it from its subject, its bytes and the error), which the upcaster refuses
   * with that error, so that a rebuild parks it and goes on.
   */
  readAllStored(
    options?: ReadAllOptions,
  ): AsyncIterable<StoredEvent & { readonly partition: number }>;
  /**
   * Every message of the stream's event subjects in stream order, as stored (bytes, subject,
   * sequence, time), whatever they hold: for verifying what the stream holds (`ctx audit verify`).
   */
  readAllMessages(options?: ReadAllOptions): AsyncIterable<StoredMessage>;
  /**
   * The stored messages of a story's subjects, in stream order, as stored (see readAllMessages):
   * all of them, or a page (see StoryMessagesOptions).
   */
  storyMessages(
    storyId: StoryId,
    options?: StoryMessagesOptions,
  ): Promise<readonly StoredMessage[]>;
  /**
   * A page of the whole stream's messages, in stream order, as stored (see StoryMessagesOptions):
   * what auditors verify the stream and its checkpoints from (ContextAuditService).
   */
  streamMessages(options?: StoryMessagesOptions): Promise<readonly StoredMessage[]>;
  /** The story's last event, or undefined when the story does not exist. */
  head(storyId: StoryId): Promise<StoryHead | undefined>;
  /**
   * The version of the story's last event stored at or before `time` (0: none), from the server's
   * subject index (one batched direct get: the last message of each of the story's subjects up
   * to that time). A temporal read's hint of how far to read; an event that occurred by `time`
   * may be stored after it.
   */
  versionStoredBy(storyId: StoryId, time: Date): Promise<number>;
  /**
   * The event stored at a stream sequence, as stored; undefined when the stream holds none there
   * (or a message set aside that held no version of its story). One direct get by sequence, which
   * the server answers without scanning.
   */
  readAt(sequence: number): Promise<StoredEvent | undefined>;
  /**
   * Every stored message of a story, in stream order, with what a reader makes of it: an event, a
   * message set aside, or a message no reader can read and why (`ctx stories check`).
   */
  examine(storyId: StoryId): Promise<readonly MessageVerdict[]>;
  /**
   * Whether an operator set this stored message aside: the last EventsSetAside of the story its
   * subject names lists its sequence with the SHA-256 of these bytes. For readers that meet a
   * message they cannot read (a projector deciding whether to park it).
   */
  isSetAside(storyId: string, sequence: number, bytes: Uint8Array): Promise<boolean>;
  /**
   * Brings a story that holds messages no reader can read back to service, in a way the stream
   * records: appends one EventsSetAside event to the story, listing each message with its stream
   * sequence, the SHA-256 of its bytes, the version it held (if any) and the problem, with the
   * operator's reason. Readers then pass over exactly those bytes (see ARCHITECTURE.md, "When a
   * stored message cannot be read"). Only unreadable messages can be set aside, and all of the
   * story's at once.
   * @throws SetAsideRefusedError (also when a message was stored on the story meanwhile),
   * StoryNotFoundError
   */
  setAside(storyId: StoryId, request: SetAsideRequest): Promise<SetAsideResult>;
}

/** A page of a story's stored messages (storyMessages). */
export interface StoryMessagesOptions {
  /** Only messages after this stream sequence (default 0: from the first). */
  readonly afterSequence?: number;
  /** At most this many messages. */
  readonly limit?: number;
  /** No more messages once their bytes reach this (the message that reaches it is the last). */
  readonly maxBytes?: number;
}

/** Which messages of a story to set aside, and why (`ctx stories repair`). */
export interface SetAsideRequest {
  /** Stream sequences of the messages. */
  readonly sequences: readonly number[];
  /** Why, in the operator's words (recorded in the event). */
  readonly reason: string;
  /** Who, as the operator gave it (recorded in the event). */
  readonly operator: string;
}

export interface SetAsideResult {
  /** The EventsSetAside event appended to the story. */
  readonly event: RecordedEvent;
  /** The messages this request set aside (the event lists the earlier ones too). */
  readonly added: readonly {
    readonly sequence: number;
    readonly version: number;
    readonly problem: string;
  }[];
}

export interface EventStoreOptions {
  readonly names?: EventStreamNames;
  /** Publish and read timeout in milliseconds (default 5 s). */
  readonly timeoutMs?: number;
  /** Heads of this many stories are remembered, so hot stories append without a lookup. */
  readonly headCacheSize?: number;
  /** Attempts of an `ExpectedVersion.Any` append that keeps losing races (default 10). */
  readonly maxAnyRetries?: number;
  /** Upcasting of what this store reads (default: the product's chains). */
  readonly upcaster?: EventUpcaster;
  /**
   * Registers `ctx_event_store_set_aside_read_total` (stored messages reads passed over because an
   * operator set them aside) when given.
   */
  readonly registry?: Registry;
  /** Says, once per message and process, when a read passes over a message set aside. */
  readonly logger?: Logger;
  /**
   * Signs every event this store appends: the HMAC-SHA256 of its hash with this key, in its
   * `Ctx-Signature` header (docs/AUDIT.md, "Signed events"). Off when not given.
   */
  readonly signingKey?: SigningKey;
  /**
   * The envelope version appends are written with (default 2: StoredContextEvent, see
   * docs/ARCHITECTURE.md). 1 writes ContextEvents, for as long as readers of an older release
   * still read the stream (a rolling upgrade: readers first, then writers). Readers read both.
   */
  readonly envelopeVersion?: 1 | 2;
}

/**
 * Creates an event store over a NATS connection. The stream must exist (see provisionEventStream).
 * Reads (EventReader) and appends (EventAppender) are two classes over one StoreCore, which holds
 * what both need the same: the connection's state, and the story heads reads find and appends
 * chain onto.
 */
export function createEventStore(nc: NatsConnection, options: EventStoreOptions = {}): EventStore {
  const core = new StoreCore(nc, options);
  const reader = new EventReader(core);
  return new JetStreamEventStore(reader, new EventAppender(core, reader, options));
}

/**
 * The store as its callers see it: EventStore and nothing more. The reader's and the appender's
 * other methods (what they ask of each other) stay out of reach.
 */
class JetStreamEventStore implements EventStore {
  readonly names: EventStreamNames;
  readonly upcaster: EventUpcaster;
  readonly #reader: EventReader;
  readonly #appender: EventAppender;

  constructor(reader: EventReader, appender: EventAppender) {
    this.names = reader.names;
    this.upcaster = reader.upcaster;
    this.#reader = reader;
    this.#appender = appender;
  }

  append(
    storyId: StoryId,
    events: readonly NewEvent[],
    expected: ExpectedVersion,
    metadata?: AppendMetadata,
  ): Promise<AppendResult> {
    return this.#appender.append(storyId, events, expected, metadata);
  }

  setAside(storyId: StoryId, request: SetAsideRequest): Promise<SetAsideResult> {
    return this.#appender.setAside(storyId, request);
  }

  read(storyId: StoryId, options?: ReadOptions): Promise<readonly RecordedEvent[]> {
    return this.#reader.read(storyId, options);
  }

  readStored(storyId: StoryId, options?: ReadOptions): Promise<readonly StoredEvent[]> {
    return this.#reader.readStored(storyId, options);
  }

  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent & { readonly partition: number }> {
    return this.#reader.readAll(options);
  }

  readAllStored(
    options?: ReadAllOptions,
  ): AsyncIterable<StoredEvent & { readonly partition: number }> {
    return this.#reader.readAllStored(options);
  }

  readAllMessages(options?: ReadAllOptions): AsyncIterable<StoredMessage> {
    return this.#reader.readAllMessages(options);
  }

  storyMessages(
    storyId: StoryId,
    options?: StoryMessagesOptions,
  ): Promise<readonly StoredMessage[]> {
    return this.#reader.storyMessages(storyId, options);
  }

  streamMessages(options?: StoryMessagesOptions): Promise<readonly StoredMessage[]> {
    return this.#reader.streamMessages(options);
  }

  head(storyId: StoryId): Promise<StoryHead | undefined> {
    return this.#reader.head(storyId);
  }

  versionStoredBy(storyId: StoryId, time: Date): Promise<number> {
    return this.#reader.versionStoredBy(storyId, time);
  }

  readAt(sequence: number): Promise<StoredEvent | undefined> {
    return this.#reader.readAt(sequence);
  }

  examine(storyId: StoryId): Promise<readonly MessageVerdict[]> {
    return this.#reader.examine(storyId);
  }

  isSetAside(storyId: string, sequence: number, bytes: Uint8Array): Promise<boolean> {
    return this.#reader.isSetAside(storyId, sequence, bytes);
  }
}
