import { describe, expect, it } from "vitest";
import { mergeSubjects } from "./story-merge.ts";

const at = (sequence: number, version: number) => ({ sequence, version });

describe("mergeSubjects", () => {
  it("merges the subjects' events into stream order", () => {
    const created = [at(3, 1)];
    const added = [at(10, 2), at(40, 4)];
    const decided = [at(17, 3), at(99, 5)];

    expect(mergeSubjects([added, created, decided])).toEqual([
      at(3, 1),
      at(10, 2),
      at(17, 3),
      at(40, 4),
      at(99, 5),
    ]);
  });

  it("gives an empty story for no subjects", () => {
    expect(mergeSubjects([])).toEqual([]);
  });

  it("refuses a story with a version missing in between", () => {
    // Version 3 is on a subject that was not listed.
    expect(mergeSubjects([[at(3, 1), at(10, 2)], [at(40, 4)]])).toBeUndefined();
  });

  it("refuses a story that does not start at version 1", () => {
    expect(mergeSubjects([[at(10, 2), at(17, 3)]])).toBeUndefined();
  });

  it("merges the rest of a story from a given version", () => {
    expect(mergeSubjects([[at(17, 3)], [at(10, 2), at(40, 4)]], 2)).toEqual([
      at(10, 2),
      at(17, 3),
      at(40, 4),
    ]);
    // The event of version 2 is missing.
    expect(mergeSubjects([[at(17, 3), at(40, 4)]], 2)).toBeUndefined();
  });
});
