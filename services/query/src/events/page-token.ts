import type { EventPosition } from "@ctx/snapshots";
import { InvalidQueryError } from "../errors.ts";

/**
 * Where the next page of ListEvents starts: its first version, and where the event before it sits
 * in the stream (so the next page reads from there instead of from the story's start). Opaque to
 * clients; a position that no longer matches the stream is only a lost shortcut, never a wrong page.
 */
export interface PageToken {
  readonly nextVersion: number;
  readonly after: EventPosition;
}

const FORMAT = /^1\.(\d{1,10})\.(\d{1,16})$/;

export function encodePageToken(token: PageToken): string {
  const { nextVersion, after } = token;
  return Buffer.from(`1.${nextVersion}.${after.sequence}`).toString("base64url");
}

/** @throws InvalidQueryError for anything encodePageToken did not produce. */
export function decodePageToken(text: string): PageToken {
  const raw = Buffer.from(text, "base64url");
  const match = raw.toString("base64url") === text ? FORMAT.exec(raw.toString("latin1")) : null;
  const nextVersion = Number(match?.[1]);
  const sequence = Number(match?.[2]);
  if (
    match === null ||
    !Number.isSafeInteger(sequence) ||
    nextVersion < 2 ||
    nextVersion > 0xffff_ffff ||
    sequence < 1
  ) {
    throw new InvalidQueryError("page_token", "malformed page_token: pass a next_page_token as is");
  }
  return { nextVersion, after: { sequence, version: nextVersion - 1 } };
}
