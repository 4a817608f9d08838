import { type DescMessage, fromBinary, type Message } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type ContextEventData,
  type DroppedEventData,
  payloadCaseOf,
  type StoryId,
  type StreamVersion,
  storyId,
  streamVersion,
} from "@ctx/domain";
import {
  type ContextEvent,
  type ContextEventFrame,
  ContextEventFrameSchema,
  ContextEventSchema,
} from "@ctx/proto";
import { isUpcastError, type UpcasterRegistry, type VersionedEvent } from "@ctx/upcasting";
import { CorruptEventError, UnreadableEventError } from "./errors.ts";
import { contextUpcasters, legacyPayloadSchemas } from "./upcasting/context-upcasters.ts";

/** Position of a message in the JetStream stream (not a story version). */
export type StreamSequence = number & { readonly __brand: "StreamSequence" };
export const streamSequence = (n: number) => n as StreamSequence;

/** The envelope fields every view of a stored event shares. */
interface EventPosition {
  readonly sequence: StreamSequence;
  readonly storyId: StoryId;
  /** The stored event's position in its story: upcasting never changes it. */
  readonly version: StreamVersion;
  readonly eventId: string;
  readonly occurredAt: Date;
  /** The envelope exactly as stored (hash chain, correlation and command ids, stored payload). */
  readonly envelope: ContextEvent;
}

/**
 * An event as stored, before upcasting: its payload decoded with the message of the schema version
 * it was written with (a context.legacy.v1 message for old versions). For tools that show what is
 * stored (`ctx events upcast --dry-run`); every other reader wants RecordedEvent.
 */
export interface StoredEvent extends EventPosition {
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly payload: Message;
}

/**
 * An event in its current shape, as every reader sees it: the stored event upcast. One stored event
 * usually gives one; an upcaster that splits gives several that share the stored version (numbered
 * by `part`), and an upcaster that drops gives one with an empty payload (`data.case` undefined),
 * so versions stay gapless for every consumer.
 */
export interface RecordedEvent extends EventPosition {
  /** The current event type (an upcaster may have renamed the stored one). */
  readonly eventType: string;
  /** The current schema version of that type. */
  readonly schemaVersion: number;
  readonly data: ContextEventData | DroppedEventData;
  /** Index among the events one stored event was split into; absent when it was not split. */
  readonly part?: number;
}

/**
 * Whether `event` comes right after a story position: the next version, or a later part of the
 * same stored (split) event.
 */
export function followsOn(
  version: number,
  event: Pick<RecordedEvent, "version" | "part">,
): boolean {
  return event.version === version + 1
    ? (event.part ?? 0) === 0
    : event.version === version && (event.part ?? 0) > 0;
}

type LegacySchemas = Readonly<Record<string, Readonly<Record<number, DescMessage>>>>;

/** A checked frame: a payload is present. */
type Frame = ContextEventFrame & {
  readonly payload: { readonly case: ContextEventData["case"]; readonly value: Uint8Array };
};

/**
 * Decodes and checks an envelope, leaving its payload encoded: a reader then decodes the payload
 * once, with the message of the schema version it was written with.
 * @throws CorruptEventError
 */
function decodeFrame(bytes: Uint8Array, sequence: number): Frame {
  let frame: ContextEventFrame;
  try {
    frame = fromBinary(ContextEventFrameSchema, bytes);
  } catch (e) {
    throw new CorruptEventError(sequence, "undecodable protobuf", { cause: e });
  }
  if (frame.payload.case === undefined) throw new CorruptEventError(sequence, "no payload");
  if (!frame.occurredAt) throw new CorruptEventError(sequence, "no occurred_at");
  if (frame.storyId === "" || frame.version < 1) {
    throw new CorruptEventError(sequence, "no story id or version");
  }
  return frame as Frame;
}

/** A payload's bytes decoded with `schema`. @throws CorruptEventError */
function decodePayload(schema: DescMessage, bytes: Uint8Array, sequence: number): Message {
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    throw new CorruptEventError(sequence, `undecodable ${schema.typeName} payload`, { cause: e });
  }
}

/** Today's message of a payload field. */
function currentPayloadSchema(c: ContextEventData["case"]): DescMessage {
  return ContextEventSchema.field[c].message as DescMessage;
}

/**
 * The envelope of a frame whose payload is in today's schema: what decoding the stored bytes as
 * a ContextEvent gives, unknown fields included (so it encodes back to the stored bytes).
 */
