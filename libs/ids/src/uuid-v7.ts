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
  return text(bytes);
}

/** The id's bytes, laid out by `uuid`, and its text: reused, the id is returned as a fresh string. */
const bytes = new Uint8Array(16);
const chars = Buffer.alloc(36, "-");
const hex = Buffer.from("0123456789abcdef", "latin1");

/**
 * The canonical text of 16 bytes, made as one flat string: `uuid` concatenates twenty pieces, which
 * gives a rope that is flattened again wherever the id is read (hashing, encoding, headers).
 */
function text(b: Uint8Array): string {
  let at = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) at++; // the dashes stay
    const byte = b[i] as number;
    chars[at++] = hex[byte >> 4] as number;
    chars[at++] = hex[byte & 0x0f] as number;
  }
  return chars.toString("latin1", 0, 36);
}
