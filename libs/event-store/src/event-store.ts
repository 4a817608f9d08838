import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "@ctx/config";
import {
  type ContextEventData,
  ContextEventType,
  storyId as checkedStoryId,
  currentSchemaVersion,
  eventTypeOf,
  type StoryId,
  StoryNotFoundError,
  type StreamVersion,
  streamVersion,
} from "@ctx/domain";
import { uuidv7 } from "@ctx/ids";
import { type ContextEvent, EventsSetAsideSchema } from "@ctx/proto";
import { inSpan, type TraceCarrier, traceCarrierOf, traceHeaders, tracing } from "@ctx/telemetry";
import {
  type ApiError,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  type MsgRequest,
  type StoredMsg,
} from "@nats-io/jetstream";
import {
  type MsgHdrs,
  MsgHdrsImpl,
  type NatsConnection,
  errors as natsErrors,
} from "@nats-io/transport-node";
import { trace as otelTrace, SpanKind } from "@opentelemetry/api";
import { Counter, type Registry } from "prom-client";
import { type AckPublisher, createAckPublisher, type OutgoingMessage } from "./ack-publisher.ts";
import {
  contextEventUpcaster,
  decodeStoredEvent,
  type EventUpcaster,
  linkStoredEvent,
  originStory,
  type RecordedEvent,
  type StoredEvent,
  type StreamSequence,
  setAsideEvent,
  streamSequence,
  unreadableEvent,
} from "./codec.ts";
import { batchExtent, collectDirectBatch, directGet } from "./direct-batch.ts";
import {
  AppendFailedError,
  ConcurrencyError,
  CorruptEventError,
  type EventReadError,
  EventStoreUnavailableError,
  isEventReadError,
  isNatsOutage,
  SetAsideRefusedError,
  TRANSIENT_API_ERRORS,
} from "./errors.ts";
import { eventSigner, SIGNATURE_HEADER, type SigningKey } from "./event-signing.ts";
import {
  defaultEventStreamNames,
  type EventStreamNames,
  eventSubject,
  parseStoredSubject,
  partitionCountOf,
  storySubjects,
  storySubjectsInPartition,
} from "./event-stream.ts";
import { encodeWithHash } from "./hash-chain.ts";
import {
  checkFollows,
  type MessageVerdict,
  noneSetAside,
  planSetAside,
  type SetAsideIndex,
  type StoredMessage,
  setAsideEntry,
  setAsideIndexOf,
} from "./set-aside.ts";
import { mergeSubjects } from "./story-merge.ts";

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

/** JetStream's answer to a publish: an ack (a batch's has `count`), or an error. */
interface PublishReply {
  readonly error?: ApiError;
  readonly seq?: number;
  readonly duplicate?: boolean;
  readonly count?: number;
}

/** An envelope ready to publish: encoded (hash included) and addressed. */
interface Outgoing {
  readonly envelope: ContextEvent;
  readonly subject: string;
  readonly bytes: Uint8Array;
  /** The Ctx-Signature header value, when the store signs. */
  readonly signature: string | undefined;
  /** Its Nats-Msg-Id, by which the server drops a re-sent copy; see messageIdOf. */
  readonly messageId: string | undefined;
}

const WRONG_LAST_SEQUENCE = 10071;
const SET_ASIDE_METRIC = "ctx_event_store_set_aside_read_total";
/** Set-aside messages a store says it passed over (once each), remembered to say it once. */
const SET_ASIDE_LOGGED = 10_000;
const BATCH_DUPLICATE_MSG_ID = 10201;
const READ_BATCH = 512;
// Batches in a row that lost messages on the way before a read gives up (as unavailable).
const MAX_CUT_BATCHES = 3;
const EMPTY = new Uint8Array(0);

/** Creates an event store over a NATS connection. The stream must exist (see provisionEventStream). */
export function createEventStore(nc: NatsConnection, options: EventStoreOptions = {}): EventStore {
  return new JetStreamEventStore(nc, options);
}

class JetStreamEventStore implements EventStore {
  readonly names: EventStreamNames;
  readonly upcaster: EventUpcaster;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #acks: AckPublisher;
  #jsm: Promise<JetStreamManager> | undefined;
  readonly #timeout: number;
  readonly #heads = new Map<StoryId, StoryHead>();
  readonly #headCacheSize: number;
  readonly #maxAnyRetries: number;
  #connected = true;
  /**
   * The stream's partition count, read from its subject transform: appends then name the story's
   * partition in their expectation (see #expectedSubjects). Undefined until read, when the stream is
   * partitioned otherwise, and after an append showed it wrong; read again at most every 10 s.
   */
  #partitions: number | undefined;
  #partitionsReadAt = Number.NEGATIVE_INFINITY;
  readonly #setAsideRead: Counter | undefined;
  readonly #logger: Logger | undefined;
  readonly #setAsideLogged = new Set<string>();
  readonly #sign: ((hash: Uint8Array) => string) | undefined;
  readonly #envelopeVersion: 1 | 2;

