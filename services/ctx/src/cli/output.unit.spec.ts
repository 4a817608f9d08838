import { describe, expect, it } from "vitest";
import { createOutput, failureText, render, table, type View } from "./output.ts";

// Issue #24: one structured result, rendered once as text or as one JSON document; progress bars
// only on a terminal and without NO_COLOR.

interface Count {
  readonly stream: string;
  readonly events: number;
  readonly broken: number;
}

const countView: View<Count> = {
  text: (c) => [`${c.stream}: ${c.events} events`, `${c.broken} broken`],
  exitCode: (c) => (c.broken > 0 ? 1 : 0),
};

function lines(run: (write: (line: string) => void) => unknown): {
  out: string[];
  result: unknown;
} {
  const out: string[] = [];
  const result = run((line) => out.push(line));
  return { out, result };
}

describe("render", () => {
  const result: Count = { stream: "S", events: 3, broken: 0 };

  it("prints the view's lines for a person", () => {
    const { out, result: code } = lines((w) => render(result, countView, { json: false }, w));
    expect(out).toEqual(["S: 3 events", "0 broken"]);
    expect(code).toBe(0);
  });

  it("prints the result as one JSON document with --json", () => {
    const { out } = lines((w) => render(result, countView, { json: true }, w));
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0] ?? "")).toEqual(result);
  });

  it("returns the exit code the result calls for, in both forms", () => {
    const broken = { ...result, broken: 2 };
    expect(lines((w) => render(broken, countView, { json: true }, w)).result).toBe(1);
    expect(lines((w) => render(broken, countView, { json: false }, w)).result).toBe(1);
  });

  it("throws the view's failure after the result is out", () => {
    const out: string[] = [];
    const failing: View<Count> = { ...countView, failure: () => new Error("differs") };
    expect(() => render(result, failing, { json: true }, (l) => out.push(l))).toThrow("differs");
    expect(out).toHaveLength(1);
  });
});

describe("createOutput", () => {
  const quiet = (json: boolean, env: Record<string, string>, tty: boolean) => {
    const out: string[] = [];
    const output = createOutput({ json, env, stderrIsTty: tty, write: (l) => out.push(l) });
    output.note("progress");
    return { bars: output.bars, out };
  };

  it("shows bars on a terminal only", () => {
    expect(quiet(false, {}, true)).toEqual({ bars: true, out: ["progress"] });
    expect(quiet(false, {}, false)).toEqual({ bars: false, out: ["progress"] });
  });

  it("honours NO_COLOR (set and not empty)", () => {
    expect(quiet(false, { NO_COLOR: "1" }, true).bars).toBe(false);
    expect(quiet(false, { NO_COLOR: "" }, true).bars).toBe(true);
  });

  it("with --json: no bars and no progress lines", () => {
    expect(quiet(true, {}, true)).toEqual({ bars: false, out: [] });
  });
});

describe("failureText", () => {
  it("is `ctx: message` for a person and an error document for a script", () => {
    expect(failureText("no such story", false, { exitCode: 1 })).toBe("ctx: no such story");
    expect(
      JSON.parse(failureText("no such story", true, { name: "StoryNotFoundError", exitCode: 1 })),
    ).toEqual({
      error: { message: "no such story", name: "StoryNotFoundError", exitCode: 1 },
    });
  });
});

describe("table", () => {
  it("pads columns to the widest cell, without trailing blanks", () => {
    expect(
      table([
        ["a", "bb"],
        ["ccc", 1],
      ]),
    ).toBe("a    bb\nccc  1");
  });
});
