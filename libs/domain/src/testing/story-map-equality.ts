import { expect } from "vitest";
import { StoryMap } from "../story-map.ts";

type Tester = Parameters<typeof expect.addEqualityTesters>[0][number];

/**
 * Makes `toEqual` and the other deep comparisons see a StoryMap as the map it reads as: equal to a
 * `Map` (or another StoryMap) with the same entries. Vitest compares maps by their constructor
 * first, so a state built by `evolve` would otherwise differ from the same state built by `fold` or
 * decoded from a snapshot. Registered for every suite by the root vitest config.
 */
export const storyMapEquality: Tester = function (this, a, b, testers) {
  if (!(a instanceof StoryMap) && !(b instanceof StoryMap)) return undefined;
  if (!isMap(a) || !isMap(b)) return undefined;
  return this.equals(new Map(a), new Map(b), testers);
};

function isMap(value: unknown): value is ReadonlyMap<unknown, unknown> {
  return value instanceof Map || value instanceof StoryMap;
}

expect.addEqualityTesters([storyMapEquality]);
