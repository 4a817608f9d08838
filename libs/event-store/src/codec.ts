import { create, type DescMessage, fromBinary, type Message } from "@bufbuild/protobuf";
import {
  EmptySchema,
  type Timestamp,
  timestampDate,
  timestampFromMs,
} from "@bufbuild/protobuf/wkt";
import {
  type ContextEventData,
  type DroppedEventData,
  eventTypeOf,
  payloadCaseOf,
  type StoryId,
  type StreamVersion,
  storyId,
  streamVersion,
} from "@ctx/domain";
import { uuidText, uuidv7Of } from "@ctx/ids";
import {
  type ContextEvent,
  type ContextEventFrame,
  ContextEventFrameSchema,
  ContextEventSchema,
  type SetAsideMessage,
  type StoredContextEventFrame,
  StoredContextEventFrameSchema,
} from "@ctx/proto";
import { isUpcastError, type UpcasterRegistry, type VersionedEvent } from "@ctx/upcasting";
import {
  CorruptEventError,
  EventMismatchError,
  type EventReadError,
  type EventReadProblem,
  UnreadableEventError,
} from "./errors.ts";
import { isEnvelopeV2, storedHashMatches, V2_HASH_BYTES } from "./stored-hash.ts";
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
  /**
   * Present when the stored message at this position was set aside by an operator (the story's
   * last EventsSetAside lists it): readers count its version and nothing else. Its `envelope` is
   * what its bytes decode to without the payload, which no reader could read.
   */
  readonly setAside?: SetAsideMessage;
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
  /**
   * Present only on what a replay (`readAllStored`) yields for a message no reader can read and no
   * operator set aside: its bytes and why. Its other fields are what its subject and bytes tell
   * (version 0 when its envelope does not decode); upcasting it throws `error`.
   */
  readonly unreadable?: { readonly error: EventReadError; readonly data: Uint8Array };
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

/**
 * Where a stored message was found, which every decode checks it against: the subject it is stored
 * on (`{prefix}.{partition}.{story}.{type}`; the publish subject `{prefix}.{story}.{type}` works as
 * well), or, for a copy kept without its subject (a snapshot segment), the story it belongs to.
 * Envelopes say which story, type and version they are; only the subject is where the server put
 * them, checked by its expectations. A message whose envelope disagrees is never read as an event.
 */
export type MessageOrigin = string | { readonly storyId: string };

/** The story and event type an origin names (no event type for a copy without its subject). */
interface Place {
  readonly storyId: string;
  readonly eventType: string | undefined;
}

/** The last two tokens of a subject: story and event type (neither may contain a dot). */
function placeOf(origin: MessageOrigin): Place {
  if (typeof origin !== "string") return { storyId: origin.storyId, eventType: undefined };
  const typeAt = origin.lastIndexOf(".");
  const storyAt = origin.lastIndexOf(".", typeAt - 1);
  return { storyId: origin.slice(storyAt + 1, typeAt), eventType: origin.slice(typeAt + 1) };
}

/** The story an origin names: what every error about a message there names. */
export function originStory(origin: MessageOrigin): string {
  return placeOf(origin).storyId;
}

type LegacySchemas = Readonly<Record<string, Readonly<Record<number, DescMessage>>>>;

/** A checked frame: a payload is present. */
type Frame = ContextEventFrame & {
  readonly payload: { readonly case: ContextEventData["case"]; readonly value: Uint8Array };
};

export { isEnvelopeV2 };

const EMPTY = new Uint8Array(0);

/**
 * An envelope's fields, its payload left as bytes, as a ContextEvent's (version 2 envelopes are
 * filled in from `place` and `prevHash`, see frameOfV2). @throws CorruptEventError
 */
