import { hash as digest } from "node:crypto";

/** The envelope's `hash` field (context.v1.ContextEvent, field 12). */
const HASH_FIELD = 12;

/**
 * Whether a stored envelope's bytes hash to the hash it carries: SHA-256 over its `prev_hash`
 * followed by the stored bytes with field 12 (`hash`) taken out (docs/AUDIT.md). Readers call it
 * on every message they read, so an event whose content was changed after it was written, or one
 * written by someone who did not (or could not) hash it, is never read as an event: it is
 * unreadable, parked, and set aside by an operator like any other. False when the bytes hold the
 * field more than once (the store never writes that) or are not well-formed protobuf.
 */
export function storedHashMatches(
  bytes: Uint8Array,
  prevHash: Uint8Array,
  hash: Uint8Array,
): boolean {
  const extent = hashFieldExtent(bytes);
  if (extent === undefined || hash.length !== 32) return false;
  const [start, end] = extent;
  // prev_hash ‖ bytes without [start, end), laid out in a scratch buffer kept between calls: the
  // hash itself costs far less than allocating the concatenation would.
  // Both are laid out whole, then the rest moved over the hash field.
  const total = prevHash.length + bytes.length;
  const size = total - (end - start);
  const into = total <= SCRATCH_MAX ? scratchOf(total) : new Uint8Array(total);
  into.set(prevHash, 0);
  into.set(bytes, prevHash.length);
  into.copyWithin(prevHash.length + start, prevHash.length + end, prevHash.length + bytes.length);
  const actual = digest("sha256", into.subarray(0, size), "binary");
  for (let i = 0; i < 32; i++) if (actual.charCodeAt(i) !== hash[i]) return false;
  return true;
}

const SCRATCH_MAX = 64 * 1024;
let scratch = new Uint8Array(1024);

function scratchOf(size: number): Uint8Array {
  if (scratch.length < size) scratch = new Uint8Array(Math.min(SCRATCH_MAX, size * 2));
  return scratch;
}

/**
 * Where field 12 sits in an envelope's top-level fields, [start, end) (start = end when absent);
 * undefined when the bytes are malformed or hold it twice. One pass, no allocation.
 */
function hashFieldExtent(bytes: Uint8Array): readonly [number, number] | undefined {
  let start = 0;
  let end = 0;
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
    if (tag >>> 3 === HASH_FIELD) {
      if (end !== 0) return undefined;
      start = fieldStart;
      end = at;
    }
  }
  return [start, end];
}
