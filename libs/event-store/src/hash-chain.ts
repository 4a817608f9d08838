import { toBinary } from "@bufbuild/protobuf";
import { uuidv7 } from "@ctx/ids";
import { type ContextEvent, ContextEventSchema, type SetAsideMessage } from "@ctx/proto";
import type { RecordedEvent } from "./codec.ts";
import { writeEnvelopeV2, writeSignedEnvelope } from "./envelope-writer.ts";
import { sha256 } from "./sha256.ts";

/**
 * The hash of an event: SHA-256 over the previous event's hash and the envelope encoded with its
 * `hash` field empty. protobuf-es encodes deterministically (fields in number order), so anyone with
 * the stored bytes can recompute it; changing any stored event breaks every later link.
 */
export function eventHash(envelope: ContextEvent): Uint8Array {
  // A shallow copy is enough: the writers only read it.
  const unsigned: ContextEvent = { ...envelope, hash: EMPTY };
  if (envelope.envelopeVersion === 2) {
    const written = writeEnvelopeV2(unsigned);
    if (written === undefined) {
      throw new TypeError("the envelope cannot be written as envelope version 2");
    }
    return written.hash;
  }
  return sha256(envelope.prevHash, toBinary(ContextEventSchema, unsigned));
}

const EMPTY = new Uint8Array(0);

/**
 * Hashes an envelope whose `hash` is still empty, sets `hash`, and returns its stored bytes: with
 * `envelopeVersion` 2 a StoredContextEvent (the event id, when empty, is then the one made of the
 * time and the hash, and is set too), else the bytes `toBinary` gives once the hash is set (an
 * empty event id then gets a UUIDv7). The envelopes the append path
 * builds are written by `writeSignedEnvelope` in one pass; the rest (see there) by `toBinary`.
 */
export function encodeWithHash(envelope: ContextEvent): Uint8Array {
  if (envelope.hash.length > 0) throw new TypeError("the envelope is hashed already");
  if (envelope.envelopeVersion === 2) {
    const v2 = writeEnvelopeV2(envelope);
    if (v2 !== undefined) {
      envelope.hash = v2.hash;
      envelope.eventId = v2.eventId;
      return v2.bytes;
    }
    // What version 2 cannot hold exactly (a time finer than milliseconds) is written as version 1.
    envelope.envelopeVersion = 0;
  }
  if (envelope.eventId === "") envelope.eventId = uuidv7();
  const written = writeSignedEnvelope(envelope);
  if (written !== undefined) {
    envelope.hash = written.hash;
    return written.bytes;
  }
  envelope.hash = eventHash(envelope);
  return toBinary(ContextEventSchema, envelope);
}

/**
 * The bytes an envelope read from the stream was stored as, with the hash it carries: what a copy
 * of a stored event holds (snapshot segments, parked events). A version 2 envelope is written
 * again as its StoredContextEvent (its hash not recomputed), any other with `toBinary`.
 */
export function storedEnvelopeBytes(envelope: ContextEvent): Uint8Array {
  if (envelope.envelopeVersion === 2) {
    const written = writeEnvelopeV2(envelope, envelope.hash);
    if (written !== undefined) return written.bytes;
  }
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

/**
 * One link of a story's chain: a stored envelope, or an event as the store read it, which says
 * when an operator set its message aside (see verifyChain).
 */
export type ChainItem = ContextEvent | Pick<RecordedEvent, "envelope" | "setAside">;

/**
 * Checks a story's events, in version order from version 1 to its end: versions, links and
 * hashes. Pass the events the store read (not only their envelopes) when the story may hold
 * messages an operator set aside: such a message holds its version, but its content cannot be
 * read, so its own hash cannot be recomputed. The chain goes on from the hash its envelope carries
 * only because a later EventsSetAside of the chain — hash-checked like every other event — lists
 * it with the same version and the SHA-256 of its bytes (which the store checked when it read it);
 * one no later EventsSetAside vouches for breaks the chain.
 */
export function verifyChain(items: Iterable<ChainItem>): ChainVerdict {
  let prev: Uint8Array = new Uint8Array(0);
  let expectedVersion = 1;
  let count = 0;
  // Set-aside messages read so far that no EventsSetAside has vouched for yet, by sequence.
  const unvouched = new Map<bigint, SetAsideMessage>();
  for (const item of items) {
    const envelope = "envelope" in item ? item.envelope : item;
    const setAside = "envelope" in item ? item.setAside : undefined;
    if (envelope.version !== expectedVersion) {
      return {
        intact: false,
        version: envelope.version,
        reason: `version ${envelope.version} where ${expectedVersion} was expected (gap or reorder)`,
      };
    }
    // A version 2 envelope read alone (a replay) shows no previous hash: its link is its hash,
    // recomputed after `prev` below.
    const unlinked = envelope.envelopeVersion === 2 && envelope.prevHash.length === 0;
    if (!unlinked && !equalBytes(envelope.prevHash, prev)) {
      return {
        intact: false,
        version: envelope.version,
        reason: `prev_hash ${hex(envelope.prevHash)} does not match the hash ${hex(prev)} of version ${expectedVersion - 1}`,
      };
    }
    if (setAside !== undefined) {
      unvouched.set(setAside.sequence, setAside);
    } else {
      const actual = eventHash(unlinked ? { ...envelope, prevHash: prev } : envelope);
      if (!equalBytes(envelope.hash, actual)) {
        return {
          intact: false,
          version: envelope.version,
          reason: `stored hash ${hex(envelope.hash)} does not match the content (hash ${hex(actual)}): the event was altered`,
        };
      }
      if (envelope.payload.case === "eventsSetAside") {
        for (const entry of envelope.payload.value.setAside) {
          const held = unvouched.get(entry.sequence);
          if (
            held !== undefined &&
            held.version === entry.version &&
            equalBytes(held.sha256, entry.sha256)
          ) {
            unvouched.delete(entry.sequence);
          }
        }
      }
    }
    prev = envelope.hash;
    expectedVersion += 1;
    count += 1;
  }
  const [first] = unvouched.values();
  if (first !== undefined) {
    return {
      intact: false,
      version: first.version,
      reason: `version ${first.version} (stream message ${first.sequence}) is read as set aside, but no EventsSetAside after it lists it`,
    };
  }
  return { intact: true, events: count };
}
