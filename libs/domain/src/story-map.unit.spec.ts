import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StoryMap } from "./story-map.ts";

// A StoryMap must read exactly as a Map that had the same keys set in the same order, at every step,
// and a map must never change once made, whatever is made from it later.

/** Everything a reader can see of a map. */
function view(map: ReadonlyMap<string, number>, probes: readonly string[]) {
  const each: [string, number][] = [];
  map.forEach((value, key) => {
    each.push([key, value]);
  });
  return {
    size: map.size,
    entries: [...map.entries()],
    iterated: [...map],
    keys: [...map.keys()],
    values: [...map.values()],
    each,
    got: probes.map((k) => map.get(k)),
    had: probes.map((k) => map.has(k)),
  };
}

describe("StoryMap", () => {
  it("reads as a Map with the same sets, at every step of any history", () => {
    // Few keys make histories that set keys again; many make maps that outgrow the chain.
    const history = fc.integer({ min: 1, max: 120 }).chain((keys) =>
      fc.array(
        fc.record({
          key: fc.nat(keys - 1).map((k) => `k${k}`),
          // Reading folds the chain, which must change nothing visible; rare enough that chains
          // also grow past their limit between reads.
          read: fc.nat(19).map((n) => n === 0),
          keep: fc.nat(9).map((n) => n === 0),
        }),
        { maxLength: 150, size: "max" },
      ),
    );
    fc.assert(
      fc.property(history, (steps) => {
        const probes = ["k0", "k1", "k7", "k50", "absent"];
        let ours = StoryMap.of(new Map<string, number>());
        const theirs = new Map<string, number>();
        const kept: { ours: StoryMap<number>; theirs: ReturnType<typeof view> }[] = [];
        for (const [step, { key, read, keep }] of steps.entries()) {
          ours = ours.with(key, step);
          theirs.set(key, step);
          if (read) expect(view(ours, probes)).toEqual(view(theirs, probes));
          if (keep) kept.push({ ours, theirs: view(theirs, probes) });
        }
        expect(view(ours, probes)).toEqual(view(theirs, probes));
        for (const snapshot of kept) expect(view(snapshot.ours, probes)).toEqual(snapshot.theirs);
      }),
      { numRuns: 100 },
    );
  });

  it("leaves the map it was made from as it was, also past a fold of the chain", () => {
    const base = new Map([["a", 1]]);
    let map = StoryMap.of(base);
    const first = map;
    for (let i = 0; i < 100; i++) map = map.with(`k${i}`, i);
    const branch = first.with("a", 2).with("b", 3);
    expect([...first]).toEqual([["a", 1]]);
    expect([...base]).toEqual([["a", 1]]);
    expect([...branch]).toEqual([
      ["a", 2],
      ["b", 3],
    ]);
    expect(map.size).toBe(101);
    expect([...map.keys()]).toEqual(["a", ...Array.from({ length: 100 }, (_, i) => `k${i}`)]);
  });

  it("keeps a present key in its place when set again", () => {
    const map = StoryMap.of(new Map([["x", 1]]))
      .with("y", 2)
      .with("x", 3)
      .with("z", 4)
      .with("y", 5);
    expect([...map]).toEqual([
      ["x", 3],
      ["y", 5],
      ["z", 4],
    ]);
    expect(map.size).toBe(3);
  });

  it("wraps a plain map without copying it and returns a StoryMap as it is", () => {
    const plain = new Map([["a", 1]]);
    const wrapped = StoryMap.of(plain);
    expect(StoryMap.of(wrapped)).toBe(wrapped);
    expect(wrapped.get("a")).toBe(1);
    expect(Object.prototype.toString.call(wrapped)).toBe("[object StoryMap]");
  });
});
