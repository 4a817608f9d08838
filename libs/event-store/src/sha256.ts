import { hash } from "node:crypto";

/**
 * The SHA-256 digest of `data`.
 *
 * Node hands a digest out as a `Buffer` allocated outside the JavaScript heap, and that allocation
 * costs as much as hashing a few hundred bytes. As a "binary" (latin1) string, one character per
 * byte, the digest costs next to nothing, and its 32 characters are copied into a small array.
 */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  return sha256Head(parts.length === 1 ? (parts[0] as Uint8Array) : concat(parts), 32);
}

/** The first `length` bytes (at most 32) of the SHA-256 digest of `data` (SHA-256 truncated). */
export function sha256Head(data: Uint8Array, length: number): Uint8Array {
  const text = hash("sha256", data, "binary");
  const digest = new Uint8Array(length);
  for (let i = 0; i < length; i++) digest[i] = text.charCodeAt(i);
  return digest;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const all = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}
