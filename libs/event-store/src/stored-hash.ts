import { hash as digest } from "node:crypto";

/**
 * The envelope's `hash` field: 12 in a version 1 envelope (context.v1.ContextEvent), 15 in a
 * version 2 one (context.v1.StoredContextEvent, whose first byte is 0x08).
 */
const hashFieldOf = (bytes: Uint8Array) => (isEnvelopeV2(bytes) ? 15 : 12);

/**
 * Bytes of a version 2 envelope's hash: the first 16 of the SHA-256 digest (a version 1 hash is the
 * whole digest, 32). docs/AUDIT.md ("Envelope version 2") says why 128 bits are enough for a link.
 */
export const V2_HASH_BYTES = 16;

/** Bytes of the hash an envelope of the version of `bytes` carries: 16 (version 2) or 32. */
export function hashBytesOf(bytes: Uint8Array): number {
  return isEnvelopeV2(bytes) ? V2_HASH_BYTES : 32;
}

/**
 * Whether stored bytes are an envelope of version 2 (a StoredContextEvent): its first field is its
 * envelope version, a varint (first byte 0x08), where a version 1 envelope (a ContextEvent) starts
 * with its event id, a string (0x0a).
 */
export function isEnvelopeV2(bytes: Uint8Array): boolean {
  return bytes[0] === 0x08;
}

/**
 * An event's hash as its stored bytes give it (docs/AUDIT.md): SHA-256 over its `prev_hash` (the
 * bytes given: the previous event's hash), for a version 2 envelope its story id as field 14, then
 * the stored bytes with the `hash` field (12; 15 in a version 2 envelope) taken out, every other
 * byte as it is. The writer hashes the envelope's encoding before the hash is set, and protobuf-es writes
 * fields in number order, so the two agree for every envelope the store wrote. Undefined when the
 * bytes are not a well-formed protobuf message, or hold the hash field more than once (the store never
 * writes that; a reader would take the last, which no rule could say was the one hashed).
 */
export function storedEventHash(
  bytes: Uint8Array,
  prevHash: Uint8Array,
  storyId: string,
): Uint8Array | undefined {
  const text = storedDigest(bytes, prevHash, storyId);
  if (text === undefined) return undefined;
  const length = hashBytesOf(bytes);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/**
 * Whether a stored envelope's bytes hash to the hash it carries (see storedEventHash). Readers call
 * it on every message they read, so an event whose content was changed after it was written, or
 * one written by someone who did not (or could not) hash it, is never read as an event: it is
 * unreadable, parked, and set aside by an operator like any other.
 */
export function storedHashMatches(
  bytes: Uint8Array,
  prevHash: Uint8Array,
  hash: Uint8Array,
  storyId: string,
): boolean {
  const length = hashBytesOf(bytes);
  if (hash.length !== length) return false;
  const actual = storedDigest(bytes, prevHash, storyId);
  if (actual === undefined) return false;
  for (let i = 0; i < length; i++) if (actual.charCodeAt(i) !== hash[i]) return false;
  return true;
}

/**
 * The digest as a "binary" string (one character per byte: Node hands a Buffer out of the heap at
 * the cost of hashing a few hundred bytes). `prev_hash` and the message are laid out whole in a
 * scratch buffer kept between calls, and the fields after the hash moved over it once the one pass
 * over the top-level fields has found it: no allocation but the digest.
 */
function storedDigest(
  bytes: Uint8Array,
  prevHash: Uint8Array,
  storyId: string,
): string | undefined {
  // A version 2 envelope's hash covers its story id too, as field 14 after the previous hash.
  const story = isEnvelopeV2(bytes) ? storyField(storyId) : EMPTY;
  const base = prevHash.length + story.length;
  const total = base + bytes.length;
  const into = total <= SCRATCH_MAX ? scratchOf(total) : new Uint8Array(total);
  into.set(prevHash, 0);
  into.set(story, prevHash.length);
  into.set(bytes, base);
  const hashField = hashFieldOf(bytes);
  let start = -1; // where the hash field starts and ends in `bytes`
  let end = -1;
  let at = 0;
  const n = bytes.length;
  while (at < n) {
    const fieldStart = at;
    // The tag (field numbers stay far below 2^28: four bytes at most).
    let tag = 0;
    let shift = 0;
    for (;;) {
      if (at >= n || shift > 21) return undefined;
      const byte = bytes[at++] as number;
      tag |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    const wire = tag & 7;
    if (tag >>> 3 === 0) return undefined;
    if (wire === 0) {
      for (let i = 0; ; i++) {
        if (at >= n || i >= 10) return undefined;
        if ((bytes[at++] as number) < 0x80) break;
      }
    } else if (wire === 2) {
      let length = 0;
      let scale = 1;
      for (let i = 0; ; i++) {
        if (at >= n || i >= 5) return undefined;
        const byte = bytes[at++] as number;
        length += (byte & 0x7f) * scale;
        if (byte < 0x80) break;
        scale *= 128;
      }
      at += length;
    } else if (wire === 1) {
      at += 8;
    } else if (wire === 5) {
      at += 4;
    } else {
      return undefined;
    }
    if (at > n) return undefined;
    if (tag >>> 3 === hashField) {
      if (start >= 0) return undefined;
      start = fieldStart;
      end = at;
    }
  }
  if (start < 0) return digest("sha256", into.subarray(0, total), "binary");
  into.copyWithin(base + start, base + end, total);
  return digest("sha256", into.subarray(0, total - (end - start)), "binary");
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** The story id as StoredContextEvent field 14 (tag 0x72, length, UTF-8), as the writer hashes it. */
function storyField(storyId: string): Uint8Array {
  const text = utf8.encode(storyId);
  const out: number[] = [0x72];
  for (let n = text.length; ; n >>>= 7) {
    if (n < 0x80) {
      out.push(n);
      break;
    }
    out.push((n & 0x7f) | 0x80);
  }
  const field = new Uint8Array(out.length + text.length);
  field.set(out, 0);
  field.set(text, out.length);
  return field;
}

const SCRATCH_MAX = 64 * 1024;
let scratch = new Uint8Array(1024);

function scratchOf(size: number): Uint8Array {
  if (scratch.length < size) scratch = new Uint8Array(Math.min(SCRATCH_MAX, size * 2));
  return scratch;
}
