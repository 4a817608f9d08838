import { RE2JS } from "@bufbuild/re2";
import { describe, expect, it } from "vitest";
import { createRegexMatcher, runsOnPlatformRegExp } from "./regex-match.ts";

const inputs = [
  "",
  "a",
  "story-1",
  "Story_1",
  "-leading",
  "_x",
  "a.b:c-d",
  "with space",
  "tab\t",
  "line\n",
  "trail\r",
  "ü",
  "日本",
  "🙂",
  "a🙂",
  "x".repeat(64),
  "x".repeat(65),
  "abc\n",
];

const patterns = [
  "^[A-Za-z0-9][A-Za-z0-9_-]*$",
  "^[A-Za-z0-9._:-]+$",
  "^[a-z]{1,3}$",
  "^[^a-z]{2}$",
  "^[^x]+$",
  "abc",
  "^a?b*$",
  "[0-9]{2,}",
  // Not simple: RE2 matches these.
  "^(a|b)+$",
  "^.+$",
  "^\\w+$",
  "^[\\p{L}]+$",
];

describe("createRegexMatcher", () => {
  it("agrees with RE2 on every pattern and input", () => {
    const match = createRegexMatcher();
    for (const pattern of patterns) {
      const re2 = RE2JS.compile(pattern);
      for (const input of inputs) {
        expect(match(pattern, input), `${pattern} on ${JSON.stringify(input)}`).toBe(
          re2.test(input),
        );
      }
    }
  });

  it("refuses what RE2 refuses, such as lookahead and backreferences", () => {
    const match = createRegexMatcher();
    expect(() => match("^(?=a)a$", "a")).toThrow();
    expect(() => match("^(a)\\1$", "aa")).toThrow();
  });
});

describe("runsOnPlatformRegExp", () => {
  it("takes the id patterns of our protos and leaves the rest to RE2", () => {
    expect(patterns.slice(0, 8).map(runsOnPlatformRegExp)).toEqual(Array(8).fill(true));
    expect(patterns.slice(8).map(runsOnPlatformRegExp)).toEqual(Array(4).fill(false));
    expect(runsOnPlatformRegExp("^a*?$")).toBe(false);
    expect(runsOnPlatformRegExp("a^b")).toBe(false);
  });
});