function envelopeOf(frame: Frame, payload: Message): ContextEvent {
  const envelope: ContextEvent = {
    $typeName: ContextEventSchema.typeName,
    eventId: frame.eventId,
    storyId: frame.storyId,
    version: frame.version,
    occurredAt: frame.occurredAt,
    eventType: frame.eventType,
    schemaVersion: frame.schemaVersion,
    correlationId: frame.correlationId,
    causationId: frame.causationId,
    commandId: frame.commandId,
    commandEventIndex: frame.commandEventIndex,
    prevHash: frame.prevHash,
    hash: frame.hash,
    commandName: frame.commandName,
    commandFingerprint: frame.commandFingerprint,
    payload: { case: frame.payload.case, value: payload } as ContextEvent["payload"],
  };
  if (frame.$unknown) envelope.$unknown = frame.$unknown;
  return envelope;
}

function storedOf(
  frame: Frame,
  bytes: Uint8Array,
  sequence: number,
  legacySchemas: LegacySchemas,
): StoredEvent {
  const position: Position = {
    sequence: streamSequence(sequence),
    storyId: storyId(frame.storyId),
    version: streamVersion(frame.version),
    eventId: frame.eventId,
    eventType: frame.eventType,
    schemaVersion: frame.schemaVersion,
    occurredAt: timestampDate(frame.occurredAt as Timestamp),
  };
  const legacy = legacySchemas[frame.eventType]?.[frame.schemaVersion];
  if (!legacy) {
    // Today's schema (or a version no legacy message describes: read with today's message, and
    // the upcaster refuses it).
    const payload = decodePayload(
      currentPayloadSchema(frame.payload.case),
      frame.payload.value,
      sequence,
    );
    return Object.assign(position, { payload, envelope: envelopeOf(frame, payload) });
  }
  return new LegacyStoredEvent(
    position,
    decodePayload(legacy, frame.payload.value, sequence),
    bytes,
  );
}

type Position = Omit<StoredEvent, "payload" | "envelope">;

/**
 * A stored event of an older schema: its payload decoded once, with the message it was written
 * with. Its envelope as a ContextEvent (today's payload message carrying the old fields as unknown
 * ones) is decoded only when asked for: hash checks and parking do, replays and projections do
 * not. A class, so the lazy envelope costs no closure per event; being a getter, it is not copied
 * by a spread (read it explicitly).
 */
class LegacyStoredEvent implements StoredEvent {
  readonly sequence: StreamSequence;
  readonly storyId: StoryId;
  readonly version: StreamVersion;
  readonly eventId: string;
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly occurredAt: Date;
  readonly payload: Message;
  readonly #bytes: Uint8Array;
  #envelope: ContextEvent | undefined;

  constructor(position: Position, payload: Message, bytes: Uint8Array) {
    this.sequence = position.sequence;
    this.storyId = position.storyId;
    this.version = position.version;
    this.eventId = position.eventId;
    this.eventType = position.eventType;
    this.schemaVersion = position.schemaVersion;
    this.occurredAt = position.occurredAt;
    this.payload = payload;
    this.#bytes = bytes;
  }

  get envelope(): ContextEvent {
    this.#envelope ??= fromBinary(ContextEventSchema, this.#bytes);
    return this.#envelope;
  }
}

/** An upcast event of a LegacyStoredEvent: its envelope is the stored one's, read when asked for. */
class UpcastEvent implements RecordedEvent {
  readonly sequence: StreamSequence;
  readonly storyId: StoryId;
  readonly version: StreamVersion;
  readonly eventId: string;
  readonly occurredAt: Date;
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly data: RecordedEvent["data"];
  declare readonly part?: number;
  readonly #stored: StoredEvent;

  constructor(
    stored: StoredEvent,
    eventType: string,
    schemaVersion: number,
    data: RecordedEvent["data"],
    part: number | undefined,
  ) {
    this.eventType = eventType;
    this.schemaVersion = schemaVersion;
    this.data = data;
    this.sequence = stored.sequence;
    this.storyId = stored.storyId;
    this.version = stored.version;
    this.eventId = stored.eventId;
    this.occurredAt = stored.occurredAt;
    this.#stored = stored;
    if (part !== undefined) Object.assign(this, { part });
  }

  get envelope(): ContextEvent {
    return this.#stored.envelope;
  }
}

/**
 * Decodes one stored message as stored, with its payload in its stored schema.
 * @throws CorruptEventError for bytes that are not a complete envelope.
 */
export function decodeStoredEvent(
  bytes: Uint8Array,
  sequence: number,
  legacySchemas: LegacySchemas = legacyPayloadSchemas,
): StoredEvent {
  return storedOf(decodeFrame(bytes, sequence), bytes, sequence, legacySchemas);
}

/**
 * Brings stored events to their current shape with an upcaster registry. Every reader goes through
 * one (the event store's read and readAll, projectors, the query service, replays and rebuilds), so
 * no reader ever sees an old shape.
 */