function decodeFields(
  bytes: Uint8Array,
  sequence: number,
  place: Place,
  prevHash?: Uint8Array,
): ContextEventFrame {
  if (isEnvelopeV2(bytes)) return frameOfV2(bytes, sequence, place, prevHash);
  let frame: ContextEventFrame;
  try {
    frame = fromBinary(ContextEventFrameSchema, bytes);
  } catch (e) {
    const problem = { sequence, storyId: place.storyId, reason: "undecodable protobuf" };
    throw new CorruptEventError(problem, { cause: e });
  }
  // Readers fill envelope_version in; a stored ContextEvent never carries it (it would take the
  // checks of another version).
  if (frame.envelopeVersion !== 0) {
    const reason = `a version 1 envelope that says envelope version ${frame.envelopeVersion}`;
    throw new CorruptEventError({ sequence, storyId: place.storyId, reason });
  }
  return frame;
}

/**
 * A version 2 envelope as the ContextEvent it stands for: the story and event type from where it
 * was stored (the event type from its payload for a copy without a subject), the previous hash as
 * the reader knows it (empty when it read this event alone), the event id made of the time and
 * the hash unless one is stored, the correlation id the command id unless one is stored.
 * @throws CorruptEventError, UnreadableEventError (a later envelope version)
 */
function frameOfV2(
  bytes: Uint8Array,
  sequence: number,
  place: Place,
  prevHash: Uint8Array | undefined,
): ContextEventFrame {
  const problem = (reason: string): EventReadProblem => ({
    sequence,
    storyId: place.storyId,
    reason,
  });
  let stored: StoredContextEventFrame;
  try {
    stored = fromBinary(StoredContextEventFrameSchema, bytes);
  } catch (e) {
    throw new CorruptEventError(problem("undecodable protobuf"), { cause: e });
  }
  if (stored.envelopeVersion !== 2) {
    throw new UnreadableEventError(
      problem(`envelope version ${stored.envelopeVersion}, which this release does not read`),
    );
  }
  const ms = Number(stored.occurredAtMs);
  if (ms <= 0 || ms >= 2 ** 48) throw new CorruptEventError(problem("no occurred_at"));
  if (stored.hash.length !== V2_HASH_BYTES) throw new CorruptEventError(problem("no hash"));
  if (stored.commandUuid.length !== 0 && stored.commandUuid.length !== 16) {
    throw new CorruptEventError(problem("a command uuid that is not 16 bytes"));
  }
  const commandId =
    stored.commandUuid.length === 16 ? uuidText(stored.commandUuid) : stored.commandId;
  const c = stored.payload.case;
  return {
    $typeName: ContextEventFrameSchema.typeName,
    eventId: stored.eventId !== "" ? stored.eventId : uuidv7Of(ms, stored.hash),
    storyId: place.storyId,
    version: stored.version,
    occurredAt: timestampFromMs(ms),
    eventType:
      place.eventType ?? (c === undefined ? "" : eventTypeOf({ case: c } as ContextEventData)),
    schemaVersion: stored.schemaVersion,
    correlationId: stored.correlationId ?? commandId,
    causationId: stored.causationId,
    commandId,
    commandEventIndex: stored.commandEventIndex,
    prevHash: prevHash ?? EMPTY,
    hash: stored.hash,
    commandName: stored.commandName,
    commandFingerprint: stored.commandFingerprint,
    principal: stored.principal,
    envelopeVersion: 2,
    payload: stored.payload,
  };
}

/**
 * Decodes and checks an envelope, leaving its payload encoded: a reader then decodes the payload
 * once, with the message of the schema version it was written with. The envelope must be complete
 * and name the story and event type of the place it was stored at.
 * @throws CorruptEventError, EventMismatchError
 */
