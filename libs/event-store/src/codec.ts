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
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
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

/** Decodes and checks an envelope. @throws CorruptEventError */
function decodeEnvelope(bytes: Uint8Array, sequence: number): ContextEvent {
  let envelope: ContextEvent;
  try {
    envelope = fromBinary(ContextEventSchema, bytes);
  } catch (e) {
    throw new CorruptEventError(sequence, "undecodable protobuf", { cause: e });
  }
  if (envelope.payload.case === undefined) throw new CorruptEventError(sequence, "no payload");
  if (!envelope.occurredAt) throw new CorruptEventError(sequence, "no occurred_at");
  if (envelope.storyId === "" || envelope.version < 1) {
    throw new CorruptEventError(sequence, "no story id or version");
  }
  return envelope;
}

/**
 * The payload bytes of an envelope, as written: the payload field's bytes, found by walking the
 * envelope's top-level fields (no decoding, no re-encoding); undefined when the field is absent.
 * @throws RangeError on truncated bytes.
 */
export function payloadBytes(bytes: Uint8Array, fieldNumber: number): Uint8Array | undefined {
  let pos = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= bytes.length) throw new RangeError("truncated varint");
      const b = bytes[pos++] as number;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
      if (shift > 63) throw new RangeError("varint too long");
    }
  };
  let found: Uint8Array | undefined;
  while (pos < bytes.length) {
    const tag = varint();
    const wireType = tag % 8;
    const number = Math.floor(tag / 8);
    if (wireType === 0) varint();
    else if (wireType === 1) pos += 8;
    else if (wireType === 5) pos += 4;
    else if (wireType === 2) {
      const length = varint();
      if (number === fieldNumber) found = bytes.subarray(pos, pos + length);
      pos += length;
    } else throw new RangeError(`unexpected wire type ${wireType} at the envelope's top level`);
    if (pos > bytes.length) throw new RangeError("truncated field");
  }
  return found;
}

function storedOf(
  envelope: ContextEvent,
  bytes: Uint8Array,
  sequence: number,
  legacySchemas: LegacySchemas,
): StoredEvent {
  const data = envelope.payload as ContextEventData;
  // The envelope decoded the payload with today's message; an older schema's bytes are read
  // again, straight from the stored bytes, with the message they were written with.
  const legacy = legacySchemas[envelope.eventType]?.[envelope.schemaVersion];
  let payload: Message = data.value;
  if (legacy) {
    try {
      const field = ContextEventSchema.field[data.case];
      payload = fromBinary(legacy, payloadBytes(bytes, field.number) ?? new Uint8Array(0));
    } catch (e) {
      throw new CorruptEventError(sequence, `undecodable ${legacy.typeName} payload`, { cause: e });
    }
  }
  return {
    sequence: streamSequence(sequence),
    storyId: storyId(envelope.storyId),
    version: streamVersion(envelope.version),
    eventId: envelope.eventId,
    eventType: envelope.eventType,
    schemaVersion: envelope.schemaVersion,
    occurredAt: timestampDate(envelope.occurredAt as Timestamp),
    payload,
    envelope,
  };
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
  return storedOf(decodeEnvelope(bytes, sequence), bytes, sequence, legacySchemas);
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

  // Today's shape: the envelope's own payload, one object, no copies (the common case).
  const asIs = (
    p: EventPosition,
    eventType: string,
    schemaVersion: number,
    data: RecordedEvent["data"],
    part?: number,
  ): RecordedEvent => ({
    sequence: p.sequence,
    storyId: p.storyId,
    version: p.version,
    eventId: p.eventId,
    occurredAt: p.occurredAt,
    envelope: p.envelope,
    eventType,
    schemaVersion,
    data,
    ...(part === undefined ? {} : { part }),
  });

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
      const envelope = decodeEnvelope(bytes, sequence);
      if (current.get(envelope.eventType) === envelope.schemaVersion) {
        return [
          {
            sequence: streamSequence(sequence),
            storyId: storyId(envelope.storyId),
            version: streamVersion(envelope.version),
            eventId: envelope.eventId,
            occurredAt: timestampDate(envelope.occurredAt as Timestamp),
            envelope,
            eventType: envelope.eventType,
            schemaVersion: envelope.schemaVersion,
            data: envelope.payload as ContextEventData,
          },
        ];
      }
      return upcast(storedOf(envelope, bytes, sequence, legacySchemas));
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
