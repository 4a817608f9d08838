import { createHash } from "node:crypto";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  type ContextState,
  fromContextMessage,
  type StoryId,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import { ContextSchema } from "@ctx/proto";
import type { CommandEntry, IndexedCommand } from "../handling/story-cache.ts";

/**
 * The command service's snapshot of a story, in three kinds of messages of the command snapshot
 * stream (one per subject, see commandSnapshotNames):
 *
 * - `{prefix}.{story}.state`: the story's state at a version, anchored to the event it was folded
 *   up to (its version, stream sequence and hash), with the number of full pages of command ids it
 *   relies on and digests of them;
 * - `{prefix}.{story}.c.{k}`: a full page, the commands whose first event has a version in
 *   (k·PAGE_SPAN, (k+1)·PAGE_SPAN]. Its content is a function of the story's history alone, so any
 *   writer writes the same bytes and a page, once written, is only ever rewritten with itself;
 * - `{prefix}.{story}.recent`: the commands after the last full page, written with the state in one
 *   atomic batch.
 *
 * Why pages: a story's commands have no bound (only its size does), and one NATS message does. The
 * state is bounded by the story limits (STORY_MAX_BYTES fits a message, see checkLimitsFit); a page
 * holds at most PAGE_SPAN commands of at most 128-character ids, about 9 KB. Each command is listed
 * as its id and where its events lie, not their ids and fingerprint: a retry of it reads them.
 *
 * The messages are protobuf-encoded by hand (field numbers below), not declared in proto/: they are
 * the command service's private cache, which no client reads, and which it may drop at any time.
 */
export const commandSnapshotFormat = 1;

/** Versions covered by one full page. Part of the format: a change needs a new format number. */
export const PAGE_SPAN = 64;

/** A decoded state message: the story's state at a version and what it is anchored to. */
export interface SnapshotState {
  readonly state: ContextState;
  /** Stream sequence of the event at `state.version`. */
  readonly sequence: number;
  /** That event's hash, as stored in its envelope. */
  readonly hash: Uint8Array;
  /** Full pages of command ids the snapshot relies on: floor(version / PAGE_SPAN). */
  readonly pages: number;
  /** The chained digest of those pages (see chainDigest). */
  readonly pagesDigest: Uint8Array;
  /** SHA-256 of the recent page written with it. */
  readonly recentDigest: Uint8Array;
}

/** A decoded page: the commands whose first event lies in (after, to]. */
export interface CommandPage {
  readonly after: number;
  readonly to: number;
  readonly commands: readonly IndexedEntry[];
}

export interface IndexedEntry extends IndexedCommand {
  readonly commandId: string;
}

// Field numbers. State: 1 format, 2 story id, 3 version, 4 occurred-at (ms since the epoch),
// 5 event sequence, 6 event hash, 7 context (context.v1.Context), 8 pages, 9 pages digest,
// 10 recent digest. Page: 1 format, 2 story id, 3 after, 4 to, 5 entries. Entry: 1 command id,
// 2 first version, 3 first sequence, 4 last version.

export function encodeState(snapshot: SnapshotState): Uint8Array {
  const { state } = snapshot;
  if (state.version === 0 || state.updatedAt === undefined) {
    throw new RangeError(`story ${state.storyId} has no events: there is nothing to snapshot`);
  }
  return new BinaryWriter()
    .tag(1, WireType.Varint)
    .uint32(commandSnapshotFormat)
    .tag(2, WireType.LengthDelimited)
    .string(state.storyId)
    .tag(3, WireType.Varint)
    .uint32(state.version)
    .tag(4, WireType.Varint)
    .int64(state.updatedAt.getTime())
    .tag(5, WireType.Varint)
    .uint64(snapshot.sequence)
    .tag(6, WireType.LengthDelimited)
    .bytes(snapshot.hash)
    .tag(7, WireType.LengthDelimited)
    .bytes(toBinary(ContextSchema, toContextMessage(state)))
    .tag(8, WireType.Varint)
    .uint32(snapshot.pages)
    .tag(9, WireType.LengthDelimited)
    .bytes(snapshot.pagesDigest)
    .tag(10, WireType.LengthDelimited)
    .bytes(snapshot.recentDigest)
    .finish();
}

/**
 * The state message of `storyId`; undefined for anything that must not be used: bytes that do not
 * decode, another format, another story, a state without the fields a load resumes from, or pages
 * that do not match its version.
 */
