import type { ContextState, StoryId, StoryMeasure, StreamVersion } from "@ctx/domain";

/**
 * What a command produced, remembered by command id so a repeated command returns it again, and
 * what it was, so that another request reusing the id is refused instead.
 */
export interface CommandOutcome {
  /** Version of the command's first event: where a snapshot lists it (see IndexedCommand). */
  readonly firstVersion: StreamVersion;
  /** Stream sequence of that event. */
  readonly firstSequence: number;
  /** Version of the command's last event. */
  readonly version: StreamVersion;
  readonly eventIds: readonly string[];
  /** The request's name (its RPC method); `""` for a command written before names were stored. */
  readonly name: string;
  /** The request's fingerprint (see command-fingerprint.ts); `""` when none was stored. */
  readonly fingerprint: string;
}

/**
 * A command a snapshot listed: where its events lie, not what they said. A snapshot carries only
 * this for each command (compact: a story of 10,000 commands lists them in about 450 KB), and the
 * rare retry of one reads its events to answer as a full read would have (see command-handler).
 */
export interface IndexedCommand {
  readonly indexed: true;
  readonly firstVersion: StreamVersion;
  readonly firstSequence: number;
  /** Version of the command's last event (of the last one seen, for an id written twice). */
  readonly version: StreamVersion;
}

/** What the handler knows of a command id: its outcome, or where a snapshot said it lies. */
export type CommandEntry = CommandOutcome | IndexedCommand;

export function isIndexed(entry: CommandEntry): entry is IndexedCommand {
  return "indexed" in entry;
}

/**
 * What the handler knows of the story's snapshots: the newest one known to be stored and the pages
 * of command ids it relies on, so the next snapshot writes only the pages that are new. Shared by
 * the successive LoadedStory objects of one story and updated in place by the snapshot writer.
 */
export interface SnapshotBase {
  /** Version of the newest snapshot known to be stored; 0 when none is known. */
  version: number;
  /** Full pages of command ids known to be stored (see command-snapshot-codec.ts). */
  pages: number;
  /** The chained digest of those pages. */
  pagesDigest: Uint8Array;
}

/** A story as the command side holds it: its state, where it ends in the stream, and its commands. */
export interface LoadedStory {
  readonly state: ContextState;
  /** What the story's limits bound and its state does not keep (its encoded size, dependencies). */
  readonly measure: StoryMeasure;
  /** Stream sequence of the story's last event; 0 when the story has none. */
  readonly sequence: number;
  /** That event's hash (empty when the story has none): what a snapshot of the story is anchored to. */
  readonly hash: Uint8Array;
  /** The commands that wrote the story's events, by command id (append-only). */
  readonly commands: Map<string, CommandEntry>;
  readonly snapshot: SnapshotBase;
}

/** How much a StoryCache may hold. A limit of 0 holds nothing (the cache is off). */
export interface StoryCacheLimits {
  /** Stories held at most. */
  readonly stories: number;
  /**
   * Events held at most, summed over the stories held (a story weighs its version). What a story
   * costs in memory grows with its events (its state, and the outcome of every command that wrote
   * it), so a bound on stories alone does not bound memory: 10,000 stories of 10,000 events each
   * would need tens of gigabytes.
   */
  readonly events: number;
}

/**
 * The default limits: at about 570 bytes of heap per cached event (state and command outcomes,
 * measured for stories of subtasks), 500,000 events are about 0.3 GB.
 */
export const defaultCacheLimits: StoryCacheLimits = { stories: 10_000, events: 500_000 };

/**
 * A bounded, least-recently-written cache of stories, so a hot story is not re-read for every command.
 * When a story is stored and the cache is over a limit, the stories written longest ago leave it; a
 * story that alone weighs more than the events limit is not kept at all. Correctness never depends
 * on it: appends are checked by the server, and after a conflict the handler reads the events it
 * missed.
 */
export class StoryCache {
  readonly #entries = new Map<StoryId, LoadedStory>();
  readonly #limits: StoryCacheLimits;
  #events = 0;

  constructor(limits: StoryCacheLimits) {
    for (const [name, limit] of Object.entries(limits)) {
      if (!Number.isInteger(limit) || limit < 0) {
        throw new RangeError(`story cache limit ${name} must be a whole number ≥ 0, not ${limit}`);
      }
    }
    this.#limits = limits;
  }

  /**
   * The story, without marking it used: the handler stores a story back with `set` after every
   * append, which marks it, so a command reorders the cache once, not twice.
   */
  get(storyId: StoryId): LoadedStory | undefined {
    return this.#entries.get(storyId);
  }

  /** Stores the story as the most recently written one, then evicts down to the limits. */
  set(storyId: StoryId, story: LoadedStory): void {
    this.delete(storyId);
    const weight = weightOf(story);
    const { stories, events } = this.#limits;
    if (stories === 0 || events === 0 || weight > events) return;
    this.#entries.set(storyId, story);
    this.#events += weight;
    while (this.#entries.size > stories || this.#events > events) {
      // The story just stored is the newest and fits alone: the loop ends with it at the latest.
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined || oldest === storyId) break;
      this.delete(oldest);
    }
  }

  delete(storyId: StoryId): void {
    const held = this.#entries.get(storyId);
    if (held === undefined) return;
    this.#entries.delete(storyId);
    this.#events -= weightOf(held);
  }

  /** Stories held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Events held, summed over the stories held. */
  get events(): number {
    return this.#events;
  }
}

function weightOf(story: LoadedStory): number {
  return story.state.version;
}
