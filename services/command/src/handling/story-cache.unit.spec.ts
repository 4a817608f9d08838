import { initialState, type StoryId, storyId, streamVersion } from "@ctx/domain";
import { describe, expect, it } from "vitest";
import { type LoadedStory, StoryCache } from "./story-cache.ts";

/** A story of `events` events (its weight in the cache). */
function story(id: string, events: number): [StoryId, LoadedStory] {
  const sid = storyId(id);
  return [
    sid,
    {
      state: { ...initialState(sid), version: streamVersion(events) },
      measure: { bytes: 0, dependencies: 0 },
      sequence: events,
      hash: new Uint8Array(0),
      commands: new Map(),
      snapshot: { version: 0, pages: 0, pagesDigest: new Uint8Array(0) },
    },
  ];
}

function held(cache: StoryCache, ...ids: string[]): string[] {
  return ids.filter((id) => cache.get(storyId(id)) !== undefined);
}

describe("the story cache", () => {
  it("holds at most its number of stories, dropping the one written longest ago", () => {
    // Given a cache for two stories holding a and b, where a was written again after b
    const cache = new StoryCache({ stories: 2, events: 1_000 });
    cache.set(...story("a", 1));
    cache.set(...story("b", 1));
    cache.set(...story("a", 2));

    // When a third story is stored
    cache.set(...story("c", 1));

    // Then b, written longest ago, has left; a and c are held
    expect(held(cache, "a", "b", "c")).toEqual(["a", "c"]);
    expect(cache.size).toBe(2);
    expect(cache.events).toBe(3);
  });

  it("holds at most its number of events, summed over its stories", () => {
    // Given a cache for ten stories but 100 events, holding stories of 40 and 50 events
    const cache = new StoryCache({ stories: 10, events: 100 });
    cache.set(...story("a", 40));
    cache.set(...story("b", 50));

    // When a story of 30 events is stored
    cache.set(...story("c", 30));

    // Then the oldest stories leave until the sum fits: a goes, b and c stay (80 events)
    expect(held(cache, "a", "b", "c")).toEqual(["b", "c"]);
    expect(cache.events).toBe(80);
  });

  it("counts a story once, at its latest weight, when it is written again", () => {
    const cache = new StoryCache({ stories: 10, events: 100 });
    cache.set(...story("a", 60));

    // When the story grows from 60 to 90 events
    cache.set(...story("a", 90));

    // Then it weighs 90, not 150, and stays
    expect(cache.events).toBe(90);
    expect(held(cache, "a")).toEqual(["a"]);
  });

  it("does not keep a story that alone weighs more than the events limit", () => {
    const cache = new StoryCache({ stories: 10, events: 100 });
    cache.set(...story("small", 10));

    // When a story of 101 events is stored
    cache.set(...story("big", 101));

    // Then it is not held, and nothing else had to leave for it
    expect(held(cache, "small", "big")).toEqual(["small"]);
    expect(cache.events).toBe(10);
  });

  it("forgets a story's weight when the story is deleted", () => {
    const cache = new StoryCache({ stories: 10, events: 100 });
    cache.set(...story("a", 70));
    cache.delete(storyId("a"));
    cache.delete(storyId("a"));

    cache.set(...story("b", 100));

    expect(held(cache, "a", "b")).toEqual(["b"]);
    expect(cache.events).toBe(100);
  });

  it("holds nothing when a limit is 0", () => {
    for (const limits of [
      { stories: 0, events: 100 },
      { stories: 10, events: 0 },
    ]) {
      const cache = new StoryCache(limits);
      cache.set(...story("a", 1));
      cache.set(...story("empty", 0));
      expect(cache.size).toBe(0);
    }
  });

  it("refuses limits that are not whole numbers ≥ 0", () => {
    expect(() => new StoryCache({ stories: -1, events: 100 })).toThrow(RangeError);
    expect(() => new StoryCache({ stories: 10, events: 1.5 })).toThrow(/events/);
  });
});
