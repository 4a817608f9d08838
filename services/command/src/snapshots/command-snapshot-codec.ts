import { createHash } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type ContextState,
  fromContextMessage,
  type StoryId,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import { CommandSnapshotPageSchema, CommandSnapshotStateSchema } from "@ctx/proto";
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
 * The messages are context.v1.CommandSnapshotState and CommandSnapshotPage (command_service.proto):
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

export function encodeState(snapshot: SnapshotState): Uint8Array {
  const { state } = snapshot;
  if (state.version === 0 || state.updatedAt === undefined) {
    throw new RangeError(`story ${state.storyId} has no events: there is nothing to snapshot`);
  }
  return toBinary(
    CommandSnapshotStateSchema,
    create(CommandSnapshotStateSchema, {
      format: commandSnapshotFormat,
      storyId: state.storyId,
      version: state.version,
      occurredAtMs: BigInt(state.updatedAt.getTime()),
      sequence: BigInt(snapshot.sequence),
      hash: snapshot.hash,
      context: toContextMessage(state),
      pages: snapshot.pages,
      pagesDigest: snapshot.pagesDigest,
      recentDigest: snapshot.recentDigest,
    }),
  );
}

/**
 * The state message of `storyId`; undefined for anything that must not be used: bytes that do not
 * decode, another format, another story, a state without the fields a load resumes from, or pages
 * that do not match its version.
 */
export function decodeState(storyId: StoryId, bytes: Uint8Array): SnapshotState | undefined {
  try {
    const m = fromBinary(CommandSnapshotStateSchema, bytes);
    const occurredAt = Number(m.occurredAtMs);
    const sequence = Number(m.sequence);
    const pages = m.pages ?? -1;
    if (
      m.format !== commandSnapshotFormat ||
      m.storyId !== storyId ||
      m.version < 1 ||
      occurredAt === 0 ||
      sequence < 1 ||
      m.hash.length === 0 ||
      m.context === undefined ||
      m.context.storyId !== storyId ||
      pages !== Math.floor(m.version / PAGE_SPAN)
    ) {
      return undefined;
    }
    const state = fromContextMessage(m.context, streamVersion(m.version), new Date(occurredAt));
    return {
      state,
      sequence,
      hash: m.hash,
      pages,
      pagesDigest: m.pagesDigest ?? new Uint8Array(0),
      recentDigest: m.recentDigest,
    };
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
  return toBinary(
    CommandSnapshotPageSchema,
    create(CommandSnapshotPageSchema, {
      format: commandSnapshotFormat,
      storyId,
      after,
      to,
      commands: commands.map((c) => ({
        commandId: c.commandId,
        firstVersion: c.firstVersion,
        firstSequence: BigInt(c.firstSequence),
        version: c.version,
      })),
    }),
  );
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
    const m = fromBinary(CommandSnapshotPageSchema, bytes);
    if (
      m.format !== commandSnapshotFormat ||
      m.storyId !== storyId ||
      (m.after ?? -1) !== after ||
      m.to < after
    ) {
      return undefined;
    }
    const commands: IndexedEntry[] = m.commands.map((c) => ({
      indexed: true,
      commandId: c.commandId,
      firstVersion: streamVersion(c.firstVersion),
      firstSequence: Number(c.firstSequence),
      version: streamVersion(c.version),
    }));
    const fits = (c: IndexedEntry) =>
      c.commandId !== "" &&
      c.firstVersion > after &&
      c.firstVersion <= m.to &&
      c.version >= c.firstVersion &&
      c.firstSequence > 0;
    return commands.every(fits) ? { after, to: m.to, commands } : undefined;
  } catch {
    return undefined;
  }
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