  constructor(nc: NatsConnection, options: EventStoreOptions) {
    this.#nc = nc;
    this.names = options.names ?? defaultEventStreamNames;
    this.upcaster = options.upcaster ?? contextEventUpcaster;
    this.#timeout = options.timeoutMs ?? 5_000;
    this.#js = jetstream(nc, { timeout: this.#timeout });
    this.#acks = createAckPublisher(nc, this.#timeout);
    this.#headCacheSize = options.headCacheSize ?? 10_000;
    this.#maxAnyRetries = options.maxAnyRetries ?? 10;
    this.#logger = options.logger;
    this.#sign = options.signingKey && eventSigner(options.signingKey);
    this.#envelopeVersion = options.envelopeVersion ?? 2;
    const registry = options.registry;
    if (registry) {
      this.#setAsideRead =
        (registry.getSingleMetric(SET_ASIDE_METRIC) as Counter | undefined) ??
        new Counter({
          name: SET_ASIDE_METRIC,
          help: "Stored messages reads passed over because an operator set them aside (ctx stories repair)",
          registers: [registry],
        });
    }
    // While the connection is down, calls fail at once (UNAVAILABLE) instead of each waiting for
    // its timeout in the client's reconnect buffer.
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") this.#connected = false;
        if (status.type === "reconnect") this.#connected = true;
      }
    })().catch(() => undefined);
  }

  #manager(): Promise<JetStreamManager> {
    this.#jsm ??= this.#js.jetstreamManager(false);
    return this.#jsm;
  }

  append(
    storyId: StoryId,
    events: readonly NewEvent[],
    expected: ExpectedVersion,
    metadata: AppendMetadata = {},
  ): Promise<AppendResult> {
    if (!tracing.enabled || events.length === 0) {
      return this.#append(storyId, events, expected, metadata, undefined);
    }
    // A call that was not sampled: its children would not be either (the samplers are parent-
    // based by default), so its context is passed on as it is, without a span of its own.
    const caller = otelTrace.getActiveSpan();
    if (caller !== undefined && !caller.isRecording()) {
      return this.#append(storyId, events, expected, metadata, traceCarrierOf());
    }
    // A PRODUCER span (OpenTelemetry's messaging conventions), child of the caller's (the RPC
    // that commanded it); its W3C context goes into every event's NATS headers, where projectors
    // and the snapshotter pick it up (see traceHeaders). Never into the envelope: not history.
    return inSpan(
      `send ${this.names.stream}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "send",
          "messaging.destination.name": this.names.stream,
          "messaging.batch.message_count": events.length,
          "ctx.story_id": storyId,
          ...(metadata.commandId ? { "ctx.command_id": metadata.commandId } : {}),
          ...(metadata.correlationId ? { "ctx.correlation_id": metadata.correlationId } : {}),
        },
      },
      async (span) => {
        const result = await this.#append(storyId, events, expected, metadata, traceCarrierOf());
        if (!span.isRecording()) return result;
        span.setAttributes({
          "ctx.version": result.version,
          "ctx.deduplicated": result.deduplicated,
          ...(result.events[0] ? { "ctx.first_sequence": result.events[0].sequence } : {}),
        });
        return result;
      },
    );
  }

  async #append(
    storyId: StoryId,
    events: readonly NewEvent[],
    expected: ExpectedVersion,
    metadata: AppendMetadata,
    trace: TraceCarrier | undefined,
  ): Promise<AppendResult> {
    if (events.length === 0) {
      const head = await this.head(storyId);
      const version = head?.version ?? streamVersion(0);
      if (expected !== "any" && expected !== version) {
        throw new ConcurrencyError(storyId, expected, version);
      }
      return { version, events: [], deduplicated: false };
    }
    // A version 2 envelope without an id of its own gets the one made of its time and hash.
    const v2 = this.#envelopeVersion === 2;
    const stamped = events.map((e) => ({
      data: e.data,
      eventId: e.eventId !== undefined ? checkedEventId(e.eventId) : v2 ? "" : uuidv7(),
      named: e.eventId !== undefined,
      occurredAt: e.occurredAt ?? new Date(),
    }));
    if (this.#partitions === undefined && Date.now() - this.#partitionsReadAt > 10_000) {
      await this.#readPartitions();
    }
    let partitionDoubted = false;
    for (let attempt = 1; ; attempt++) {
      let head = this.#heads.get(storyId) ?? (await this.#fetchHead(storyId));
      if (expected !== "any" && (head?.version ?? 0) !== expected) {
        // The cached head may be stale; only the server's answer counts (its leader's: a
        // follower may be behind).
        head = await this.#fetchHead(storyId, true);
        const actual = head?.version ?? streamVersion(0);
        if (actual !== expected) throw new ConcurrencyError(storyId, expected, actual);
      }
      const outgoing = this.#envelopes(storyId, head, stamped, metadata);
      try {
        return await this.#publish(storyId, head, outgoing, trace);
      } catch (e) {
        if (!(e instanceof WrongLastSequence)) throw e;
        this.#heads.delete(storyId);
        // The leader refused the expectation: ask it what the head is (a follower may not know).
        const current = await this.#fetchHead(storyId, true);
        const actual = current?.version ?? streamVersion(0);
        if (
          !partitionDoubted &&
          this.#partitions !== undefined &&
          (current?.sequence ?? 0) === (head?.sequence ?? 0)
        ) {
          // Refused, yet the story's last event is the one expected: the expectation named the
          // wrong partition (the stream was recreated with another count). Go back to the filter
          // over every partition, and try once more.
          this.#partitions = undefined;
          this.#partitionsReadAt = Date.now();
          partitionDoubted = true;
          continue;
        }
        if (expected !== "any" || attempt >= this.#maxAnyRetries) {
          throw new ConcurrencyError(
            storyId,
            expected === "any" ? (head?.version ?? streamVersion(0)) : expected,
            actual,
            {
              cause: e,
            },
          );
        }
      }
    }
  }

  #envelopes(
    storyId: StoryId,
    head: StoryHead | undefined,
    events: readonly {
      data: ContextEventData;
      eventId: string;
      named: boolean;
      occurredAt: Date;
    }[],
    metadata: AppendMetadata,
  ): Outgoing[] {
    let prevHash = head?.hash ?? EMPTY;
    let version = head?.version ?? 0;
    return events.map((event, index) => {
      const eventType = eventTypeOf(event.data);
      version += 1;
      // Every field by hand (the type requires them all): create() walks the descriptor twice.
      const envelope: ContextEvent = {
        $typeName: "context.v1.ContextEvent",
        eventId: event.eventId,
        storyId,
        version,
        occurredAt: timestampFromDate(event.occurredAt),
        eventType,
        schemaVersion: currentSchemaVersion[eventType],
        correlationId: metadata.correlationId ?? "",
        causationId: metadata.causationId ?? "",
        commandId: metadata.commandId ?? "",
        commandEventIndex: index,
        prevHash,
        hash: EMPTY,
        commandName: index === 0 ? (metadata.commandName ?? "") : "",
        commandFingerprint: index === 0 ? (metadata.commandFingerprint ?? EMPTY) : EMPTY,
        principal: metadata.principal ?? "",
        envelopeVersion: this.#envelopeVersion === 2 ? 2 : 0,
        payload: event.data,
      };
      const bytes = encodeWithHash(envelope);
      prevHash = envelope.hash;
      return {
        envelope,
        subject: eventSubject(this.names, storyId, eventType),
        bytes,
        signature: this.#sign?.(envelope.hash),
        messageId: event.named || envelope.envelopeVersion !== 2 ? envelope.eventId : undefined,
      };
    });
  }

  async #publish(
    storyId: StoryId,
    head: StoryHead | undefined,
    messages: readonly Outgoing[],
    trace: TraceCarrier | undefined,
  ): Promise<AppendResult> {
    const expectedSequence = head?.sequence ?? 0;
    // A publish whose ack timed out may have been stored: re-send the same bytes. The server drops
    // the duplicate (single event: by Nats-Msg-Id; batch: error 10201, then checked against the head).
    let outcome: { lastSequence: number; deduplicated: boolean } | undefined;
    let timeouts = 0;
    let unsettled = 0;
    while (outcome === undefined) {
      try {
        outcome = await this.#publishOnce(storyId, expectedSequence, messages, trace);
      } catch (e) {
        if (e instanceof WrongLastSequence && timeouts + unsettled > 0) {
          // A re-send refused by the expectation: the attempt before it may have been stored (a
          // version 2 envelope has no Nats-Msg-Id for the server to drop the copy by).
          const stored = await this.#storedAlready(storyId, messages);
          if (stored === undefined) throw e;
          outcome = stored;
          continue;
        }
        if (e instanceof StillInProcess) {
          // The server has not settled an earlier attempt of this append, or another append of the
          // story, yet: a replicated stream waits for its quorum, and a re-send after a timeout (or
          // a leader change) finds the first one still in flight. Its outcome decides ours: ask
          // again once it has settled (a duplicate, or a conflict), and give up as unavailable
          // (the client retries with the same command id) when it takes too long.
          if (++unsettled >= UNSETTLED_ATTEMPTS) {
            throw new EventStoreUnavailableError(
              `JetStream is still settling an earlier append of story ${storyId} (${e.message}); retry later`,
              { cause: e },
            );
          }
          await new Promise((r) => setTimeout(r, UNSETTLED_PAUSE_MS * unsettled));
          continue;
        }
        const timedOut =
          e instanceof EventStoreUnavailableError && e.cause instanceof natsErrors.TimeoutError;
        if (!timedOut || !this.#connected || ++timeouts >= 3) throw e;
      }
    }
    const { lastSequence, deduplicated } = outcome;
    const first = lastSequence - messages.length + 1;
    // A re-sent append returns what the server stored the first time, not what was re-sent.
    const recorded = deduplicated
      ? await this.#storedEvents(first, lastSequence)
      : messages.flatMap((m, i) => this.#written(m, first + i));
    const last = recorded[recorded.length - 1] as RecordedEvent;
    this.#remember(storyId, headOf(last));
    return { version: last.version, events: recorded, deduplicated };
  }

  /**
   * An event this store just wrote, as its readers will see it: built from the envelope instead of
   * decoding the bytes again (what is written is current; anything else goes through the upcaster).
   */
  #written(m: Outgoing, sequence: number): readonly RecordedEvent[] {
    const { envelope } = m;
    const shape = { type: envelope.eventType, version: envelope.schemaVersion };
    if (!this.upcaster.registry.isCurrent(shape) || !envelope.occurredAt) {
      return this.upcaster.decode(m.bytes, sequence, m.subject);
    }
    return [
      {
        sequence: streamSequence(sequence),
        storyId: envelope.storyId as StoryId,
        version: streamVersion(envelope.version),
        eventId: envelope.eventId,
        eventType: envelope.eventType,
        schemaVersion: envelope.schemaVersion,
        occurredAt: timestampDate(envelope.occurredAt),
        data: envelope.payload as ContextEventData,
        envelope,
      },
    ];
  }

  async #publishOnce(
    storyId: StoryId,
    expectedSequence: number,
    messages: readonly Outgoing[],
    trace: TraceCarrier | undefined,
  ): Promise<{ lastSequence: number; deduplicated: boolean }> {
    if (messages.length > 1) return this.#publishBatch(storyId, expectedSequence, messages, trace);
    const [only] = messages as [Outgoing];
    const record: Record<string, string[]> = this.#expectation(storyId, expectedSequence);
    messageIdOf(only, record);
    if (trace) withTraceHeaders(record, trace);
    if (only.signature !== undefined) record[SIGNATURE_HEADER] = [only.signature];
    const h = natsHeaders(record);
    const ack = await this.#request([{ subject: only.subject, data: only.bytes, headers: h }]);
    if (ack.error) {
      if (ack.error.err_code === WRONG_LAST_SEQUENCE) {
        throw new WrongLastSequence(ack.error.description);
      }
      throw refusal(ack.error, new JetStreamApiError(ack.error));
    }
    if (ack.seq === undefined) {
      throw new AppendFailedError("JetStream acknowledged a publish without a sequence");
    }
    return { lastSequence: ack.seq, deduplicated: ack.duplicate === true };
  }

  /** Publishes through the ack publisher (one socket write per turn) and parses the reply. */
  async #request(messages: readonly OutgoingMessage[]): Promise<PublishReply> {
    // #guard's checks, without its two extra async frames on the path every append takes.
    this.#ensureConnected();
    try {
      return (await this.#acks.request(messages)).json<PublishReply>();
    } catch (e) {
      throw guarded(e);
    }
  }

  /**
   * JetStream atomic batch publish (server ≥ 2.12): every message but the last is published without
   * waiting; the last commits the batch and gets the one ack. The server applies the story-wide
   * expectation of the first message to the whole batch: all stored, or none.
   * (nats.js 3.4's Batch.add/commit drop msgID and expectations, and hide the server's error code.)
   */
  async #publishBatch(
    storyId: StoryId,
    expectedSequence: number,
    messages: readonly Outgoing[],
    trace: TraceCarrier | undefined,
  ): Promise<{ lastSequence: number; deduplicated: boolean }> {
    const batchId = uuidv7();
    const last = messages.length - 1;
    const reply = await this.#request(
      messages.map((m, i) => ({
        subject: m.subject,
        data: m.bytes,
        headers: this.#batchHeaders(batchId, i, i === last, m, storyId, expectedSequence, trace),
      })),
    );
    const code = reply.error?.err_code;
    if (code === WRONG_LAST_SEQUENCE) throw new WrongLastSequence(reply.error?.description ?? "");
    if (code === BATCH_DUPLICATE_MSG_ID) {
      // The batch was sent before (its ack was lost): the events are stored if the story's head is
      // ours.
      const stored = await this.#storedAlready(storyId, messages);
      if (stored !== undefined) return stored;
      throw new WrongLastSequence(reply.error?.description ?? "duplicate message id");
    }
    if (reply.error) {
      throw refusal(
        reply.error,
        new AppendFailedError(
          `JetStream rejected the batch: ${reply.error.description} (${code})`,
          {
            cause: new JetStreamApiError(reply.error),
          },
        ),
      );
    }
    if (reply.count !== messages.length || reply.seq === undefined) {
      throw new AppendFailedError(
        `JetStream stored ${reply.count} of ${messages.length} events of a batch`,
      );
    }
    return { lastSequence: reply.seq, deduplicated: false };
  }

  #batchHeaders(
    batchId: string,
    index: number,
    commit: boolean,
    message: Outgoing,
    storyId: StoryId,
    expectedSequence: number,
    trace: TraceCarrier | undefined,
  ): MsgHdrs {
    const record: Record<string, string[]> = {
      "Nats-Batch-Id": [batchId],
      "Nats-Batch-Sequence": [String(index + 1)],
    };
    messageIdOf(message, record);
    if (index === 0) Object.assign(record, this.#expectation(storyId, expectedSequence));
    if (commit) record["Nats-Batch-Commit"] = ["1"];
    if (trace) withTraceHeaders(record, trace);
    if (message.signature !== undefined) record[SIGNATURE_HEADER] = [message.signature];
    return natsHeaders(record);
  }

  /**
   * Whether an append that was sent before is stored: the story's head (asked of the leader, which
   * stored it; a follower may not hold it yet) is its last event. Undefined when it is not.
   */
  async #storedAlready(
    storyId: StoryId,
    messages: readonly Outgoing[],
  ): Promise<{ lastSequence: number; deduplicated: true } | undefined> {
    const jsm = await this.#manager();
    const head = await this.#guard(() =>
      jsm.streams.getMessage(this.names.stream, {
        last_by_subj: storySubjects(this.names, storyId),
      }),
    );
    const lastId = messages[messages.length - 1]?.envelope.eventId;
    return head && eventIdOf(head) === lastId
      ? { lastSequence: head.seq, deduplicated: true }
      : undefined;
  }

  /** The headers of the story-wide expectation, checked by the server (see #expectedSubjects). */
  #expectation(storyId: StoryId, expectedSequence: number): Record<string, string[]> {
    return {
      "Nats-Expected-Last-Subject-Sequence": [String(expectedSequence)],
      "Nats-Expected-Last-Subject-Sequence-Subject": [
        this.#expectedSubjects(storyId, expectedSequence),
      ],
    };
  }

  /**
   * The subjects the server checks an append's expectation against: the story's events in its
   * partition once the stream's partition count is known, which the server looks up directly (with
   * `*` for the partition it matches every partition: about a quarter of its CPU per append). Only
   * when the story has events: a wrong partition then matches nothing, the server refuses the
   * append, and append() notices. A story's first event keeps `*`, so a wrong count can never let
   * two first events through.
   */
  #expectedSubjects(storyId: StoryId, expectedSequence: number): string {
    const partitions = this.#partitions;
    return expectedSequence > 0 && partitions !== undefined
      ? storySubjectsInPartition(this.names, storyId, partitions)
      : storySubjects(this.names, storyId);
  }

  /** Reads the stream's partition count; on any failure appends keep the filter over all. */
  async #readPartitions(): Promise<void> {
    this.#partitionsReadAt = Date.now();
    try {
      const jsm = await this.#manager();
      const info = await jsm.streams.info(this.names.stream);
      this.#partitions = partitionCountOf(info.config, this.names.subjectPrefix);
    } catch {
      this.#partitions = undefined;
    }
  }

  /**
   * The events a re-sent append found stored, read from the stream's leader: it acknowledged them,
   * and a follower (which any direct get may reach) may not hold them yet.
   */
  async #storedEvents(first: number, last: number): Promise<RecordedEvent[]> {
    const jsm = await this.#manager();
    const events: RecordedEvent[] = [];
    for (let seq = first; seq <= last; seq++) {
      const msg = await this.#guard(() => jsm.streams.getMessage(this.names.stream, { seq }));
      if (!msg) {
        throw new CorruptEventError({ sequence: seq, reason: "acknowledged but missing" });
      }
      events.push(...this.upcaster.decode(msg.data, msg.seq, msg.subject));
    }
    return events;
  }

  /** Runs a NATS call; wrong-last-sequence becomes WrongLastSequence, outages EventStoreUnavailableError. */
  async #guard<T>(call: () => Promise<T>): Promise<T> {
    this.#ensureConnected();
    try {
      return await call();
    } catch (e) {
      throw guarded(e);
    }
  }

  #ensureConnected(): void {
    if (!this.#connected || this.#nc.isClosed()) {
      throw new EventStoreUnavailableError("JetStream is unavailable: not connected to NATS");
    }
  }

  /** Remembers the story's head, what the next append chains onto, and returns it. */
  #remember(storyId: StoryId, head: StoryHead): StoryHead {
    this.#heads.delete(storyId);
    this.#heads.set(storyId, head);
    if (this.#heads.size > this.#headCacheSize) {
      const oldest = this.#heads.keys().next().value;
      if (oldest !== undefined) this.#heads.delete(oldest);
    }
    return head;
  }

  /** The story's last message, by direct get (any replica), or from the stream's leader. */
  async #fetchHead(storyId: StoryId, fromLeader = false): Promise<StoryHead | undefined> {
    const jsm = await this.#manager();
    const query = { last_by_subj: storySubjects(this.names, storyId) };
    const msg = await this.#guard(() =>
      fromLeader
        ? jsm.streams.getMessage(this.names.stream, query)
        : directGet(jsm, this.names.stream, query),
    );
    if (!msg) {
      this.#heads.delete(storyId);
      return undefined;
    }
    try {
      return this.#remember(storyId, headOf(decodeStoredEvent(msg.data, msg.seq, msg.subject)));
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      // The last message cannot be read. If it is set aside, the head is where the story's chain
      // ends: a whole read says (and remembers it); if not, that read fails with why.
      this.#heads.delete(storyId);
      await this.readStored(storyId, { bySubject: false, fromLeader });
      const head = this.#heads.get(storyId);
      if (head === undefined) throw e;
      return head;
    }
  }

  head(storyId: StoryId): Promise<StoryHead | undefined> {
    return this.#fetchHead(storyId);
  }

  async versionStoredBy(storyId: StoryId, time: Date): Promise<number> {
    const jsm = await this.#manager();
    const messages = await this.#guard(() =>
      collectDirectBatch(
        jsm,
        this.names.stream,
        { multi_last: [storySubjects(this.names, storyId)], up_to_time: time },
        this.#timeout,
      ),
    );
    // One message per event type of the story: the last of each.
    let version = 0;
    for (const msg of messages) {
      version = Math.max(version, decodeStoredEvent(msg.data, msg.seq, msg.subject).version);
    }
    return version;
  }

  async readAt(sequence: number): Promise<StoredEvent | undefined> {
    const jsm = await this.#manager();
    const msg = await this.#guard(() => directGet(jsm, this.names.stream, { seq: sequence }));
    if (!msg) return undefined;
    try {
      return decodeStoredEvent(msg.data, msg.seq, msg.subject);
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      const story = originStory(msg.subject);
      const entry = setAsideEntry(await this.#setAsideIndex(story), msg.seq, msg.data);
      if (entry === undefined) throw e;
      this.#passedOver(story, msg.seq);
      return setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
    }
  }

  /**
   * The messages of a story an operator set aside: the entries of its last EventsSetAside (one
   * direct get, answered from the server's subject index). Asked only when a read meets a message
   * it cannot read, so reads of healthy stories never pay for it.
   */
  async #setAsideIndex(story: string): Promise<SetAsideIndex> {
    try {
      checkedStoryId(story);
    } catch {
      return noneSetAside; // no story could have set it aside
    }
    const jsm = await this.#manager();
    const subject = `${this.names.subjectPrefix}.*.${story}.${ContextEventType.EventsSetAside}`;
    const msg = await this.#guard(() =>
      directGet(jsm, this.names.stream, { last_by_subj: subject }),
    );
    if (!msg) return noneSetAside;
    return setAsideIndexOf(this.upcaster.decode(msg.data, msg.seq, msg.subject)[0]);
  }

  /** Counts (and says once) that a read passed over a message an operator set aside. */
  #passedOver(story: string, sequence: number): void {
    this.#setAsideRead?.inc();
    const key = `${story}\u0000${sequence}`;
    if (this.#logger === undefined || this.#setAsideLogged.has(key)) return;
    if (this.#setAsideLogged.size >= SET_ASIDE_LOGGED) this.#setAsideLogged.clear();
    this.#setAsideLogged.add(key);
    this.#logger.info(
      { storyId: story, sequence },
      "passing over a stored message the story's EventsSetAside sets aside",
    );
  }

  /**
   * One stored message of a story, read in order after the story's `version` (undefined when
   * unknown: the first message after a position whose version the caller did not give): decoded,
   * checked against its subject and its version against the version before it. A message that
   * cannot be read is looked up in the story's set-aside index: what an operator set aside is
   * passed over (undefined) or read as a version only; anything else fails with why.
   */
  #readOne(
    story: StoryId,
    msg: StoredMessage,
    version: number | undefined,
    index: () => Promise<SetAsideIndex>,
  ): StoredEvent | Promise<StoredEvent | undefined> {
    try {
      const event = decodeStoredEvent(msg.data, msg.seq, msg.subject);
      if (version !== undefined) checkFollows(event, version, story);
      return event;
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      return this.#setAsideOrThrow(story, msg, version, index, e);
    }
  }

  async #setAsideOrThrow(
    story: StoryId,
    msg: StoredMessage,
    version: number | undefined,
    index: () => Promise<SetAsideIndex>,
    error: EventReadError,
  ): Promise<StoredEvent | undefined> {
    const entry = setAsideEntry(await index(), msg.seq, msg.data);
    if (entry === undefined) throw error;
    this.#passedOver(story, msg.seq);
    const event = setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
    if (event !== undefined && version !== undefined) checkFollows(event, version, story);
    return event;
  }

  async read(storyId: StoryId, options: ReadOptions = {}): Promise<readonly RecordedEvent[]> {
    const stored = await this.readStored(storyId, options);
    const events: RecordedEvent[] = [];
    let index: Promise<SetAsideIndex> | undefined;
    for (const event of stored) {
      try {
        events.push(...this.upcaster.upcast(event));
      } catch (e) {
        if (!isEventReadError(e)) throw e;
        index ??= this.#setAsideIndex(storyId);
        const setAside = await this.#setAsideStored(event, index, e);
        events.push(...this.upcaster.upcast(setAside));
      }
    }
    return events;
  }

  /**
   * A stored event that cannot be brought to its current shape, as set aside by an operator (read
   * as its version only); fails with `error` when no operator set it aside. Its bytes are read
   * again (a direct get by sequence) for the SHA-256 check: this happens only to such events.
   */
  async #setAsideStored(
    event: StoredEvent,
    index: Promise<SetAsideIndex>,
    error: EventReadError,
  ): Promise<StoredEvent> {
    const entries = await index;
    if (!entries.has(event.sequence)) throw error;
    const jsm = await this.#manager();
    const msg = await this.#guard(() => directGet(jsm, this.names.stream, { seq: event.sequence }));
    const entry = msg && setAsideEntry(entries, msg.seq, msg.data);
    const setAside = entry && setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
    if (!setAside || setAside.version !== event.version) throw error;
    this.#passedOver(event.storyId, event.sequence);
    return setAside;
  }

  async readStored(storyId: StoryId, options: ReadOptions = {}): Promise<readonly StoredEvent[]> {
    const from = options.fromVersion ?? 1;
    // Linked from where the read started, then cut to the versions asked for.
    const asked = (events: readonly StoredEvent[]) =>
      from > 1 ? events.filter((e) => e.version >= from) : events;
    try {
      return asked(
        await this.#linked(storyId, await this.#readStoredOnce(storyId, options), options),
      );
    } catch (e) {
      // Any replica answers a direct get, and one catching up after a restart can answer part of
      // a read (versions that do not follow on, where another replica answered the batch before).
      // That is not the last word: the leader reads the story again before a reader is told that
      // it cannot be read. A message that is unreadable indeed is so on the leader too.
      if (options.fromLeader === true || !isEventReadError(e)) throw e;
      const again = await this.#readStoredOnce(storyId, { ...options, fromLeader: true });
      return asked(await this.#linked(storyId, again, options));
    }
  }

  /**
   * A story's events read in order, each checked as the link after the one before it (see
   * linkStoredEvent; the first after version 1's empty hash, or `afterHash`): a version 2 event
   * whose content does not hash, after the previous event's hash, to its stored hash is refused
   * like any other unreadable message, unless an operator set it aside.
   */
  async #linked(
    storyId: StoryId,
    events: readonly StoredEvent[],
    options: ReadOptions,
  ): Promise<readonly StoredEvent[]> {
    const first = events[0];
    let prev: Uint8Array | undefined =
      first?.version === 1
        ? EMPTY
        : options.afterSequence !== undefined
          ? options.afterHash
          : undefined;
    let replaced: StoredEvent[] | undefined;
    let index: Promise<SetAsideIndex> | undefined;
    for (let i = 0; i < events.length; i++) {
      let event = events[i] as StoredEvent;
      if (prev !== undefined) {
        try {
          linkStoredEvent(event, prev);
        } catch (e) {
          if (!isEventReadError(e)) throw e;
          index ??= this.#setAsideIndex(storyId);
          event = await this.#setAsideStored(event, index, e);
          replaced ??= events.slice();
          replaced[i] = event;
        }
        if (event.setAside !== undefined && event.envelope.envelopeVersion === 2) {
          event.envelope.prevHash = prev;
        }
      }
      prev = event.envelope.hash;
    }
    return replaced ?? events;
  }

  async #readStoredOnce(storyId: StoryId, options: ReadOptions): Promise<readonly StoredEvent[]> {
    const from = options.fromVersion ?? 1;
    const to = options.toVersion ?? Number.POSITIVE_INFINITY;
    const until = options.untilTime?.getTime() ?? Number.POSITIVE_INFINITY;
    const after = options.afterSequence ?? 0;
    // Each event asked for costs the server a lookup and a message, so a bounded read asks for its
    // range alone: versions are gapless, so reading from the story's start up to `to` takes `to`
    // events, and from a known position (afterSequence at fromVersion) `to - from + 1`.
    let size = READ_BATCH;
    if (Number.isFinite(to)) {
      const first = options.afterSequence === undefined ? 1 : from;
      size = Math.min(READ_BATCH, Math.max(1, to - first + 1));
    }
    if (options.sizeHint !== undefined && options.sizeHint >= 1) {
      size = Math.min(size, Math.ceil(options.sizeHint));
    }
    const beyond = (e: StoredEvent) => e.version > to || e.occurredAt.getTime() > until;

    // From the story's start, or from a known event whose version is given: subject by subject.
    if (
      options.bySubject !== false &&
      options.fromLeader !== true &&
      (after === 0 || options.fromVersion !== undefined)
    ) {
      const first = after === 0 ? 1 : from;
      // A message it cannot read is for the read through the filter below to judge, in order.
      const read = await this.#readBySubject(storyId, after, first, to, size, beyond).catch(
        (e: unknown) => {
          if (isEventReadError(e)) return undefined;
          throw e;
        },
      );
      if (read !== undefined) {
        const { head, events } = read;
        if (head) {
          this.#remember(storyId, headOf(head));
        } else if (options.mustExist && options.afterSequence === undefined) {
          throw new StoryNotFoundError(storyId);
        }
        return events;
      }
    }

    const events: StoredEvent[] = [];
    let last: StoredEvent | undefined;
    let lastSequence = 0;
    // Every event must follow the one before it: from the story's start, version 1 comes first;
    // after a position, the first one read sets the pace (the caller checks where it starts).
    let version: number | undefined = after === 0 ? 0 : undefined;
    let index: Promise<SetAsideIndex> | undefined;
    const setAside = () => {
      index ??= this.#setAsideIndex(storyId);
      return index;
    };
    const take = (event: StoredEvent | undefined): boolean => {
      if (event === undefined) return true; // set aside: as if it were not there
      version = event.version;
      last = event;
      if (beyond(event)) return false;
      // Every event read, for the links; readStored keeps those from `from` on.
      events.push(event);
      // The range is complete: asking whether the story goes on would cost another request.
      return event.version < to;
    };
    const reachedEnd = await this.#scan(
      `story ${storyId}`,
      storySubjects(this.names, storyId),
      after + 1,
      size,
      (msg) => {
        lastSequence = msg.seq;
        const read = this.#readOne(storyId, msg, version, setAside);
        return read instanceof Promise ? read.then(take) : take(read);
      },
      options.fromLeader === true,
    );
    if (reachedEnd && last) {
      // The chain goes on from the last event (or set-aside link); the next append expects the
      // story's last message, whatever it is.
      const end: StoredEvent = last;
      this.#remember(storyId, {
        version: end.version,
        sequence: streamSequence(lastSequence),
        hash: end.envelope.hash,
      });
    }
    if (options.mustExist && last === undefined && options.afterSequence === undefined) {
      throw new StoryNotFoundError(storyId);
    }
    return events;
  }

  /**
   * A story's events up to a bound (`beyond`), from its start or after a known event
   * (`firstVersion` is the version of the event after it), read one subject (event type) at a
   * time, with the story's last event (its head) when it has any; undefined when that did not give
   * gapless versions from `firstVersion` (an event of a new type landed while reading, or times out
   * of order across subjects): the caller then reads through the story's filter.
   *
   * Why: the story's filter (`{prefix}.*.{story}.>`) is a wildcard, and for a wildcard nats-server
   * walks the stream's messages from the start sequence on, matching every subject (when a block
   * holds about as many subjects as messages, which is how stories interleave). A story read then
   * costs the server time in proportion to the stream, not the story: 32 ms of CPU for a story of
   * about 12 events in a 156k-message stream. A literal subject is looked up in the server's
   * per-subject index instead: 9 ms there (the write bench's whole-story reads, docs/BENCHMARKS.md).
   * The story's subjects come from the server's subject index: the last message of each (a
   * `multi_last` direct get, which any replica answers, like the reads).
   */
  async #readBySubject(
    storyId: StoryId,
    afterSequence: number,
    firstVersion: number,
    toVersion: number,
    size: number,
    beyond: (event: StoredEvent) => boolean,
  ): Promise<{ head: StoredEvent | undefined; events: StoredEvent[] } | undefined> {
    const jsm = await this.#manager();
    // The last event of each of the story's subjects, found through the server's subject index;
    // only subjects with events after `afterSequence` are read.
    const lasts = await this.#guard(() =>
      collectDirectBatch(
        jsm,
        this.names.stream,
        { multi_last: [storySubjects(this.names, storyId)] },
        this.#timeout,
      ),
    );
    // The story's head: the newest of those.
    let newest: StoredMsg | undefined;
    for (const msg of lasts) if (newest === undefined || msg.seq > newest.seq) newest = msg;
    const head = newest && decodeStoredEvent(newest.data, newest.seq, newest.subject);
    const fresh = lasts.filter((msg) => msg.seq > afterSequence);
    if (head === undefined || fresh.length === 0) return { head, events: [] };
    // No subject holds more of the events to read than there are: up to the story's last version.
    const lastVersion = Math.min(head.version, toVersion);
    const batch = Math.max(1, Math.min(size, lastVersion - firstVersion + 1));
    let bounded = false;
    // A message an operator set aside is passed over here too (versions are checked by the merge),
    // so a repaired story is still read subject by subject.
    let index: Promise<SetAsideIndex> | undefined;
    const setAside = () => {
      index ??= this.#setAsideIndex(storyId);
      return index;
    };
    const parts = await Promise.all(
      fresh.map(async ({ subject }) => {
        const part: StoredEvent[] = [];
        const take = (e: StoredEvent | undefined): boolean => {
          if (e === undefined) return true;
          if (beyond(e)) {
            bounded = true;
            return false;
          }
          part.push(e);
          return e.version < lastVersion;
        };
        await this.#scan(`story ${storyId}`, subject, afterSequence + 1, batch, (msg) => {
          const read = this.#readOne(storyId, msg, undefined, setAside);
          return read instanceof Promise ? read.then(take) : take(read);
        });
        return part;
      }),
    );
    const events = mergeSubjects(parts, firstVersion);
    if (events === undefined) return undefined;
    // Read up to the head's version, the head must be the last event read: a newest message whose
    // version is not the story's last (a repeat stored after it) is for the filter to judge.
    const last = events[events.length - 1];
    if (!bounded && lastVersion === head.version && last?.sequence !== head.sequence) {
      return undefined;
    }
    return { head, events };
  }

  /**
   * Reads the stored messages on `filter` from stream sequence `first` on, batch after batch, and
   * hands each to `visit` until it returns (or resolves) false. Batches start at `size` and grow.
   * Resolves whether the read saw the end of what is stored on `filter`.
   */
  async #scan(
    what: string,
    filter: string,
    first: number,
    size: number,
    visit: (msg: StoredMsg) => boolean | Promise<boolean>,
    fromLeader = false,
  ): Promise<boolean> {
    if (fromLeader) return this.#scanLeader(filter, first, visit);
    const jsm = await this.#manager();
    let nextSequence = first;
    let cuts = 0;
    for (;;) {
      const request = { seq: nextSequence, batch: size, next_by_subj: filter };
      // No messages: nothing (more) is stored on the filter after `seq`.
      const batch = await this.#guard(() =>
        collectDirectBatch(jsm, this.names.stream, request, this.#timeout),
      );
      const extent = batchExtent(batch, size);
      if (extent.usable < batch.length && ++cuts > MAX_CUT_BATCHES) {
        throw new EventStoreUnavailableError(
          `reading ${what}: ${cuts} batches in a row lost messages on the way`,
        );
      }
      for (let i = 0; i < extent.usable; i++) {
        const msg = batch[i] as StoredMsg;
        nextSequence = msg.seq + 1;
        const visited = visit(msg);
        if (!(visited === true || (visited !== false && (await visited)))) {
          return i === extent.usable - 1 && !extent.mayGoOn;
        }
      }
      if (!extent.mayGoOn) return true;
      // The filter goes on past a sized request: grow towards full batches.
      size = Math.min(READ_BATCH, size * 4);
    }
  }

  /**
   * #scan through the stream's leader: `STREAM.MSG.GET` with `next_by_subj`, which only the leader
   * answers, one message per request (it takes no batch). Resolves true when nothing more is stored
   * on `filter`, false when `visit` stopped the read.
   */
  async #scanLeader(
    filter: string,
    first: number,
    visit: (msg: StoredMsg) => boolean | Promise<boolean>,
  ): Promise<boolean> {
    const jsm = await this.#manager();
    for (let next = first; ; ) {
      // nats.js types the request without next_by_subj, which the server takes with seq.
      const query = { seq: next, next_by_subj: filter } as unknown as MsgRequest;
      const msg = await this.#guard(() => jsm.streams.getMessage(this.names.stream, query));
      if (msg === null) return true;
      next = msg.seq + 1;
      const visited = visit(msg);
      if (!(visited === true || (visited !== false && (await visited)))) return false;
    }
  }

  async *readAll(
    options: ReadAllOptions = {},
  ): AsyncIterable<RecordedEvent & { readonly partition: number }> {
    for await (const stored of this.readAllStored(options)) {
      const { partition } = stored;
      let events: readonly RecordedEvent[];
      try {
        events = this.upcaster.upcast(stored);
      } catch (e) {
        if (!isEventReadError(e) || stored.unreadable !== undefined) throw e;
        const index = this.#setAsideIndex(stored.storyId);
        events = this.upcaster.upcast(await this.#setAsideStored(stored, index, e));
      }
      // Object.assign, not a spread: a spread would read (decode) a legacy event's envelope.
      for (const event of events) yield Object.assign(event, { partition });
    }
  }

  async *readAllMessages(options: ReadAllOptions = {}): AsyncIterable<StoredMessage> {
    const jsm = await this.#manager();
    const info = await this.#guard(() => jsm.streams.info(this.names.stream));
    const from = Math.max(options.fromSequence ?? 1, info.state.first_seq);
    const to = Math.min(options.toSequence ?? info.state.last_seq, info.state.last_seq);
    if (info.state.messages === 0 || from > to) return;
    const consumer = await this.#guard(() =>
      this.#js.consumers.get(this.names.stream, {
        filter_subjects: [`${this.names.subjectPrefix}.>`],
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: from,
      }),
    );
    const messages = await consumer.consume({ max_messages: 1024 });
    try {
      for await (const msg of messages) {
        if (msg.seq > to) break;
        const signature = options.signatures === true ? msg.headers?.get(SIGNATURE_HEADER) : "";
        yield {
          seq: msg.seq,
          subject: msg.subject,
          data: msg.data,
          time: msg.time,
          ...(signature ? { signature } : {}),
        };
        if (msg.seq >= to || msg.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
  }

  storyMessages(
    storyId: StoryId,
    options: StoryMessagesOptions = {},
  ): Promise<readonly StoredMessage[]> {
    return this.#messagesOn(`story ${storyId}`, storySubjects(this.names, storyId), options);
  }

  streamMessages(options: StoryMessagesOptions = {}): Promise<readonly StoredMessage[]> {
    return this.#messagesOn(
      `stream ${this.names.stream}`,
      `${this.names.subjectPrefix}.>`,
      options,
    );
  }

  async #messagesOn(
    what: string,
    filter: string,
    options: StoryMessagesOptions,
  ): Promise<readonly StoredMessage[]> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const messages: StoredMessage[] = [];
    let bytes = 0;
    const first = (options.afterSequence ?? 0) + 1;
    if (limit < 1) return messages;
    const size = Math.min(READ_BATCH, limit);
    await this.#scan(what, filter, first, size, (msg) => {
      const signature = msg.header?.get(SIGNATURE_HEADER);
      messages.push(
        signature
          ? { seq: msg.seq, subject: msg.subject, data: msg.data, time: msg.time, signature }
          : msg,
      );
      bytes += msg.data.length;
      return messages.length < limit && bytes < maxBytes;
    });
    return messages;
  }

  async *readAllStored(
    options: ReadAllOptions = {},
  ): AsyncIterable<StoredEvent & { readonly partition: number }> {
    // The set-aside entries of the stories whose messages could not be read, asked once each.
    const indexes = new Map<string, Promise<SetAsideIndex>>();
    const indexOf = (story: string) => {
      let index = indexes.get(story);
      if (index === undefined) {
        if (indexes.size >= SET_ASIDE_LOGGED) indexes.clear();
        index = this.#setAsideIndex(story);
        indexes.set(story, index);
      }
      return index;
    };
    for await (const msg of this.readAllMessages(options)) {
      const { partition } = parseStoredSubject(this.names, msg.subject);
      let event: StoredEvent | undefined;
      try {
        event = decodeStoredEvent(msg.data, msg.seq, msg.subject);
        // A (type, version) no chain reads may be set aside: the replay then yields what the
        // story's readers read (its version only) instead of what they would refuse.
        const shape = { type: event.eventType, version: event.schemaVersion };
        const { registry } = this.upcaster;
        if (!registry.isCurrent(shape) && registry.steps(shape).length === 0) {
          const story = event.storyId;
          const entry = setAsideEntry(await indexOf(story), msg.seq, msg.data);
          if (entry !== undefined) {
            this.#passedOver(story, msg.seq);
            event = setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
          }
        }
      } catch (e) {
        if (!isEventReadError(e)) throw e;
        event = await this.#replayed(msg, indexOf, e);
      }
      if (event !== undefined) yield Object.assign(event, { partition });
    }
  }

  /**
   * A message a replay cannot read: set aside (read as a version only, or passed over), or, when
   * no operator set it aside, an event marked `unreadable` (the upcaster refuses it with `error`).
   */
  async #replayed(
    msg: StoredMessage,
    indexOf: (story: string) => Promise<SetAsideIndex>,
    error: EventReadError,
  ): Promise<StoredEvent | undefined> {
    const story = originStory(msg.subject);
    const entry = setAsideEntry(await indexOf(story), msg.seq, msg.data);
    if (entry === undefined)
      return unreadableEvent(msg.data, msg.seq, msg.subject, msg.time, error);
    this.#passedOver(story, msg.seq);
    return setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
  }

  /** Every stored message of a story, in stream order. */
  async #storyMessages(storyId: StoryId): Promise<StoredMessage[]> {
    const messages: StoredMessage[] = [];
    await this.#scan(
      `story ${storyId}`,
      storySubjects(this.names, storyId),
      1,
      READ_BATCH,
      (msg) => {
        messages.push(msg);
        return true;
      },
    );
    return messages;
  }

  async isSetAside(storyId: string, sequence: number, bytes: Uint8Array): Promise<boolean> {
    const entry = setAsideEntry(await this.#setAsideIndex(storyId), sequence, bytes);
    if (entry !== undefined) this.#passedOver(storyId, sequence);
    return entry !== undefined;
  }

  async examine(storyId: StoryId): Promise<readonly MessageVerdict[]> {
    const messages = await this.#storyMessages(storyId);
    if (messages.length === 0) throw new StoryNotFoundError(storyId);
    const index = await this.#setAsideIndex(storyId);
    return planSetAside(storyId, messages, index, [], this.upcaster).verdicts;
  }

  async setAside(storyId: StoryId, request: SetAsideRequest): Promise<SetAsideResult> {
    if (request.sequences.length === 0) {
      throw new SetAsideRefusedError("name the stream sequence of every message to set aside");
    }
    if (request.reason.trim() === "") {
      throw new SetAsideRefusedError("give the reason: it is recorded in the story's stream");
    }
    const messages = await this.#storyMessages(storyId);
    if (messages.length === 0) throw new StoryNotFoundError(storyId);
    const earlier = await this.#setAsideIndex(storyId);
    const plan = planSetAside(storyId, messages, earlier, request.sequences, this.upcaster);
    // The event chains onto the story's last link and expects its last message, set aside or not.
    const head: StoryHead = {
      version: streamVersion(plan.version),
      sequence: streamSequence(plan.lastSequence),
      hash: plan.hash,
    };
    const data: ContextEventData = {
      case: "eventsSetAside",
      value: create(EventsSetAsideSchema, {
        reason: request.reason,
        operator: request.operator,
        setAside: [...plan.entries],
      }),
    };
    const outgoing = this.#envelopes(
      storyId,
      head,
      [
        {
          data,
          eventId: this.#envelopeVersion === 2 ? "" : uuidv7(),
          named: false,
          occurredAt: new Date(),
        },
      ],
      { correlationId: uuidv7() },
    );
    let result: AppendResult;
    try {
      result = await this.#publish(storyId, head, outgoing, traceCarrierOf());
    } catch (e) {
      if (!(e instanceof WrongLastSequence)) throw e;
      throw new SetAsideRefusedError(
        `a message was stored on story ${storyId} meanwhile: examine the story again`,
        { cause: e },
      );
    }
    return {
      event: result.events[0] as RecordedEvent,
      added: plan.added.map((e) => ({
        sequence: Number(e.sequence),
        version: e.version,
        problem: e.problem,
      })),
    };
  }
}

/** The event id of a stored message; undefined when it is no event a reader can read. */
function eventIdOf(msg: StoredMsg): string | undefined {
  try {
    return decodeStoredEvent(msg.data, msg.seq, msg.subject).eventId;
  } catch (e) {
    if (isEventReadError(e)) return undefined;
    throw e;
  }
}

/**
 * The Nats-Msg-Id header (the event id), by which the server drops a copy of a message it stored
 * within its duplicate window: on version 1 envelopes, and on events the caller named (an id
 * given in NewEvent: the caller may send them again, from any store, and expects them stored
 * once). A version 2 envelope whose id the store made goes without: the header is stored with the
 * event (about 10 of its bytes on disk), and a re-send of it is refused by the story-wide
 * expectation, which the store then tells from a conflict by the story's head (#storedAlready).
 */
function messageIdOf(message: Outgoing, record: Record<string, string[]>): void {
  if (message.messageId !== undefined) record["Nats-Msg-Id"] = [message.messageId];
}

/** Where an event leaves its story: what the next append chains onto. */
function headOf(event: Pick<StoredEvent, "version" | "sequence" | "envelope">): StoryHead {
  return { version: event.version, sequence: event.sequence, hash: event.envelope.hash };
}

/** Internal: the server's wrong-last-sequence answer, turned into a ConcurrencyError by append. */
class WrongLastSequence extends Error {
  override name = "WrongLastSequence";
}

/**
 * Internal: the server cannot judge the append yet, because a message with its id, or another
 * message of the story, is still in process (not settled by the stream's replicas): #publish
 * asks again shortly.
 */
class StillInProcess extends Error {
  override name = "StillInProcess";
}

// "duplicate message id is in process", and the wrong-last-sequence answer without a sequence that
// a clustered stream gives while another message of the expected subjects is in process.
const DUPLICATE_IN_PROCESS = 10158;
const SUBJECT_IN_PROCESS = 10164;
/**
 * Refusals after which nothing of the append is stored and a later try can succeed: the stream has
 * no leader or quorum right now (any 503, and TRANSIENT_API_ERRORS), the leader changed during an
 * atomic batch, so the new one saw its commit without its start ("batch is incomplete", 10176), or
 * too many batches are in flight (10211).
 */
const RETRIABLE_REFUSALS: ReadonlySet<number> = new Set([...TRANSIENT_API_ERRORS, 10176, 10211]);
/** Attempts, and the pause that grows by this much before each, while an append is in process. */
const UNSETTLED_ATTEMPTS = 8;
const UNSETTLED_PAUSE_MS = 50;

/**
 * What a publish the server refused throws: StillInProcess (asked again), EventStoreUnavailableError
 * for a refusal a later try can get past (the RPC edge answers UNAVAILABLE), else `otherwise`.
 */
function refusal(error: ApiError, otherwise: Error): Error {
  if (error.err_code === DUPLICATE_IN_PROCESS || error.err_code === SUBJECT_IN_PROCESS) {
    return new StillInProcess(`${error.description} (${error.err_code})`);
  }
  if (error.code === 503 || RETRIABLE_REFUSALS.has(error.err_code ?? 0)) {
    return new EventStoreUnavailableError(
      `JetStream cannot take the append now: ${error.description} (${error.err_code})`,
      { cause: otherwise },
    );
  }
  return otherwise;
}

/** What a failed NATS call throws: WrongLastSequence, EventStoreUnavailableError, or the error. */
function guarded(e: unknown): unknown {
  if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) {
    return new WrongLastSequence(e.message, { cause: e });
  }
  if (isNatsOutage(e)) {
    return new EventStoreUnavailableError(`JetStream is unavailable: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return e;
}

/**
 * A publish's NATS headers from values this store made: ids checked on the way in (see
 * checkedEventId), numbers and subjects. `MsgHdrs.set` validates the value and searches the keys
 * twice per header, which costs more than encoding them.
 */
function natsHeaders(record: Record<string, string[]>): MsgHdrs {
  return MsgHdrsImpl.fromRecord(record);
}

/**
 * Adds the W3C trace context of the append to a message's headers. Made by the propagator (a
 * traceparent is 55 characters of [0-9a-f-]; a tracestate at most 32 list members of checked
 * characters), so safe as header values.
 */
function withTraceHeaders(record: Record<string, string[]>, trace: TraceCarrier): void {
  record[traceHeaders.traceparent] = [trace.traceparent];
  if (trace.tracestate) record[traceHeaders.tracestate] = [trace.tracestate];
}

// An event id travels as the Nats-Msg-Id header value: printable ASCII without spaces.
const EVENT_ID = /^[\x21-\x7e]{1,128}$/;

/** An event id given by the caller, checked before it goes into a header. */
function checkedEventId(id: string): string {
  if (!EVENT_ID.test(id)) {
    throw new RangeError(
      `invalid event id ${JSON.stringify(id)}: expected 1-128 printable ASCII characters without spaces`,
    );
  }
  return id;
}
