import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ContextEventData,
  currentSchemaVersion,
  eventTypeOf,
  type StoryId,
  StoryNotFoundError,
  streamVersion,
} from "@ctx/domain";
import { uuidv7 } from "@ctx/ids";
import { type ContextEvent, EventsSetAsideSchema } from "@ctx/proto";
import { inSpan, type TraceCarrier, traceCarrierOf, traceHeaders, tracing } from "@ctx/telemetry";
import { type ApiError, JetStreamApiError } from "@nats-io/jetstream";
import { type MsgHdrs, MsgHdrsImpl, errors as natsErrors } from "@nats-io/transport-node";
import { trace as otelTrace, SpanKind } from "@opentelemetry/api";
import { type AckPublisher, createAckPublisher, type OutgoingMessage } from "./ack-publisher.ts";
import { type RecordedEvent, type StoredEvent, streamSequence } from "./codec.ts";
import {
  AppendFailedError,
  ConcurrencyError,
  EventStoreUnavailableError,
  isEventReadError,
  SetAsideRefusedError,
  TRANSIENT_API_ERRORS,
} from "./errors.ts";
import type { EventReader } from "./event-reader.ts";
import { eventSigner, SIGNATURE_HEADER } from "./event-signing.ts";
import type {
  AppendMetadata,
  AppendResult,
  EventStore,
  EventStoreOptions,
  ExpectedVersion,
  NewEvent,
  SetAsideRequest,
  SetAsideResult,
  StoryHead,
} from "./event-store.ts";
import {
  eventSubject,
  partitionCountOf,
  storySubjects,
  storySubjectsInPartition,
} from "./event-stream.ts";
import { encodeWithHash } from "./hash-chain.ts";
import { planSetAside } from "./set-aside.ts";
import {
  EMPTY,
  guarded,
  headOf,
  type StoreCore,
  WRONG_LAST_SEQUENCE,
  WrongLastSequence,
} from "./store-core.ts";

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

const BATCH_DUPLICATE_MSG_ID = 10201;

/**
 * The event store's writes, append and setAside, over the core it shares with the reader (see
 * createEventStore): envelopes chained onto the story's head, published with the story-wide
 * expectation, re-sent and told from conflicts when an ack is lost. What it must know of the stream
 * (heads, what a re-sent append found stored) it asks the reader. Internal to the package.
 */
export class EventAppender implements Pick<EventStore, "append" | "setAside"> {
  readonly #core: StoreCore;
  readonly #reader: EventReader;
  readonly #acks: AckPublisher;
  readonly #maxAnyRetries: number;
  /**
   * The stream's partition count, read from its subject transform: appends then name the story's
   * partition in their expectation (see #expectedSubjects). Undefined until read, when the stream is
   * partitioned otherwise, and after an append showed it wrong; read again at most every 10 s.
   */
  #partitions: number | undefined;
  #partitionsReadAt = Number.NEGATIVE_INFINITY;
  readonly #sign: ((hash: Uint8Array) => string) | undefined;
  readonly #envelopeVersion: 1 | 2;