export interface EventUpcaster {
  readonly registry: UpcasterRegistry;
  /**
   * The stored event in its current shape.
   * @throws UnreadableEventError when no chain reads it or a step refuses it (projectors park it).
   */
  upcast(stored: StoredEvent): readonly RecordedEvent[];
  /** Decodes and upcasts one stored message. @throws CorruptEventError, UnreadableEventError */
  decode(bytes: Uint8Array, sequence: number): readonly RecordedEvent[];
}

export interface EventUpcasterOptions {
  /** Default: the product's chains (`contextUpcasters`). */
  readonly registry?: UpcasterRegistry;
  /** Messages of old (type, version) payloads. Default: context.legacy.v1's. */
  readonly legacySchemas?: Readonly<Record<string, Readonly<Record<number, DescMessage>>>>;
}

export function createEventUpcaster(options: EventUpcasterOptions = {}): EventUpcaster {
  const registry = options.registry ?? contextUpcasters;
  const legacySchemas = options.legacySchemas ?? legacyPayloadSchemas;
  const { current } = registry;

  // An event at the stored one's position. The stored envelope is shared when it is decoded
  // already, and read from the stored event when asked for when not (a legacy one).
  const asIs = (
    p: StoredEvent,
    eventType: string,
    schemaVersion: number,
    data: RecordedEvent["data"],
    part?: number,
  ): RecordedEvent => {
    if (p instanceof LegacyStoredEvent)
      return new UpcastEvent(p, eventType, schemaVersion, data, part);
    const event: RecordedEvent = {
      sequence: p.sequence,
      storyId: p.storyId,
      version: p.version,
      eventId: p.eventId,
      occurredAt: p.occurredAt,
      envelope: p.envelope,
      eventType,
      schemaVersion,
      data,
    };
    return part === undefined ? event : Object.assign(event, { part });
  };

  const upcast = (stored: StoredEvent): readonly RecordedEvent[] => {
    const { eventType, schemaVersion } = stored;
    if (current.get(eventType) === schemaVersion) {
      return [asIs(stored, eventType, schemaVersion, stored.envelope.payload as ContextEventData)];
    }
    let upcasted: readonly VersionedEvent[];
    try {
      upcasted = registry.upcast({
        type: eventType,
        version: schemaVersion,
        payload: stored.payload,
      });
    } catch (e) {
      if (!isUpcastError(e)) throw e;
      throw new UnreadableEventError(stored.sequence, e.message, { cause: e });
    }
    if (upcasted.length === 0) return [asIs(stored, eventType, schemaVersion, { case: undefined })];
    return upcasted.map((event, i) => {
      const c = payloadCaseOf(event.type);
      if (c === undefined) {
        throw new UnreadableEventError(
          stored.sequence,
          `upcast to ${event.type}, which is no event type`,
        );
      }
      const data = { case: c, value: event.payload } as ContextEventData;
      return asIs(stored, event.type, event.version, data, upcasted.length > 1 ? i : undefined);
    });
  };

  return {
    registry,
    upcast,
    decode(bytes, sequence) {
      const frame = decodeFrame(bytes, sequence);
      if (current.get(frame.eventType) === frame.schemaVersion) {
        const c = frame.payload.case;
        const envelope = envelopeOf(
          frame,
          decodePayload(currentPayloadSchema(c), frame.payload.value, sequence),
        );
        return [
          {
            sequence: streamSequence(sequence),
            storyId: storyId(frame.storyId),
            version: streamVersion(frame.version),
            eventId: frame.eventId,
            occurredAt: timestampDate(frame.occurredAt as Timestamp),
            envelope,
            eventType: frame.eventType,
            schemaVersion: frame.schemaVersion,
            data: envelope.payload as ContextEventData,
          },
        ];
      }
      return upcast(storedOf(frame, bytes, sequence, legacySchemas));
    },
  };
}

/** The product's upcaster: context.legacy.v1 payloads and the shipped chains. */
export const contextEventUpcaster: EventUpcaster = createEventUpcaster();

/**
 * Decodes one stored message into its current shape (see RecordedEvent), with the product's
 * upcasters unless another upcaster is given.
 * @throws CorruptEventError, UnreadableEventError
 */
export function decodeEvent(
  bytes: Uint8Array,
  sequence: number,
  upcaster: EventUpcaster = contextEventUpcaster,
): readonly RecordedEvent[] {
  return upcaster.decode(bytes, sequence);
}

/**
 * The envelope of an event in its current shape, for answers that return envelopes (ListEvents,
 * DiffContext): the stored one when nothing was upcast, else a copy with the current type, schema
 * version and payload. Its hash fields are the stored event's; verify chains on stored envelopes.
 */
export function currentEnvelope(event: RecordedEvent): ContextEvent {
  const stored = event.envelope;
  if (stored.eventType === event.eventType && stored.schemaVersion === event.schemaVersion) {
    return stored;
  }
  return {
    ...stored,
    eventType: event.eventType,
    schemaVersion: event.schemaVersion,
    payload: event.data,
  };
}
