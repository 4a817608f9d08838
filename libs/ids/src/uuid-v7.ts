import { randomFillSync } from "node:crypto";
import { v7 } from "uuid";

// Random bytes are drawn 4 KiB at a time: `uuid` asks the OS for 16 bytes per id, which costs more
// than the rest of the id.
const pool = new Uint8Array(4096);
let offset = pool.length;
// Last time and counter, as `uuid` keeps them: ids of one process are strictly increasing.
let lastMsecs = Number.NEGATIVE_INFINITY;
let seq = 0;

/**
 * A UUIDv7 (RFC 9562) string, as `uuid`'s `v7()` makes it (monotonic within the process: the time,
 * then a 32-bit counter seeded at random each millisecond), from pooled random bytes.
 */
export function uuidv7(): string {
  if (offset + 16 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const random = pool.subarray(offset, offset + 16);
  offset += 16;
  const now = Date.now();
  if (now > lastMsecs) {
    seq =
      (((random[6] as number) & 0x7f) << 24) |
      ((random[7] as number) << 16) |
      ((random[8] as number) << 8) |
      (random[9] as number);
    lastMsecs = now;
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) lastMsecs++;
  }
  v7({ msecs: lastMsecs, seq, random }, bytes);
  return uuidText(bytes);
}

/** The id's bytes, laid out by `uuid`, and its text: reused, the id is returned as a fresh string. */
const bytes = new Uint8Array(16);
const chars = Buffer.alloc(36, "-");
const hex = Buffer.from("0123456789abcdef", "latin1");

/**
 * The canonical text of 16 bytes (lowercase, with hyphens), made as one flat string: `uuid` concatenates twenty pieces, which
 * gives a rope that is flattened again wherever the id is read (hashing, encoding, headers).
 */
export function uuidText(b: Uint8Array): string {
  let at = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) at++; // the dashes stay
    const byte = b[i] as number;
    chars[at++] = hex[byte >> 4] as number;
    chars[at++] = hex[byte & 0x0f] as number;
  }
  return chars.toString("latin1", 0, 36);
}

const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE[hex[i] as number] = i;
}

/**
 * The 16 bytes of a UUID in its canonical text form (lowercase hex, hyphens at 8, 13, 18 and 23),
 * the form uuidText gives back; undefined for any other text, so that bytes and text always make
 * the round trip unchanged.
 */
export function uuidBytes(value: string): Uint8Array | undefined {
  if (value.length !== 36) return undefined;
  const out = new Uint8Array(16);
  let at = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) {
      if (value.charCodeAt(at++) !== 0x2d) return undefined;
    }
    const hi = HEX_VALUE[value.charCodeAt(at++)] ?? -1;
    const lo = HEX_VALUE[value.charCodeAt(at++)] ?? -1;
    if (hi < 0 || lo < 0) return undefined;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/**
 * A UUIDv7 (RFC 9562) made of a time and a digest instead of random bits: 48 bits of milliseconds,
 * then the version, 12 bits of the digest, the variant and 62 more bits of it. The same time and
 * digest always give the same id: an id that need not be stored because it can be made again (the
 * event ids of envelope version 2 are made of occurred_at and the event's hash).
 */
export function uuidv7Of(milliseconds: number, digest: Uint8Array): string {
  if (!Number.isInteger(milliseconds) || milliseconds < 0 || milliseconds >= 2 ** 48) {
    throw new RangeError(`a UUIDv7 holds 48 bits of milliseconds, not ${milliseconds}`);
  }
  if (digest.length < 10) throw new RangeError("a UUIDv7 takes 10 bytes of the digest");
  const b = new Uint8Array(16);
  let ms = milliseconds;
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = 0x70 | ((digest[0] as number) & 0x0f);
  b[7] = digest[1] as number;
  b[8] = 0x80 | ((digest[2] as number) & 0x3f);
  for (let i = 9; i < 16; i++) b[i] = digest[i - 6] as number;
  return uuidText(b);
}
