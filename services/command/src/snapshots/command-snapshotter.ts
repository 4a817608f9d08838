import type { StoryId } from "@ctx/domain";
import type { LoadedStory } from "../handling/story-cache.ts";
import type { CommandSnapshotStore, SnapshotWrite } from "./command-snapshot-store.ts";

/**
 * Writes the command service's snapshots in the background. After an append the handler hands it
 * the story as it now stands; once a story has grown by `every` events since its newest known
 * snapshot, it is queued, and one writer works through the queue, one story at a time. A command
 * never waits for a snapshot and never fails because of one: a full queue drops the story (it is
 * queued again after its next append), a failed write is reported and forgotten.
 */
export interface CommandSnapshotter {
  /** Queues the story when it is due a snapshot; returns at once. */
  appended(story: LoadedStory): void;
  /** Stories waiting to be written. */
  readonly queued: number;
  /** Resolves once the queue is empty and no write is under way (for tests and benches). */
  idle(): Promise<void>;
  /** Forgets the queue and waits for the write under way, if any. */
  stop(): Promise<void>;
}

export interface CommandSnapshotterOptions {
  /** A story is snapshotted once it has grown by this many events since its last snapshot (≥ 1). */
  readonly every: number;
  /** Stories waiting at most; a story due when the queue is full is dropped. */
  readonly queue: number;
  readonly onWritten?: (outcome: SnapshotWrite, seconds: number) => void;
  readonly onFailed?: (storyId: StoryId, error: unknown) => void;
  readonly onDropped?: (storyId: StoryId) => void;
}

export function createCommandSnapshotter(
  store: CommandSnapshotStore,
  options: CommandSnapshotterOptions,
): CommandSnapshotter {
  if (!Number.isInteger(options.every) || options.every < 1) {
    throw new RangeError(`snapshot interval must be a whole number ≥ 1, not ${options.every}`);
  }
  // By story, in the order they became due; a story due again takes the newest state.
  const pending = new Map<StoryId, LoadedStory>();
  let running: Promise<void> | undefined;
  let stopped = false;
  const due = (story: LoadedStory) => story.state.version - story.snapshot.version >= options.every;

  async function drain(): Promise<void> {
    for (;;) {
      const next = pending.entries().next();
      if (next.done || stopped) return;
      const [storyId, story] = next.value;
      pending.delete(storyId);
      // Another write (of this process, or loaded from the store) may have caught up meanwhile.
      if (!due(story)) continue;
      const started = performance.now();
      try {
        const outcome = await store.write(story);
        options.onWritten?.(outcome, (performance.now() - started) / 1000);
      } catch (e) {
        options.onFailed?.(storyId, e);
      }
    }
  }

  // One writer at a time; a story queued while the last one was finishing starts another.
  function kick(): void {
    running ??= drain().finally(() => {
      running = undefined;
      if (pending.size > 0 && !stopped) kick();
    });
  }

  return {
    appended(story) {
      if (stopped || !due(story)) return;
      const storyId = story.state.storyId;
      if (!pending.has(storyId) && pending.size >= options.queue) {
        options.onDropped?.(storyId);
        return;
      }
      pending.set(storyId, story);
      kick();
    },
    get queued() {
      return pending.size;
    },
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      pending.clear();
      while (running) await running;
    },
  };
}
