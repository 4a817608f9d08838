import { toBinary } from "@bufbuild/protobuf";
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
import { writeSignedEnvelope } from "./envelope-writer.ts";
import { sha256 } from "./sha256.ts";

/**
 * The hash of an event: SHA-256 over the previous event's hash and the envelope encoded with its
 * `hash` field empty. protobuf-es encodes deterministically (fields in number order), so anyone with
 * the stored bytes can recompute it; changing any stored event breaks every later link.
 */
export function eventHash(envelope: ContextEvent): Uint8Array {
  // A shallow copy is enough: toBinary only reads it.
  const unsigned: ContextEvent = { ...envelope, hash: EMPTY };
  return sha256(envelope.prevHash, toBinary(ContextEventSchema, unsigned));
}

const EMPTY = new Uint8Array(0);

/**
 * Hashes an envelope whose `hash` is still empty, sets `hash`, and returns the envelope's encoding
 * with the hash in it: the bytes `toBinary` gives once the hash is set. The envelopes the append path
 * builds are written by `writeSignedEnvelope` in one pass; the rest (see there) by `toBinary`.
 */
export function encodeWithHash(envelope: ContextEvent): Uint8Array {
  if (envelope.hash.length > 0) throw new Error("the envelope is hashed already");
  const written = writeSignedEnvelope(envelope);
  if (written !== undefined) {
    envelope.hash = written.hash;
    return written.bytes;
  }
  envelope.hash = eventHash(envelope);
  return toBinary(ContextEventSchema, envelope);
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
