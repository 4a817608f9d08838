import type { ContextState, StoryId, StreamVersion } from "@ctx/domain";

/** What a command produced, remembered by command id so a repeated command returns it again. */
export interface CommandOutcome {
  readonly version: StreamVersion;
  readonly eventIds: readonly string[];
}

/** A story as the command side holds it: its state, where it ends in the stream, and its commands. */
export interface LoadedStory {
  readonly state: ContextState;
  /** Stream sequence of the story's last event; 0 when the story has none. */
  readonly sequence: number;
  /** Outcomes of the commands that wrote the story's events, by command id (append-only). */
  readonly commands: Map<string, CommandOutcome>;
}

/**
 * A bounded, least-recently-written cache of stories, so a hot story is not re-read for every command.
 * Correctness never depends on it: appends are checked by the server, and after a conflict the
 * handler reads the events it missed.
 */
export class StoryCache {
  readonly #entries = new Map<StoryId, LoadedStory>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /**
   * The story, without marking it used: the handler stores a story back with `set` after every
   * append, which marks it, so a command reorders the cache once, not twice.
   */
  get(storyId: StoryId): LoadedStory | undefined {
    return this.#entries.get(storyId);
  }

  set(storyId: StoryId, story: LoadedStory): void {
    if (this.#capacity <= 0) return;
    this.#entries.delete(storyId);
    this.#entries.set(storyId, story);
    if (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  delete(storyId: StoryId): void {
    this.#entries.delete(storyId);
  }

  get size(): number {
    return this.#entries.size;
  }
}