  constructor(core: StoreCore, reader: EventReader, options: EventStoreOptions) {
    this.#core = core;
    this.#reader = reader;
    this.#acks = createAckPublisher(core.nc, core.timeout);
    this.#maxAnyRetries = options.maxAnyRetries ?? 10;
    this.#sign = options.signingKey && eventSigner(options.signingKey);
    this.#envelopeVersion = options.envelopeVersion ?? 2;
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
      `send ${this.#core.names.stream}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "send",
          "messaging.destination.name": this.#core.names.stream,
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
      const head = await this.#reader.head(storyId);
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
      let head = this.#core.cachedHead(storyId) ?? (await this.#reader.fetchHead(storyId));
      if (expected !== "any" && (head?.version ?? 0) !== expected) {
        // The cached head may be stale; only the server's answer counts (its leader's: a
        // follower may be behind).
        head = await this.#reader.fetchHead(storyId, true);
        const actual = head?.version ?? streamVersion(0);
        if (actual !== expected) throw new ConcurrencyError(storyId, expected, actual);
      }
      const outgoing = this.#envelopes(storyId, head, stamped, metadata);
      try {
        return await this.#publish(storyId, head, outgoing, trace);
      } catch (e) {
        if (!(e instanceof WrongLastSequence)) throw e;
        this.#core.forget(storyId);
        // The leader refused the expectation: ask it what the head is (a follower may not know).
        const current = await this.#reader.fetchHead(storyId, true);
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
    const v2 = this.#envelopeVersion === 2;
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
        commandFingerprint:
          index === 0 && !(v2 && metadata.fingerprintDerivable === true)
            ? (metadata.commandFingerprint ?? EMPTY)
            : EMPTY,
        principal: metadata.principal ?? "",
        envelopeVersion: v2 ? 2 : 0,
        payload: event.data,
      };
      const bytes = encodeWithHash(envelope);
      prevHash = envelope.hash;
      return {
        envelope,
        subject: eventSubject(this.#core.names, storyId, eventType),
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
          const stored = await this.#storedAlready(storyId, expectedSequence, messages);
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
        if (!timedOut || !this.#core.connected || ++timeouts >= 3) throw e;
      }
    }
    const { lastSequence, deduplicated } = outcome;
    const first = lastSequence - messages.length + 1;
    // A re-sent append returns what the server stored the first time, not what was re-sent.
    const recorded = deduplicated
      ? await this.#reader.storedEvents(first, lastSequence)
      : messages.flatMap((m, i) => this.#written(m, first + i));
    const last = recorded[recorded.length - 1] as RecordedEvent;
    this.#core.remember(storyId, headOf(last));
    return { version: last.version, events: recorded, deduplicated };
  }

  /**
   * An event this store just wrote, as its readers will see it: built from the envelope instead of
   * decoding the bytes again (what is written is current; anything else goes through the upcaster).
   */
  #written(m: Outgoing, sequence: number): readonly RecordedEvent[] {
    const { envelope } = m;
    const shape = { type: envelope.eventType, version: envelope.schemaVersion };
    if (!this.#core.upcaster.registry.isCurrent(shape) || !envelope.occurredAt) {
      return this.#core.upcaster.decode(m.bytes, sequence, m.subject);
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
    // StoreCore.guard's checks, without its two extra async frames on the path every append takes.
    this.#core.ensureConnected();
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
      // The batch was sent before (its ack was lost): the events are stored if the story's head,
      // or the versions after the expectation, are ours.
      const stored = await this.#storedAlready(storyId, expectedSequence, messages);
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
   * Whether an append that was sent before is stored, asked of the stream's leader (which stored
   * it; a follower may not hold it yet). Either the story's head is its last event (the usual case,
   * and the only one for named events sent again by a caller, whose first attempt carried another
   * expectation), or, since this attempt's expectation was the first one's too, its events are the
   * story's first ones after `expectedSequence`, at the versions they were given, and other writers'
   * events followed them before the re-send. Undefined when neither holds, or they cannot be read.
   */
  async #storedAlready(
    storyId: StoryId,
    expectedSequence: number,
    messages: readonly Outgoing[],
  ): Promise<{ lastSequence: number; deduplicated: true } | undefined> {
    const head = await this.#reader.lastOnLeader(storyId);
    const lastId = messages[messages.length - 1]?.envelope.eventId;
    if (head === undefined) return undefined;
    if (head.eventId === lastId) return { lastSequence: head.sequence, deduplicated: true };
    const first = (messages[0] as Outgoing).envelope;
    let stored: readonly StoredEvent[];
    try {
      stored = await this.#reader.readStored(storyId, {
        fromVersion: first.version,
        toVersion: first.version + messages.length - 1,
        afterSequence: expectedSequence,
        ...(first.version > 1 ? { afterHash: first.prevHash } : {}),
        fromLeader: true,
      });
    } catch (e) {
      if (isEventReadError(e)) return undefined;
      throw e;
    }
    if (stored.length !== messages.length) return undefined;
    for (const [i, event] of stored.entries()) {
      if (event.eventId !== messages[i]?.envelope.eventId) return undefined;
    }
    return {
      lastSequence: Number((stored[stored.length - 1] as StoredEvent).sequence),
      deduplicated: true,
    };
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
      ? storySubjectsInPartition(this.#core.names, storyId, partitions)
      : storySubjects(this.#core.names, storyId);
  }

  /** Reads the stream's partition count; on any failure appends keep the filter over all. */
  async #readPartitions(): Promise<void> {
    this.#partitionsReadAt = Date.now();
    try {
      const jsm = await this.#core.manager();
      const info = await jsm.streams.info(this.#core.names.stream);
      this.#partitions = partitionCountOf(info.config, this.#core.names.subjectPrefix);
    } catch {
      this.#partitions = undefined;
    }
  }

  async setAside(storyId: StoryId, request: SetAsideRequest): Promise<SetAsideResult> {
    if (request.sequences.length === 0) {
      throw new SetAsideRefusedError("name the stream sequence of every message to set aside");
    }
    if (request.reason.trim() === "") {
      throw new SetAsideRefusedError("give the reason: it is recorded in the story's stream");
    }
    const messages = await this.#reader.allStoryMessages(storyId);
    if (messages.length === 0) throw new StoryNotFoundError(storyId);
    const earlier = await this.#reader.setAsideIndex(storyId);
    const plan = planSetAside(storyId, messages, earlier, request.sequences, this.#core.upcaster);
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

/**
 * The Nats-Msg-Id header (the event id), by which the server drops a copy of a message it stored
 * within its duplicate window: on version 1 envelopes, and on events the caller named (an id
 * given in NewEvent: the caller may send them again, from any store, and expects them stored
 * once). A version 2 envelope whose id the store made goes without: the header is stored with the
 * event (about 10 of its bytes on disk), and a re-send of it is refused by the story-wide
 * expectation, which the store then tells from a conflict by the story's head or what was stored
 * right after the expected sequence (#storedAlready).
 */
function messageIdOf(message: Outgoing, record: Record<string, string[]>): void {
  if (message.messageId !== undefined) record["Nats-Msg-Id"] = [message.messageId];
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
