import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  createUpcasterRegistry,
  drop,
  rename,
  split,
  transform,
  UpcastError,
  type Upcaster,
  UpcasterChainError,
} from "./index.ts";

interface NoteV1 {
  text: string;
}
interface NoteV2 {
  text: string;
  author: string;
}
interface NoteV3 {
  lines: string[];
  author: string;
}

const noteSteps = [
  transform<NoteV1, NoteV2>("Note", 1, (n) => ({ text: n.text, author: "unknown" })),
  transform<NoteV2, NoteV3>("Note", 2, (n) => ({ lines: n.text.split("\n"), author: n.author })),
];

function chainError(fn: () => unknown): UpcasterChainError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UpcasterChainError) return e;
    throw e;
  }
  throw new Error("expected an UpcasterChainError");
}

describe("upcasting an event", () => {
  it("given a current event, when upcast, then it is returned as it is", () => {
    const registry = createUpcasterRegistry({ current: { Note: 3 }, upcasters: noteSteps });
    const event = { type: "Note", version: 3, payload: { lines: ["a"], author: "x" } };
    expect(registry.upcast(event)).toEqual([event]);
    expect(registry.upcast(event)[0]).toBe(event);
  });

  it("given a v1 event and steps to v3, when upcast, then every step applies in order", () => {
    const registry = createUpcasterRegistry({ current: { Note: 3 }, upcasters: noteSteps });
    expect(registry.upcast({ type: "Note", version: 1, payload: { text: "a\nb" } })).toEqual([
      { type: "Note", version: 3, payload: { lines: ["a", "b"], author: "unknown" } },
    ]);
    expect(registry.steps({ type: "Note", version: 1 }).map((s) => s.from.version)).toEqual([1, 2]);
  });

  it("given a renamed type, when an event of the old name is upcast, then it carries the new name", () => {
    const registry = createUpcasterRegistry({
      current: { Comment: 1 },
      upcasters: [
        rename<NoteV1, { body: string }>(
          { type: "Note", version: 1 },
          { type: "Comment", version: 1 },
          (n) => ({ body: n.text }),
        ),
      ],
    });
    expect(registry.upcast({ type: "Note", version: 1, payload: { text: "hi" } })).toEqual([
      { type: "Comment", version: 1, payload: { body: "hi" } },
    ]);
  });

  it("given a split, when upcast, then each part is brought to its current shape, in order", () => {
    const registry = createUpcasterRegistry({
      current: { Note: 3, Tag: 1 },
      upcasters: [
        ...noteSteps,
        split<{ text: string; tags: string[] }>(
          { type: "TaggedNote", version: 1 },
          [
            { type: "Note", version: 2 },
            { type: "Tag", version: 1 },
          ],
          (n) => [
            { type: "Note", version: 2, payload: { text: n.text, author: "a" } },
            ...n.tags.map((tag) => ({ type: "Tag", version: 1, payload: { tag } })),
          ],
        ),
      ],
    });
    expect(
      registry.upcast({ type: "TaggedNote", version: 1, payload: { text: "t", tags: ["x", "y"] } }),
    ).toEqual([
      { type: "Note", version: 3, payload: { lines: ["t"], author: "a" } },
      { type: "Tag", version: 1, payload: { tag: "x" } },
      { type: "Tag", version: 1, payload: { tag: "y" } },
    ]);
  });

  it("given an explicit drop, when upcast, then nothing is left", () => {
    const registry = createUpcasterRegistry({
      current: { Note: 3 },
      upcasters: [...noteSteps, drop({ type: "Ping", version: 1 }, "carried no information")],
    });
    expect(registry.upcast({ type: "Ping", version: 1, payload: {} })).toEqual([]);
  });

  it("given an event newer than the current schema, when upcast, then an UpcastError says so", () => {
    const registry = createUpcasterRegistry({ current: { Note: 3 }, upcasters: noteSteps });
    expect(() => registry.upcast({ type: "Note", version: 4, payload: {} })).toThrow(
      /cannot upcast Note v4: newer than the current v3/,
    );
    expect(() => registry.upcast({ type: "Other", version: 1, payload: {} })).toThrow(UpcastError);
  });

  it("given a step that throws, when upcast, then an UpcastError names the event and the cause", () => {
    const registry = createUpcasterRegistry({
      current: { Note: 2 },
      upcasters: [
        transform<NoteV1, NoteV2>("Note", 1, () => {
          throw new Error("bad text");
        }),
      ],
    });
    let e: UpcastError | undefined;
    try {
      registry.upcast({ type: "Note", version: 1, payload: { text: "" } });
    } catch (err) {
      e = err as UpcastError;
    }
    expect(e).toBeInstanceOf(UpcastError);
    expect(e?.message).toMatch(/cannot upcast Note v1: transform failed: bad text/);
    expect(e?.event).toEqual({ type: "Note", version: 1 });
  });

  it("given a step that yields a shape it did not declare, when upcast, then it is an UpcastError", () => {
    const liar: Upcaster = {
      from: { type: "Note", version: 1 },
      to: [{ type: "Note", version: 2 }],
      description: "liar",
      upcast: () => [{ type: "Note", version: 1, payload: {} }],
    };
    const registry = createUpcasterRegistry({ current: { Note: 2 }, upcasters: [liar] });
    expect(() => registry.upcast({ type: "Note", version: 1, payload: {} })).toThrow(
      /liar yielded Note v1, which it does not declare/,
    );
  });
});

