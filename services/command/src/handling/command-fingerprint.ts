import { hash } from "node:crypto";
import type { Command } from "@ctx/domain";

/**
 * The format of the fingerprints this release computes: the first byte of each. A later release
 * that fingerprints requests another way gives its format a new number, so that fingerprints of
 * different formats are never compared as if they were alike. Format 2 keeps the first 8 bytes of
 * format 1's SHA-256: stored with the command's first event, 24 bytes fewer per command, and
 * still a 2^-64 chance that another request passes for a retry (a caller that reuses its own
 * command id can only harm itself, and would need about 2^64 tries to pick such a request).
 * Format 1 fingerprints (the whole digest) are read as format 2 (see fingerprintOf).
 */
const FORMAT = 2;
const DIGEST_BYTES = 8;

/**
 * A request's fingerprint: what tells a retry of a command (same `command_id`, same request) from
 * another request that reuses its `command_id`. The format byte, then the first 8 bytes of the
 * SHA-256 of the canonical JSON of the request's changes as domain commands: fields in a fixed order, absent optional
 * fields as `null`. Volatile fields are left out: the story (command ids are scoped to it), the
 * command id itself and `expected_version` (a retry after a lost answer may pin another version;
 * what it asks for is the same). Built from the commands, not the protobuf bytes, so unknown
 * fields, field order or an explicit UNSPECIFIED status do not make a retry look different.
 *
 * As a "binary" string (one character per byte, 9 of them): compared with `===`, and kept by the
 * story cache at a fraction of what a byte array costs.
 */
export function commandFingerprint(commands: readonly Command[]): string {
  const digest = hash("sha256", canonicalJson(commands), "binary");
  return String.fromCharCode(FORMAT) + digest.slice(0, DIGEST_BYTES);
}

/** A fingerprint as stored in an envelope (`command_fingerprint`). */
export function fingerprintBytes(fingerprint: string): Uint8Array {
  const bytes = new Uint8Array(fingerprint.length);
  for (let i = 0; i < fingerprint.length; i++) bytes[i] = fingerprint.charCodeAt(i);
  return bytes;
}

/**
 * A stored fingerprint as a string; `""` when the event has none (written before they existed). A
 * format 1 fingerprint (format byte, whole SHA-256) is read as the format 2 one of the same request:
 * its first 8 digest bytes.
 */
export function fingerprintOf(bytes: Uint8Array): string {
  // latin1 maps each byte to the character of that code, as String.fromCharCode does, in a tenth
  // of the time of spreading the bytes into it (0.1 against 0.8 µs; every recorded event pays it).
  if (bytes.length === 0) return "";
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
  if (bytes[0] === 1 && bytes.length === 33) {
    return String.fromCharCode(FORMAT) + text.slice(1, 1 + DIGEST_BYTES);
  }
  return text;
}

/**
 * Whether a stored fingerprint can be compared with the ones this release computes: false for an
 * event written before fingerprints existed (`""`) or by a release with another format.
 */
export function isComparable(fingerprint: string): boolean {
  return fingerprint.charCodeAt(0) === FORMAT;
}

/** The fingerprint's input: the commands' canonical JSON (formats 1 and 2 hash the same). */
export function canonicalJson(commands: readonly Command[]): string {
  return JSON.stringify(commands.map(canonical));
}

function canonical(c: Command): readonly unknown[] {
  switch (c.type) {
    case "CreateContext":
      return [c.type, c.title, c.description];
    case "AddDecision":
      return [
        c.type,
        c.decisionId,
        c.title,
        c.rationale,
        c.madeBy,
        c.alternatives,
        c.affectsSubtaskIds,
      ];
    case "SupersedeDecision":
      return [c.type, c.decisionId, c.supersededByDecisionId];
    case "AddSubtask":
      return [c.type, c.subtaskId, c.title, c.dependsOn];
    case "UpdateSubtask":
      // UNSPECIFIED and absent both keep the status.
      return [c.type, c.subtaskId, c.status || null, c.assignee ?? null];
    case "AddSubtaskDependency":
      return [c.type, c.subtaskId, c.dependsOnSubtaskId];
    case "ArchiveContext":
      return [c.type, c.reason];
    default: {
      const unknown: never = c;
      throw new TypeError(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}