export function decodeState(storyId: StoryId, bytes: Uint8Array): SnapshotState | undefined {
  try {
    let format = 0;
    let story = "";
    let version = 0;
    let occurredAt = Number.NaN;
    let sequence = 0;
    let hash: Uint8Array = new Uint8Array(0);
    let context: Uint8Array | undefined;
    let pages = -1;
    let pagesDigest: Uint8Array = new Uint8Array(0);
    let recentDigest: Uint8Array = new Uint8Array(0);
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 1) format = r.uint32();
      else if (field === 2) story = r.string();
      else if (field === 3) version = r.uint32();
      else if (field === 4) occurredAt = Number(r.int64());
      else if (field === 5) sequence = Number(r.uint64());
      else if (field === 6) hash = r.bytes();
      else if (field === 7) context = r.bytes();
      else if (field === 8) pages = r.uint32();
      else if (field === 9) pagesDigest = r.bytes();
      else if (field === 10) recentDigest = r.bytes();
      else r.skip(wireType);
    }
    if (
      format !== commandSnapshotFormat ||
      story !== storyId ||
      version < 1 ||
      !Number.isFinite(occurredAt) ||
      sequence < 1 ||
      hash.length === 0 ||
      context === undefined ||
      pages !== Math.floor(version / PAGE_SPAN)
    ) {
      return undefined;
    }
    const message = fromBinary(ContextSchema, context);
    if (message.storyId !== storyId) return undefined;
    const state = fromContextMessage(message, streamVersion(version), new Date(occurredAt));
    return { state, sequence, hash, pages, pagesDigest, recentDigest };
  } catch {
    // Not a snapshot this code can read (truncated, another shape, a status it does not know).
    return undefined;
  }
}

/** A page of `storyId` over (after, to]: `commands` sorted by first version (see pageCommands). */
export function encodePage(
  storyId: StoryId,
  after: number,
  to: number,
  commands: readonly IndexedEntry[],
): Uint8Array {
  const w = new BinaryWriter()
    .tag(1, WireType.Varint)
    .uint32(commandSnapshotFormat)
    .tag(2, WireType.LengthDelimited)
    .string(storyId)
    .tag(3, WireType.Varint)
    .uint32(after)
    .tag(4, WireType.Varint)
    .uint32(to);
  for (const c of commands) {
    w.tag(5, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string(c.commandId)
      .tag(2, WireType.Varint)
      .uint32(c.firstVersion)
      .tag(3, WireType.Varint)
      .uint64(c.firstSequence)
      .tag(4, WireType.Varint)
      .uint32(c.version)
      .join();
  }
  return w.finish();
}

/**
 * The page of `storyId` that starts after `after`; undefined for anything that must not be used
 * (another format, story or position, or a command outside the page).
 */
export function decodePage(
  storyId: StoryId,
  after: number,
  bytes: Uint8Array,
): CommandPage | undefined {
  try {
    let format = 0;
    let story = "";
    let from = -1;
    let to = -1;
    const commands: IndexedEntry[] = [];
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 1) format = r.uint32();
      else if (field === 2) story = r.string();
      else if (field === 3) from = r.uint32();
      else if (field === 4) to = r.uint32();
      else if (field === 5) commands.push(decodeEntry(new BinaryReader(r.bytes())));
      else r.skip(wireType);
    }
    const fits = (c: IndexedEntry) =>
      c.commandId !== "" &&
      c.firstVersion > after &&
      c.firstVersion <= to &&
      c.version >= c.firstVersion &&
      c.firstSequence > 0;
    if (format !== commandSnapshotFormat || story !== storyId || from !== after || to < after) {
      return undefined;
    }
    return commands.every(fits) ? { after, to, commands } : undefined;
  } catch {
    return undefined;
  }
}

function decodeEntry(r: BinaryReader): IndexedEntry {
  let commandId = "";
  let firstVersion = 0;
  let firstSequence = 0;
  let version = 0;
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1) commandId = r.string();
    else if (field === 2) firstVersion = r.uint32();
    else if (field === 3) firstSequence = Number(r.uint64());
    else if (field === 4) version = r.uint32();
    else r.skip(wireType);
  }
  return {
    indexed: true,
    commandId,
    firstVersion: streamVersion(firstVersion),
    firstSequence,
    version: streamVersion(version),
  };
}

/**
 * The commands whose first event has a version in (after, to], in version order: what a page over
 * that range lists. The same history gives the same list, so every writer writes the same page.
 */
export function pageCommands(
  commands: ReadonlyMap<string, CommandEntry>,
  after: number,
  to: number,
): IndexedEntry[] {
  const out: IndexedEntry[] = [];
  for (const [commandId, entry] of commands) {
    if (entry.firstVersion <= after || entry.firstVersion > to) continue;
    out.push({
      indexed: true,
      commandId,
      firstVersion: entry.firstVersion,
      firstSequence: entry.firstSequence,
      version: entry.version,
    });
  }
  return out.sort(
    (a, b) =>
      a.firstVersion - b.firstVersion ||
      (a.commandId < b.commandId ? -1 : a.commandId > b.commandId ? 1 : 0),
  );
}

/**
 * The digest of pages 0..k: SHA-256 of the digest of pages 0..k-1 (empty for none) and page k's
 * bytes. A state message names the digest of the pages it relies on, so that a page left from
 * another history of the story (an event stream restored or recreated) is never read as its own.
 */
export function chainDigest(previous: Uint8Array, page: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(previous).update(page).digest());
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}
