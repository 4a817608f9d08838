import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { sha256 } from "./sha256.ts";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const reference = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
};

describe("sha256", () => {
  it("gives the published digests (FIPS 180-2 examples)", () => {
    expect(hex(sha256(new Uint8Array(0)))).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    expect(hex(sha256(new TextEncoder().encode("abc")))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  it("keeps every byte value of the digest, those from 0x80 up too", () => {
    // Over many inputs every position of the digest takes high and low byte values.
    const seen = new Set<number>();
    for (let n = 0; n < 512; n++) {
      const data = Uint8Array.from({ length: n % 97 }, (_, i) => (i * 31 + n) & 0xff);
      const digest = sha256(data);
      expect(digest).toBeInstanceOf(Uint8Array);
      expect(digest).toEqual(reference(data));
      for (const byte of digest) seen.add(byte);
    }
    expect(seen.size).toBe(256);
  });

  it("hashes several parts as their concatenation", () => {
    const a = Uint8Array.of(1, 2, 3, 0xff);
    const b = new Uint8Array(0);
    const c = Uint8Array.of(0x80, 0x7f);
    expect(sha256(a, b, c)).toEqual(reference(a, b, c));
    expect(sha256(a, c)).toEqual(sha256(Uint8Array.of(1, 2, 3, 0xff, 0x80, 0x7f)));
  });
});
