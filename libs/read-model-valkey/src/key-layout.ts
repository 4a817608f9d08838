import type { StoryId } from "@ctx/domain";
import { type SubtaskStatus, SubtaskStatusSchema } from "@ctx/proto";

/** Where the read model keeps its keys. */
export interface ValkeyReadModelOptions {
  /** Prefix of every key (default `ctx`), so several read models can share one server. */
  readonly keyPrefix?: string;
  /**
   * States of this many recently written stories are kept in memory by the projection, so a batch
   * reads and decodes only stories it has not just written (default 10,000; 0 turns it off). Never
   * trusted for correctness: every write is still guarded by the stored version.
   */
  readonly stateCacheSize?: number;
}

/** The prefix of every key when none is given. */
export const defaultKeyPrefix = "ctx";

/** The generation readers use while `{prefix}:active-generation` is absent. */
export const defaultGeneration = 1;

/** Names of the subtask status index sets, in enum order (`TODO`, `IN_PROGRESS`, ...). */
export const subtaskStatusNames: readonly string[] = SubtaskStatusSchema.values.map(
  (v) => v.localName,
);

const statusNameByNumber = new Map(SubtaskStatusSchema.values.map((v) => [v.number, v.localName]));
const statusSetByNumber = new Map(SubtaskStatusSchema.values.map((v, i) => [v.number, i + 1]));

/**
 * The index set name of a status, or undefined for a number this code does not know (written by
 * newer code): such subtasks stay in the context but are left out of the indexes.
 */
export function subtaskStatusName(status: SubtaskStatus): string | undefined {
  return statusNameByNumber.get(status);
}

/** 1 + the position of a status's name in `subtaskStatusNames`; 0 for a status not indexed. */
export function subtaskStatusSet(status: SubtaskStatus): number {
  return statusSetByNumber.get(status) ?? 0;
}

/** The keys of one generation (see the package README for what each holds). */
export interface GenerationKeys {
  readonly story: (storyId: StoryId) => string;
  readonly subtasks: (storyId: StoryId, statusName: string) => string;
  readonly byUpdate: string;
  readonly checkpoint: string;
  /** SCAN pattern matching every key of the generation, and nothing of any other. */
  readonly pattern: string;
}

/**
 * What follows `{prefix}:g{generation}` in each key of a generation: readers' scripts put the active
 * generation in between on the server, so that the pointer and the data are read at once.
 */
export const keySuffix = {
  story: (storyId: StoryId) => `:story:${storyId}`,
  subtasks: (storyId: StoryId, statusName: string) => `:story:${storyId}:subtasks:${statusName}`,
  byUpdate: ":stories:by-update",
  checkpoint: ":checkpoint",
} as const;

/** Every key of the read model under one prefix. */
export interface KeyLayout {
  readonly activeGeneration: string;
  readonly generations: string;
  /** `{prefix}:g`: with a generation number after it, the start of every key of that generation. */
  readonly generationStem: string;
  readonly generation: (generation: number) => GenerationKeys;
}

/** @throws RangeError for an empty prefix. */
export function keyLayout(prefix: string): KeyLayout {
  if (prefix === "") throw new RangeError("the Valkey key prefix must not be empty");
  const generationStem = `${prefix}:g`;
  return {
    activeGeneration: `${prefix}:active-generation`,
    generations: `${prefix}:generations`,
    generationStem,
    generation: (generation) => {
      const base = `${generationStem}${checkGeneration(generation)}`;
      return {
        story: (storyId) => base + keySuffix.story(storyId),
        subtasks: (storyId, statusName) => base + keySuffix.subtasks(storyId, statusName),
        byUpdate: base + keySuffix.byUpdate,
        checkpoint: base + keySuffix.checkpoint,
        // Story ids hold no ':' and the generation is followed by one, so g1 never matches g10.
        pattern: `${escapeGlob(base)}:*`,
      };
    },
  };
}

/**
 * A generation number as it appears in keys: a non-negative safe integer, so that `g7` and `g07`
 * can never name the same generation twice.
 *
 * @throws RangeError otherwise.
 */
export function checkGeneration(generation: number): number {
  if (!Number.isSafeInteger(generation) || generation < 0) {
    throw new RangeError(`invalid generation ${generation}: expected a non-negative safe integer`);
  }
  return generation;
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}