function decodeFrame(
  bytes: Uint8Array,
  sequence: number,
  place: Place,
  prevHash: Uint8Array | undefined,
): Frame {
  const frame = decodeFields(bytes, sequence, place, prevHash);
  const problem = (reason: string): EventReadProblem => ({
    sequence,
    storyId: place.storyId,
    reason,
  });
  if (frame.payload.case === undefined) throw new CorruptEventError(problem("no payload"));
  if (!frame.occurredAt) throw new CorruptEventError(problem("no occurred_at"));
  if (frame.storyId === "" || frame.version < 1) {
    throw new CorruptEventError(problem("no story id or version"));
  }
  if (frame.storyId !== place.storyId) {
    throw new EventMismatchError(
      problem(
        `its envelope names story ${JSON.stringify(frame.storyId)}, not the story of its subject`,
      ),
    );
  }
  if (place.eventType !== undefined && frame.eventType !== place.eventType) {
    throw new EventMismatchError(
      problem(
        `its envelope names event type ${JSON.stringify(frame.eventType)}, its subject ${place.eventType}`,
      ),
    );
  }
  // A type the product knows keeps its payload in its own field (old type names may not: upcasters).
  const c = payloadCaseOf(frame.eventType);
  // A version 2 envelope is written for today's event types only.
  if (
    (c === undefined && frame.envelopeVersion === 2) ||
    (c !== undefined && c !== frame.payload.case)
  ) {
    throw new CorruptEventError(
      problem(`event type ${frame.eventType} with a ${frame.payload.case} payload`),
    );
  }
  try {
    storyId(frame.storyId);
  } catch (e) {
    throw new CorruptEventError(problem(`invalid story id ${JSON.stringify(frame.storyId)}`), {
      cause: e,
    });
  }
  // A version 1 envelope carries the hash it was chained to; a version 2 one is checked against
  // the previous event's hash when the reader has it (reading the story in order), and only as a
  // link of the chain by readers that have it not (docs/AUDIT.md, "Envelope version 2").
  const chainedTo = frame.envelopeVersion === 2 ? prevHash : frame.prevHash;
  if (chainedTo !== undefined && !storedHashMatches(bytes, chainedTo, frame.hash, frame.storyId)) {
    throw new CorruptEventError(
      problem(
        "its content does not hash to its stored hash: changed after it was written, or not written by the event store",
      ),
    );
  }
  return frame as Frame;
}

/** A payload's bytes decoded with `schema`. @throws CorruptEventError */
function decodePayload(schema: DescMessage, bytes: Uint8Array, sequence: number, story: string) {
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    const reason = `undecodable ${schema.typeName} payload`;
    throw new CorruptEventError({ sequence, storyId: story, reason }, { cause: e });
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
    principal: frame.principal,
    envelopeVersion: frame.envelopeVersion,
    payload: { case: frame.payload.case, value: payload } as ContextEvent["payload"],
  };
  if (frame.$unknown) envelope.$unknown = frame.$unknown;
  return envelope;
}

function storedOf(frame: Frame, sequence: number, legacySchemas: LegacySchemas): StoredEvent {
  const position: Position = {
    sequence: streamSequence(sequence),
    storyId: frame.storyId as StoryId,
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
      frame.storyId,
    );
    return Object.assign(position, { payload, envelope: envelopeOf(frame, payload) });
  }
  return new LegacyStoredEvent(
    position,
    decodePayload(legacy, frame.payload.value, sequence, frame.storyId),
    frame,
  );
}

