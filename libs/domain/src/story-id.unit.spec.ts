import { describe, expect, it } from "vitest";
import { storyId } from "./index.ts";

describe("storyId", () => {
  it.each(["s-1", "S", "story_42", "a".repeat(64), "0abc"])("accepts %s", (id) => {
    expect(storyId(id)).toBe(id);
  });

  it.each(["", "a.b", "a*", "a>", "a b", "-a", "_a", "a".repeat(65), "é"])(
    "refuses %j, which is no single NATS subject token of the allowed form",
    (id) => {
      expect(() => storyId(id)).toThrow(RangeError);
      expect(() => storyId(id)).toThrow(/^invalid story id/);
    },
  );
});
