import { storyId } from "@ctx/domain";
import { SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { keyLayout, subtaskStatusName, subtaskStatusNames } from "./key-layout.ts";

describe("keyLayout", () => {
  const keys = keyLayout("ctx");
  const story = storyId("s-1");

  it("puts every key of a generation under {prefix}:g{generation}:", () => {
    const g = keys.generation(7);
    expect([g.story(story), g.subtasks(story, "DONE"), g.byUpdate, g.checkpoint]).toEqual([
      "ctx:g7:story:s-1",
      "ctx:g7:story:s-1:subtasks:DONE",
      "ctx:g7:stories:by-update",
      "ctx:g7:checkpoint",
    ]);
    expect([keys.activeGeneration, keys.generations]).toEqual([
      "ctx:active-generation",
      "ctx:generations",
    ]);
    expect(keys.generationStem + 7).toBe("ctx:g7");
  });

  it("matches one generation's keys only, whatever the prefix holds", () => {
    expect(keys.generation(1).pattern).toBe("ctx:g1:*");
    expect(keyLayout("a*b[c]?").generation(2).pattern).toBe("a\\*b\\[c\\]\\?:g2:*");
  });

  it("refuses generations that are not non-negative integers, and an empty prefix", () => {
    for (const g of [-1, 1.5, Number.NaN, 2 ** 53]) {
      expect(() => keys.generation(g)).toThrow(RangeError);
    }
    expect(() => keyLayout("")).toThrow(RangeError);
  });

  it("names status sets after the proto enum", () => {
    expect(subtaskStatusNames).toEqual(["UNSPECIFIED", "TODO", "IN_PROGRESS", "BLOCKED", "DONE"]);
    expect(subtaskStatusName(SubtaskStatus.IN_PROGRESS)).toBe("IN_PROGRESS");
    expect(subtaskStatusName(99 as SubtaskStatus)).toBeUndefined();
  });
});