type Position = Omit<StoredEvent, "payload" | "envelope" | "setAside">;

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
  readonly #frame: Frame;
  #envelope: ContextEvent | undefined;

  constructor(position: Position, payload: Message, frame: Frame) {
    this.sequence = position.sequence;
    this.storyId = position.storyId;
    this.version = position.version;
    this.eventId = position.eventId;
    this.eventType = position.eventType;
    this.schemaVersion = position.schemaVersion;
    this.occurredAt = position.occurredAt;
    this.payload = payload;
    this.#frame = frame;
  }

  get envelope(): ContextEvent {
    // Today's payload message, the old fields kept as unknown ones: what decoding a version 1
    // envelope's bytes as a ContextEvent gives.
    this.#envelope ??= envelopeOf(
      this.#frame,
      fromBinary(currentPayloadSchema(this.#frame.payload.case), this.#frame.payload.value),
    );
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
 * Decodes one stored message as stored, with its payload in its stored schema, checked against
 * where it was stored (`origin`) and, for a version 2 envelope, against the hash of the story's
 * previous event when the caller read it (`prevHash`: empty for a story's first event).
 * @throws CorruptEventError for bytes that are not a complete envelope; EventMismatchError for an
 * envelope of another story or event type than its origin's.
 */
export function decodeStoredEvent(
  bytes: Uint8Array,
  sequence: number,
  origin: MessageOrigin,
  prevHash?: Uint8Array,
  legacySchemas: LegacySchemas = legacyPayloadSchemas,
): StoredEvent {
  const frame = decodeFrame(bytes, sequence, placeOf(origin), prevHash);
  const event = storedOf(frame, sequence, legacySchemas);
  if (frame.envelopeVersion === 2 && prevHash === undefined) unlinked.set(event, bytes);
  return event;
}

/**
 * Version 2 events decoded without the previous event's hash, with their stored bytes, until a
 * reader that read the event before them links them (linkStoredEvent). Weak: events no reader
 * links (a lone head, a partition's replay) leave with the event.
 */
const unlinked = new WeakMap<StoredEvent, Uint8Array>();

/**
 * Checks a version 2 event decoded alone (decodeStoredEvent without `prevHash`) as the link after
 * an event whose hash is `prevHash`, as a reader of the story in order can, and fills in its
 * envelope's previous hash. Nothing to do for a version 1 event (its envelope carries the hash it
 * was chained to, checked when it was decoded) or one checked already.
 * @throws CorruptEventError when its content, after `prevHash`, does not hash to its stored hash
 */
export function linkStoredEvent(event: StoredEvent, prevHash: Uint8Array): void {
  const bytes = unlinked.get(event);
  if (bytes === undefined) return;
  if (!storedHashMatches(bytes, prevHash, event.envelope.hash, event.storyId)) {
    throw new CorruptEventError({
      sequence: event.sequence,
      storyId: event.storyId,
      reason:
        "its content, after the previous event's hash, does not hash to its stored hash: it was changed after it was written, not written by the event store, or the event before it was changed",
    });
  }
  unlinked.delete(event);
  event.envelope.prevHash = prevHash;
}

/**
 * What a replay yields for a message no reader can read (see StoredEvent.unreadable): what its
 * subject names, and what its envelope says when it decodes.
 */
export function unreadableEvent(
  bytes: Uint8Array,
  sequence: number,
  origin: MessageOrigin,
  storedAt: Date,
  error: EventReadError,
): StoredEvent {
  const place = placeOf(origin);
  let frame: ContextEventFrame | undefined;
  try {
    frame = decodeFields(bytes, sequence, place, undefined);
  } catch {
    frame = undefined;
  }
  const eventType = place.eventType ?? frame?.eventType ?? "";
  return {
    sequence: streamSequence(sequence),
    storyId: place.storyId as StoryId,
    version: streamVersion(frame?.version ?? 0),
    eventId: frame?.eventId ?? "",
    eventType,
    schemaVersion: frame?.schemaVersion ?? 0,
    occurredAt: frame?.occurredAt ? timestampDate(frame.occurredAt) : storedAt,
    payload: create(EmptySchema),
    envelope: create(ContextEventSchema, {
      eventId: frame?.eventId ?? "",
      storyId: place.storyId,
      version: frame?.version ?? 0,
      eventType,
      schemaVersion: frame?.schemaVersion ?? 0,
    }),
    unreadable: { error, data: bytes },
  };
}

/**
 * What readers see where an operator set a stored message aside: its position in the story (the
 * version the repair gave it) and the envelope fields its bytes still decode to, without a payload.
 * Only a message that held a version gets one (the repair gives a version only to a message whose
 * envelope decodes and names its story); for any other, undefined: readers pass over it.
 */
export function setAsideEvent(
  bytes: Uint8Array,
  sequence: number,
  origin: MessageOrigin,
  entry: SetAsideMessage,
  storedAt: Date,
  prevHash?: Uint8Array,
): StoredEvent | undefined {
  if (entry.version === 0) return undefined;
  const place = placeOf(origin);
  const frame = decodeFields(bytes, sequence, place, prevHash);
  const envelope: ContextEvent = {
    $typeName: ContextEventSchema.typeName,
    eventId: frame.eventId,
    storyId: place.storyId,
    version: entry.version,
    occurredAt: frame.occurredAt,
    eventType: place.eventType ?? frame.eventType,
    schemaVersion: frame.schemaVersion,
    correlationId: frame.correlationId,
    causationId: frame.causationId,
    commandId: frame.commandId,
    commandEventIndex: frame.commandEventIndex,
    commandName: frame.commandName,
    commandFingerprint: frame.commandFingerprint,
    principal: frame.principal,
    prevHash: frame.prevHash,
    hash: frame.hash,
    envelopeVersion: frame.envelopeVersion,
    payload: { case: undefined },
  };
  return {
    sequence: streamSequence(sequence),
    storyId: place.storyId as StoryId,
    version: streamVersion(entry.version),
    eventId: frame.eventId,
    eventType: envelope.eventType,
    schemaVersion: frame.schemaVersion,
    occurredAt: frame.occurredAt ? timestampDate(frame.occurredAt) : storedAt,
    payload: create(EmptySchema),
    envelope,
    setAside: entry,
  };
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
  /**
   * Decodes and upcasts one stored message, checked against where it was stored (`origin`: its
   * subject, so that no reader can take a message for another story than its subject's) and, for
   * a version 2 envelope, the previous event's hash when the caller read it (see
   * decodeStoredEvent).
   * @throws CorruptEventError, EventMismatchError, UnreadableEventError (all EventReadErrors)
   */
  decode(
    bytes: Uint8Array,
    sequence: number,
    origin: MessageOrigin,
    prevHash?: Uint8Array,
  ): readonly RecordedEvent[];
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
      // A set-aside message stands in the history without a payload of its own.
      data: p.setAside === undefined ? data : { case: undefined },
    };
    if (p.setAside !== undefined) return Object.assign(event, { setAside: p.setAside });
    return part === undefined ? event : Object.assign(event, { part });
  };

  const upcast = (stored: StoredEvent): readonly RecordedEvent[] => {
    const { eventType, schemaVersion } = stored;
    if (stored.unreadable !== undefined) throw stored.unreadable.error;
    // Set aside by an operator: its version counts, its content (unreadable) does not.
    if (stored.setAside !== undefined) {
      return [asIs(stored, eventType, schemaVersion, { case: undefined })];
    }
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
      const problem = { sequence: stored.sequence, storyId: stored.storyId, reason: e.message };
      throw new UnreadableEventError(problem, { cause: e });
    }
    if (upcasted.length === 0) return [asIs(stored, eventType, schemaVersion, { case: undefined })];
    return upcasted.map((event, i) => {
      const c = payloadCaseOf(event.type);
      if (c === undefined) {
        throw new UnreadableEventError({
          sequence: stored.sequence,
          storyId: stored.storyId,
          reason: `upcast to ${event.type}, which is no event type`,
        });
      }
      const data = { case: c, value: event.payload } as ContextEventData;
      return asIs(stored, event.type, event.version, data, upcasted.length > 1 ? i : undefined);
    });
  };

  return {
    registry,
    upcast,
    decode(bytes, sequence, origin, prevHash) {
      const frame = decodeFrame(bytes, sequence, placeOf(origin), prevHash);
      if (current.get(frame.eventType) === frame.schemaVersion) {
        const c = frame.payload.case;
        const envelope = envelopeOf(
          frame,
          decodePayload(currentPayloadSchema(c), frame.payload.value, sequence, frame.storyId),
        );
        return [
          {
            sequence: streamSequence(sequence),
            storyId: frame.storyId as StoryId,
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
      return upcast(storedOf(frame, sequence, legacySchemas));
    },
  };
}

/** The product's upcaster: context.legacy.v1 payloads and the shipped chains. */
export const contextEventUpcaster: EventUpcaster = createEventUpcaster();

/**
 * Decodes one stored message into its current shape (see RecordedEvent), checked against where it
 * was stored, with the product's upcasters unless another upcaster is given.
 * @throws CorruptEventError, EventMismatchError, UnreadableEventError
 */
export function decodeEvent(
  bytes: Uint8Array,
  sequence: number,
  origin: MessageOrigin,
  upcaster: EventUpcaster = contextEventUpcaster,
  prevHash?: Uint8Array,
): readonly RecordedEvent[] {
  return upcaster.decode(bytes, sequence, origin, prevHash);
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
