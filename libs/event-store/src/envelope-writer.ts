import { type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { uuidBytes, uuidv7Of } from "@ctx/ids";
import {
  type ContextEvent,
  ContextEventSchema,
  type PlainFieldKind,
  plainFieldKind,
  StoredContextEventSchema,
  varintSize,
} from "@ctx/proto";
import { sha256, sha256Head } from "./sha256.ts";
import { V2_HASH_BYTES } from "./stored-hash.ts";

/**
 * Writes a `ContextEvent` the way protobuf-es's `toBinary` does (fields in number order, proto3
 * defaults left out), with its hash, for the append path: the envelope's own fields by hand, the
 * payload from a plan made once per payload message (its strings, repeated strings and enums).
 * `toBinary` walks the descriptors field by field on every call; this costs a third of it, and the
 * SHA-256 is taken over one contiguous buffer.
 *
 * It serves the envelopes it knows: positive timestamps, no unknown fields, and only while the
 * schema has exactly the fields below (checked once, when the module loads). Anything else returns
 * undefined, and the caller encodes with `toBinary`. A payload message with other kinds of fields
 * is written with `toBinary`.
 */
export function writeSignedEnvelope(
  envelope: ContextEvent,
): { readonly bytes: Uint8Array; readonly hash: Uint8Array } | undefined {
  const payload = envelope.payload;
  const member = payload.case === undefined ? undefined : payloadMembers.get(payload.case);
  const at = envelope.occurredAt;
  if (
    !schemaKnown ||
    member === undefined ||
    envelope.$unknown !== undefined ||
    envelope.envelopeVersion !== 0 ||
    (at !== undefined && (at.$unknown !== undefined || at.seconds < 0n || at.nanos < 0))
  ) {
    return undefined;
  }
  const payloadBytes = writePayload(member, payload.value as Message);
  const prev = envelope.prevHash;
  // The hash is over prev_hash and the envelope without its hash: lay out both, in that order.
  const w = envelopeScratch;
  w.pos = 0;
  raw(w, prev);
  const start = w.pos;
  string(w, 0x0a, envelope.eventId);
  string(w, 0x12, envelope.storyId);
  varintField(w, 0x18, envelope.version);
  if (at !== undefined) {
    const seconds = Number(at.seconds);
    const length =
      (seconds !== 0 ? 1 + varintSize(seconds) : 0) +
      (at.nanos !== 0 ? 1 + varintSize(at.nanos) : 0);
    ensure(w, 2 + length);
    w.buf[w.pos++] = 0x22;
    varint(w, length);
    varintField(w, 0x08, seconds);
    varintField(w, 0x10, at.nanos);
  }
  string(w, 0x2a, envelope.eventType);
  varintField(w, 0x30, envelope.schemaVersion);
  string(w, 0x3a, envelope.correlationId);
  string(w, 0x42, envelope.causationId);
  string(w, 0x4a, envelope.commandId);
  varintField(w, 0x50, envelope.commandEventIndex);
  if (prev.length > 0) bytes(w, 0x5a, prev);
  // Field 12, the hash, goes here once known.
  const fieldsEnd = w.pos;
  string(w, 0x6a, envelope.commandName);
  if (envelope.commandFingerprint.length > 0) bytes(w, 0x72, envelope.commandFingerprint);
  string(w, 0x7a, envelope.principal);
  bytes(w, member.tag, payloadBytes);
  const digest = sha256(w.buf.subarray(0, w.pos));
  const out = new Uint8Array(w.pos - start + 2 + digest.length);
  out.set(w.buf.subarray(start, fieldsEnd), 0);
  let o = fieldsEnd - start;
  out[o++] = 0x62;
  out[o++] = digest.length;
  out.set(digest, o);
  out.set(w.buf.subarray(fieldsEnd, w.pos), o + digest.length);
  return { bytes: out, hash: digest };
}

/** An envelope in its version 2 form (StoredContextEvent), with what writing it settled. */
export interface WrittenV2 {
  readonly bytes: Uint8Array;
  readonly hash: Uint8Array;
  /** The event id: the one given, or the one made of occurred_at and the hash when none was. */
  readonly eventId: string;
}

/**
 * Writes a `ContextEvent` as envelope version 2 (`StoredContextEvent`, docs/ARCHITECTURE.md) and
 * hashes it: SHA-256 over `prevHash`, the story id as field 14 and the bytes without field 15,
 * truncated to its first 16 bytes (V2_HASH_BYTES). What it leaves out a reader
 * derives: story id and event type (the subject), the previous hash (the previous event), the
 * event id (made of occurred_at and the hash, unless `eventId` is set and differs from that), the
 * correlation id when it is the command id. Fields in number order, as `toBinary` writes them.
 *
 * With `storedHash`, the envelope is one that was written already (read back): its bytes are
 * written again with that hash, which is not computed (its previous hash need not be known).
 *
 * Undefined for an envelope it cannot write exactly (a time that is not whole milliseconds after
 * the epoch, unknown fields, a payload case it does not know): the caller writes version 1.
 */
export function writeEnvelopeV2(
  envelope: ContextEvent,
  storedHash?: Uint8Array,
): WrittenV2 | undefined {
  const payload = envelope.payload;
  const member = payload.case === undefined ? undefined : payloadMembers.get(payload.case);
  const at = envelope.occurredAt;
  if (
    !schemaKnown ||
    !schemaV2Known ||
    member === undefined ||
    envelope.$unknown !== undefined ||
    at === undefined ||
    at.$unknown !== undefined ||
    at.seconds < 0n ||
    at.nanos % 1_000_000 !== 0
  ) {
    return undefined;
  }
  const ms = Number(at.seconds) * 1000 + at.nanos / 1_000_000;
  if (!Number.isSafeInteger(ms) || ms >= 2 ** 48) return undefined;
  const payloadBytes = writePayload(member, payload.value as Message);
  const prev = envelope.prevHash;
  const w = envelopeScratch;
  w.pos = 0;
  // Hashed, not stored: the previous hash, then the story id as field 14 (see V2_STORY_TAG).
  raw(w, prev);
  string(w, V2_STORY_TAG, envelope.storyId, true);
  const start = w.pos;
  varintField(w, 0x08, 2);
  varintField(w, 0x10, envelope.version);
  varintField(w, 0x18, ms);
  varintField(w, 0x20, envelope.schemaVersion);
  const commandUuid = uuidBytes(envelope.commandId);
  if (commandUuid !== undefined) bytes(w, 0x2a, commandUuid);
  else string(w, 0x32, envelope.commandId);
  varintField(w, 0x38, envelope.commandEventIndex);
  string(w, 0x42, envelope.commandName);
  if (envelope.commandFingerprint.length > 0) bytes(w, 0x4a, envelope.commandFingerprint);
  string(w, 0x52, envelope.principal);
  // Explicit presence: absent means "the command id", present (even empty) means this value.
  if (envelope.correlationId !== envelope.commandId) {
    string(w, 0x5a, envelope.correlationId, true);
  }
  string(w, 0x62, envelope.causationId);
  // The event id goes in only when it is not the one a reader makes: known once the hash is.
  const idAt = w.pos;
  const given = envelope.eventId;
  if (given !== "") string(w, 0x6a, given);
  const idEnd = w.pos;
  const payloadAt = w.pos;
  bytes(w, member.tag, payloadBytes);
  const payloadEnd = w.pos;
  // Hash without the given id first: when the id is the derived one, that is the hash.
  let digest =
    storedHash ?? sha256Head(concatOut(w.buf, 0, idAt, payloadAt, payloadEnd), V2_HASH_BYTES);
  let derived = uuidv7Of(ms, digest);
  let withId = false;
  if (given !== "" && given !== derived) {
    digest = storedHash ?? sha256Head(w.buf.subarray(0, payloadEnd), V2_HASH_BYTES);
    derived = given;
    withId = true;
  }
  const fieldsEnd = withId ? idEnd : idAt;
  const out = new Uint8Array(fieldsEnd - start + 2 + digest.length + (payloadEnd - payloadAt));
  out.set(w.buf.subarray(start, fieldsEnd), 0);
  let o = fieldsEnd - start;
  out[o++] = 0x7a;
  out[o++] = digest.length;
  out.set(digest, o);
  out.set(w.buf.subarray(payloadAt, payloadEnd), o + digest.length);
  return { bytes: out, hash: digest, eventId: derived };
}

/**
 * The story id goes into a version 2 event's hash, not into its bytes (the subject holds it), as
 * StoredContextEvent field 14 (a string: tag 0x72) right after the previous hash: two stories'
 * events of the same content never share a hash (nor the event id made of it), and an event moved
 * to another story's subject no longer hashes to its stored hash.
 */
export const V2_STORY_TAG = 0x72;

/** buf[a, b) followed by buf[c, d), as one array (a copy only when the two are apart). */
function concatOut(buf: Uint8Array, a: number, b: number, c: number, d: number): Uint8Array {
  if (b === c) return buf.subarray(a, d);
  const out = new Uint8Array(b - a + (d - c));
  out.set(buf.subarray(a, b), 0);
  out.set(buf.subarray(c, d), b - a);
  return out;
}

/** The fields of StoredContextEvent writeEnvelopeV2 writes, by number: the schema must have exactly these. */
const envelopeV2Fields: Readonly<Record<number, string>> = {
  1: "envelope_version",
  2: "version",
  3: "occurred_at_ms",
  4: "schema_version",
  5: "command_uuid",
  6: "command_id",
  7: "command_event_index",
  8: "command_name",
  9: "command_fingerprint",
  10: "principal",
  11: "correlation_id",
  12: "causation_id",
  13: "event_id",
  15: "hash",
};

/** The fields this writer writes, by number: the schema must have exactly these. */
const envelopeFields: Readonly<Record<number, string>> = {
  1: "event_id",
  2: "story_id",
  3: "version",
  4: "occurred_at",
  5: "event_type",
  6: "schema_version",
  7: "correlation_id",
  8: "causation_id",
  9: "command_id",
  10: "command_event_index",
  11: "prev_hash",
  12: "hash",
  13: "command_name",
  14: "command_fingerprint",
  15: "principal",
  16: "envelope_version",
};

interface PayloadMember {
  readonly schema: DescMessage;
  /** The payload field's tag (every case is a message: wire type 2). */
  readonly tag: number;
  /** How to write the message's fields, when they are all of the kinds `writePayload` writes. */
  readonly plan: readonly PlannedField[] | undefined;
}

/** A field of a payload message: a string, a list of strings, or an enum (implicit presence). */
interface PlannedField {
  readonly kind: PlainFieldKind;
  readonly localName: string;
  readonly tag: number;
}

const payloadMembers = new Map<string, PayloadMember>();
let schemaKnown = true;
for (const field of ContextEventSchema.fields) {
  if (field.oneof?.name === "payload" && field.message !== undefined) {
    payloadMembers.set(field.localName, {
      schema: field.message,
      tag: (field.number << 3) | 2,
      plan: planOf(field.message),
    });
  } else if (envelopeFields[field.number] !== field.name) {
    schemaKnown = false;
  }
}
if (ContextEventSchema.fields.length !== payloadMembers.size + Object.keys(envelopeFields).length) {
  schemaKnown = false;
}

let schemaV2Known =
  StoredContextEventSchema.fields.length ===
  payloadMembers.size + Object.keys(envelopeV2Fields).length;
for (const field of StoredContextEventSchema.fields) {
  const payloadTag = (field.number << 3) | 2;
  if (field.oneof?.name === "payload") {
    if (payloadMembers.get(field.localName)?.tag !== payloadTag) schemaV2Known = false;
  } else if (envelopeV2Fields[field.number] !== field.name) {
    schemaV2Known = false;
  }
}

/** The payload cases written from a plan (the others go through `toBinary`): for tests and tools. */
export function plannedPayloadCases(): string[] {
  return [...payloadMembers].filter(([, m]) => m.plan !== undefined).map(([name]) => name);
}

/** The plan of a message whose fields `writePayload` can all write, in number order. */
function planOf(message: DescMessage): readonly PlannedField[] | undefined {
  const plan: PlannedField[] = [];
  const fields = [...message.fields].sort((a, b) => a.number - b.number);
  for (const field of fields) {
    const kind = plainFieldKind(field);
    if (kind === undefined) return undefined;
    const wireType = kind === "enum" ? 0 : 2;
    plan.push({ kind, localName: field.localName, tag: (field.number << 3) | wireType });
  }
  return plan;
}

/** A payload message's bytes, from its plan; `toBinary` when it has none. */
function writePayload(member: PayloadMember, value: Message): Uint8Array {
  const plan = member.plan;
  if (plan === undefined || value.$unknown !== undefined) return toBinary(member.schema, value);
  const fields = value as unknown as Record<string, unknown>;
  const w = payloadScratch;
  w.pos = 0;
  for (const field of plan) {
    const v = fields[field.localName];
    if (field.kind === "string") {
      string(w, field.tag, v as string);
    } else if (field.kind === "enum") {
      if ((v as number) < 0) return toBinary(member.schema, value);
      varintField(w, field.tag, v as number);
    } else {
      // List items are written even when empty.
      for (const item of v as readonly string[]) string(w, field.tag, item, true);
    }
  }
  return w.buf.subarray(0, w.pos);
}

interface Writer {
  buf: Uint8Array;
  pos: number;
}

/**
 * Reused buffers, grown as needed: an append writes its events one after another, each payload
 * before the envelope that holds it. What leaves the writer is a copy.
 */
const envelopeScratch: Writer = { buf: new Uint8Array(8192), pos: 0 };
const payloadScratch: Writer = { buf: new Uint8Array(4096), pos: 0 };

function ensure(w: Writer, more: number): void {
  if (w.pos + more <= w.buf.length) return;
  const grown = new Uint8Array(Math.max(w.buf.length * 2, w.pos + more));
  grown.set(w.buf.subarray(0, w.pos));
  w.buf = grown;
}

function varint(w: Writer, value: number): void {
  // Up to 2^53: the seconds of any timestamp this writer takes.
  while (value > 0x7f) {
    w.buf[w.pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  w.buf[w.pos++] = value;
}

/** A varint field (uint32, enum, a timestamp's parts); left out when 0 (proto3 implicit presence). */
function varintField(w: Writer, tag: number, value: number): void {
  if (value === 0) return;
  ensure(w, 16);
  varint(w, tag);
  varint(w, value);
}

/** Bytes as they are, no tag. */
function raw(w: Writer, value: Uint8Array): void {
  ensure(w, value.length);
  w.buf.set(value, w.pos);
  w.pos += value.length;
}

/** A length-delimited field. */
function bytes(w: Writer, tag: number, value: Uint8Array): void {
  ensure(w, 10 + value.length);
  varint(w, tag);
  varint(w, value.length);
  raw(w, value);
}

/** A string field; left out when empty, unless `always` (a list item). */
function string(w: Writer, tag: number, value: string, always = false): void {
  if (value.length === 0 && !always) return;
  // Most of these are ids: ASCII, one byte per character, shorter than 128 bytes.
  if (value.length < 0x80) {
    ensure(w, 10 + value.length);
    const start = w.pos;
    varint(w, tag);
    const lengthAt = w.pos++;
    let ascii = true;
    for (let i = 0; i < value.length && ascii; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) ascii = false;
      else w.buf[w.pos++] = c;
    }
    if (ascii) {
      w.buf[lengthAt] = value.length;
      return;
    }
    w.pos = start;
  }
  bytes(w, tag, encoder.encode(value));
}

const encoder = new TextEncoder();
