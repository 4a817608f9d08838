import { untilAborted } from "@ctx/config";

/**
 * Runs the commands of one story one after another within this process, in the order they came,
 * while commands of different stories run side by side.
 *
 * Why: the handler decides a command on the story it holds and appends with the story's version
 * as the server-checked expectation. Two commands of one story decided at once in one process
 * both expect the same version: one wins, the other is refused, reloads, decides again and
 * appends again, and under a burst on one story (64 calls in flight on 16 stories) such retries
 * pile up until some give up with ABORTED, though no other writer was there. Queued instead, each
 * command is decided on the story its predecessor left, and the expectation only meets the
 * writers of other processes.
 *
 * Bounded: at most `depth` commands of one story wait; a command past that runs at once, as every
 * command did before lanes (the expectation keeps it correct; it may lose a race and retry). A
 * caller whose signal aborts while it waits is answered at once, and its command never runs.
 */
export class StoryLanes {
  readonly #depth: number;
  /** By story: the end of its lane (settles when its last queued command has), and its length. */
  readonly #lanes = new Map<string, { tail: Promise<void>; waiting: number }>();

  constructor(depth: number) {
    this.#depth = depth;
  }

  /** Runs `work` once the commands of `story` queued before it have settled. */
  run<T>(story: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const lane = this.#lanes.get(story);
    if (lane === undefined) {
      // The common case: nothing of the story in flight. No waiting, one entry.
      const result = work();
      const entry = { tail: settled(result), waiting: 0 };
      this.#lanes.set(story, entry);
      this.#release(story, entry, entry.tail);
      return result;
    }
    if (lane.waiting >= this.#depth) return work();
    lane.waiting++;
    const turn = lane.tail.then(() => {
      lane.waiting--;
      signal?.throwIfAborted();
      return work();
    });
    lane.tail = settled(turn);
    this.#release(story, lane, lane.tail);
    // Answered at once when the signal aborts; the queued work then finds it aborted and never runs.
    return signal === undefined ? turn : untilAborted(turn, signal);
  }

  /** Stories with a command in flight or waiting (for tests and metrics). */
  get size(): number {
    return this.#lanes.size;
  }

  #release(story: string, lane: { tail: Promise<void> }, tail: Promise<void>): void {
    void tail.then(() => {
      // Only the last command queued removes the lane: one queued after it extended the tail.
      if (lane.tail === tail && this.#lanes.get(story) === lane) this.#lanes.delete(story);
    });
  }
}

function settled(promise: Promise<unknown>): Promise<void> {
  return promise.then(
    () => undefined,
    () => undefined,
  );
}
