import { describe, expect, it } from "vitest";
import { storyPartition } from "./event-stream.ts";

// The partition must be the one nats-server's `partition(n,1)` transform computes: FNV-1a (32 bits)
// of the token's UTF-8 bytes, modulo n. The server's own agreement is checked against a real stream
// in partitioned-expectation.int.spec.ts; these pin the hash itself.

/** FNV-1a as its definition reads: over the UTF-8 bytes, one at a time. */
function referenceFnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const whole = 2 ** 32; // modulo 2^32: the partition is the hash itself

describe("storyPartition", () => {
  it("is FNV-1a of the id, by the published test vectors", () => {
    expect(storyPartition("", whole)).toBe(0x811c9dc5);
    expect(storyPartition("a", whole)).toBe(0xe40c292c);
    expect(storyPartition("foobar", whole)).toBe(0xbf9cf968);
  });

  it("agrees with the byte-by-byte definition for story ids and for any other text", () => {
    const ids = ["story-1", "S", "0190f3a8-7b1c-7d2e-8f00-123456789abc", "a_b-C_9".repeat(9)];
    const other = ["é", "ストーリー", "emoji-😀", "mixed-ü-x", "\u0080"];
    for (const id of [...ids, ...other]) {
      for (const n of [1, 4, 16, 7, whole]) {
        expect(storyPartition(id, n), `${id} mod ${n}`).toBe(referenceFnv1a(id) % n);
      }
    }
  });
});