describe("validating the chains at start-up", () => {
  it("given a missing step, when the registry is built, then the error names it", () => {
    const e = chainError(() =>
      createUpcasterRegistry({ current: { Note: 3 }, upcasters: [noteSteps[0] as Upcaster] }),
    );
    expect(e.problems).toEqual([
      "missing step: no upcaster from Note v2 (Note is written as v3; stored v2 events could not be read)",
    ]);
  });

  it("given a step to a shape with no way on, when the registry is built, then the error names that shape", () => {
    const e = chainError(() =>
      createUpcasterRegistry({
        current: { Comment: 1 },
        upcasters: [rename({ type: "Note", version: 1 }, { type: "Remark", version: 1 })],
      }),
    );
    expect(e.message).toContain(
      "missing step: Remark v1, yielded by the upcaster from Note v1, has no upcaster and is not current",
    );
  });

  it("given a cycle, when the registry is built, then the error shows it", () => {
    const e = chainError(() =>
      createUpcasterRegistry({
        current: { Note: 1 },
        upcasters: [
          rename({ type: "A", version: 1 }, { type: "B", version: 1 }),
          rename({ type: "B", version: 1 }, { type: "A", version: 1 }),
        ],
      }),
    );
    expect(e.problems).toContain("cycle: A v1 → B v1 → A v1");
  });

  it("given two steps from one shape, or a step from a current version, then both are refused", () => {
    const e = chainError(() =>
      createUpcasterRegistry({
        current: { Note: 2 },
        upcasters: [
          transform("Note", 1, (x) => x),
          transform("Note", 1, (x) => x, "again"),
          transform("Note", 2, (x) => x),
        ],
      }),
    );
    expect(e.problems).toEqual([
      "two upcasters read Note v1 (transform; again)",
      "upcaster from Note v2: Note is current at v2; current events are never upcast",
      "upcaster from Note v2: yields Note v3, beyond the current v2",
    ]);
  });

  it("given a type introduced at v2, when its first version is declared, then v1 needs no step", () => {
    expect(() =>
      createUpcasterRegistry({ current: { Note: 2 }, upcasters: [], firstVersion: { Note: 2 } }),
    ).not.toThrow();
  });

  it("given stored shapes, when checked, then the ones no chain reads are named", () => {
    const registry = createUpcasterRegistry({ current: { Note: 3 }, upcasters: noteSteps });
    expect(() =>
      registry.checkStored([
        { type: "Note", version: 1 },
        { type: "Note", version: 3 },
      ]),
    ).not.toThrow();
    expect(() => registry.checkStored([{ type: "Note", version: 7 }])).toThrow(
      /stored Note v7 has no upcaster and is not current/,
    );
  });
});

describe("chain composition (properties)", () => {
  // A chain of n transforms, each adding its own mark: upcasting from v equals applying the steps
  // v, v+1, …, n one after another, and the result is always current.
  const chainOf = (n: number, marks: readonly number[]) =>
    marks
      .slice(0, n - 1)
      .map((mark, i) => transform<number[], number[]>("E", i + 1, (p) => [...p, mark]));

  it("upcasting from any version equals applying each later step in turn", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 12 })
          .chain((n) =>
            fc.tuple(
              fc.constant(n),
              fc.array(fc.integer(), { minLength: n, maxLength: n }),
              fc.integer({ min: 1, max: n }),
            ),
          ),
        ([n, marks, from]) => {
          const registry = createUpcasterRegistry({
            current: { E: n },
            upcasters: chainOf(n, marks),
          });
          const [out, ...rest] = registry.upcast<number[]>({
            type: "E",
            version: from,
            payload: [],
          });
          expect(rest).toEqual([]);
          expect(out?.version).toBe(n);
          expect(out?.payload).toEqual(marks.slice(from - 1, n - 1));
          expect(registry.isCurrent(out as { type: string; version: number })).toBe(true);
        },
      ),
    );
  });

  it("upcasting is deterministic and composes: upcast(upcast(e)) = upcast(e)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 }), (n, from) => {
        const v = Math.min(from, n);
        const registry = createUpcasterRegistry({
          current: { E: n },
          upcasters: chainOf(
            n,
            Array.from({ length: n }, (_, i) => i),
          ),
        });
        const once = registry.upcast({ type: "E", version: v, payload: [] });
        expect(registry.upcast({ type: "E", version: v, payload: [] })).toEqual(once);
        expect(once.flatMap((e) => registry.upcast(e))).toEqual(once);
      }),
    );
  });

  it("removing any one step of a chain is reported as exactly that missing step", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 10 })
          .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n - 1 }))),
        ([n, missing]) => {
          const steps = chainOf(
            n,
            Array.from({ length: n }, () => 0),
          ).filter((s) => s.from.version !== missing);
          const e = chainError(() =>
            createUpcasterRegistry({ current: { E: n }, upcasters: steps }),
          );
          expect(e.problems).toEqual([
            `missing step: no upcaster from E v${missing} (E is written as v${n}; stored v${missing} events could not be read)`,
          ]);
        },
      ),
    );
  });

  it("any ring of renames is reported as a cycle", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), (size) => {
        const names = Array.from({ length: size }, (_, i) => `T${i}`);
        const ring = names.map((t, i) =>
          rename({ type: t, version: 1 }, { type: names[(i + 1) % size] as string, version: 1 }),
        );
        const e = chainError(() => createUpcasterRegistry({ current: { X: 1 }, upcasters: ring }));
        expect(e.problems.filter((p) => p.startsWith("cycle: "))).toHaveLength(1);
      }),
    );
  });
});
