import type { StoryId } from "@ctx/domain";

/** The namespace a model uses when none is given. */
export const defaultNamespace = "ctx";

/** The generation readers use while no ReadModelState node says otherwise. */
export const defaultGeneration = 1;

// `|` separates the parts of a key: neither a namespace nor a story, decision or subtask id may
// contain it (ids are checked by request validation), so no two keys can collide.
const namespacePattern = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Checks a namespace: it becomes the first part of every key the model writes.
 *
 * @throws RangeError when it is not 1–64 letters, digits, `_`, `.` or `-`.
 */
export function checkNamespace(namespace: string): string {
  if (!namespacePattern.test(namespace)) {
    throw new RangeError(
      `invalid namespace ${JSON.stringify(namespace)}: expected 1-64 letters, digits, '_', '.' or '-'`,
    );
  }
  return namespace;
}

/**
 * Checks a generation number.
 *
 * @throws RangeError when it is not a non-negative safe integer.
 */
export function checkGeneration(generation: number): number {
  if (!Number.isSafeInteger(generation) || generation < 0) {
    throw new RangeError(`invalid generation ${generation}: expected a non-negative safe integer`);
  }
  return generation;
}

/** The keys of one generation of one namespace: `{namespace}|{generation}|{storyId}[|{id}]`. */
export interface GenerationKeys {
  readonly namespace: string;
  readonly generation: number;
  /** Starts every key of the generation (`{namespace}|{generation}|`). */
  readonly prefix: string;
  story(storyId: StoryId): string;
  /** A decision or subtask: their ids are unique per story only. */
  entity(storyId: StoryId, id: string): string;
  /** Starts the keys of every decision and subtask of a story. */
  entityPrefix(storyId: StoryId): string;
  checkpoint(partition: number): string;
  /** The ReadModelGeneration node that says the generation has data (`{namespace}|{generation}`). */
  readonly marker: string;
}

export function generationKeys(namespace: string, generation: number): GenerationKeys {
  const prefix = `${namespace}|${checkGeneration(generation)}|`;
  return {
    namespace,
    generation,
    prefix,
    story: (storyId) => `${prefix}${storyId}`,
    entity: (storyId, id) => `${prefix}${storyId}|${id}`,
    entityPrefix: (storyId) => `${prefix}${storyId}|`,
    checkpoint: (partition) => `${prefix}${partition}`,
    marker: `${namespace}|${generation}`,
  };
}
