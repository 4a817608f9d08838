import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
import { writeSignedEnvelope } from "./envelope-writer.ts";

/**
 * The hash of an event: SHA-256 over the previous event's hash and the envelope encoded with its
 * `hash` field empty. protobuf-es encodes deterministically (fields in number order), so anyone with
 * the stored bytes can recompute it; changing any stored event breaks every later link.
 */
export function eventHash(envelope: ContextEvent): Uint8Array {
  // A shallow copy is enough: toBinary only reads it.
  const unsigned: ContextEvent = { ...envelope, hash: EMPTY };
  return createHash("sha256")
    .update(envelope.prevHash)
    .update(toBinary(ContextEventSchema, unsigned))
    .digest();
}

const EMPTY = new Uint8Array(0);
/** Field number of `ContextEvent.hash`. */
const HASH_FIELD = 12;

/**
 * Hashes an envelope whose `hash` is still empty, sets `hash`, and returns the envelope's encoding
 * with the hash in it: the same bytes as `toBinary` after setting the hash (the hash field is
 * spliced in where protobuf-es writes it, before the first field numbered above it), from one
 * encode instead of a clone and two. The envelopes the append path builds go through
 * `writeSignedEnvelope`, which gives the same bytes for less.
 */
export function encodeWithHash(envelope: ContextEvent): Uint8Array {
  if (envelope.hash.length > 0) throw new Error("the envelope is hashed already");
  const written = writeSignedEnvelope(envelope);
  if (written !== undefined) {
    envelope.hash = written.hash;
    return written.bytes;
  }
  const unsigned = toBinary(ContextEventSchema, envelope);
  const hash = createHash("sha256").update(envelope.prevHash).update(unsigned).digest();
  envelope.hash = hash;
  const at = fieldsEndBefore(unsigned, HASH_FIELD);
  // Tag (field 12, length-delimited), length, bytes; a SHA-256 is 32 bytes: one-byte length.
  const out = new Uint8Array(unsigned.length + 2 + hash.length);
  out.set(unsigned.subarray(0, at), 0);
  out[at] = (HASH_FIELD << 3) | 2;
  out[at + 1] = hash.length;
  out.set(hash, at + 2);
  out.set(unsigned.subarray(at), at + 2 + hash.length);
  return out;
}

/** Offset of the first top-level field numbered above `field` (the end when there is none). */
function fieldsEndBefore(bytes: Uint8Array, field: number): number {
  let pos = 0;
  while (pos < bytes.length) {
    const start = pos;
    let tag = 0;
    [tag, pos] = readVarint32(bytes, pos);
    if (tag >>> 3 > field) return start;
    switch (tag & 7) {
      case 0:
        while ((bytes[pos++] as number) & 0x80);
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        let length = 0;
        [length, pos] = readVarint32(bytes, pos);
        pos += length;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw new Error(`unexpected wire type ${tag & 7} in an envelope`);
    }
  }
  return bytes.length;
}

function readVarint32(bytes: Uint8Array, pos: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const b = bytes[pos++] as number;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, pos];
  }
  throw new Error("malformed varint in an envelope");
}

export type ChainVerdict =
  | { readonly intact: true; readonly events: number }
  | { readonly intact: false; readonly version: number; readonly reason: string };

/** Whether two byte strings (hashes) are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** Checks a story's events, in version order from version 1: versions, links and hashes. */
export function verifyChain(envelopes: Iterable<ContextEvent>): ChainVerdict {
  let prev: Uint8Array = new Uint8Array(0);
  let expectedVersion = 1;
  let count = 0;
  for (const envelope of envelopes) {
    if (envelope.version !== expectedVersion) {
      return {
        intact: false,
        version: envelope.version,
        reason: `version ${envelope.version} where ${expectedVersion} was expected (gap or reorder)`,
      };
    }
    if (!equalBytes(envelope.prevHash, prev)) {
      return {
        intact: false,
        version: envelope.version,
        reason: `prev_hash ${hex(envelope.prevHash)} does not match the hash ${hex(prev)} of version ${expectedVersion - 1}`,
      };
    }
    const actual = eventHash(envelope);
    if (!equalBytes(envelope.hash, actual)) {
      return {
        intact: false,
        version: envelope.version,
        reason: `stored hash ${hex(envelope.hash)} does not match the content (hash ${hex(actual)}): the event was altered`,
      };
    }
    prev = envelope.hash;
    expectedVersion += 1;
    count += 1;
  }
  return { intact: true, events: count };
}
