import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { durationOption, integerListOption, integerOption } from "./option-parsers.ts";

// Issue #24: a bad number is a usage error naming what is expected; never NaN passed on.

describe("integerOption", () => {
  const batchSize = integerOption(1);
  const replicas = integerOption(1, 5);

  it("takes whole numbers in range", () => {
    expect(batchSize("64000")).toBe(64_000);
    expect(replicas("1")).toBe(1);
    expect(replicas(" 5 ")).toBe(5);
  });

  it.each([
    "",
    "abc",
    "12abc",
    "1.5",
    "1e3",
    "0x10",
    "NaN",
    "Infinity",
    "0",
    "-3",
    "9007199254740993",
  ])("refuses %j as a usage error", (value) => {
    expect(() => batchSize(value)).toThrow(InvalidArgumentError);
    expect(() => batchSize(value)).toThrow("Expected a whole number of at least 1.");
  });

  it("says the range when there is a maximum", () => {
    expect(() => replicas("6")).toThrow("Expected a whole number from 1 to 5.");
    expect(() => replicas("0")).toThrow(InvalidArgumentError);
  });
});

describe("integerListOption", () => {
  it("collects each occurrence, checking every one", () => {
    const sequence = integerListOption(1);
    expect(sequence("7", sequence("3", undefined))).toEqual([3, 7]);
    expect(() => sequence("x", [3])).toThrow(InvalidArgumentError);
  });
});

describe("durationOption", () => {
  it("reads seconds, minutes, hours and days", () => {
    expect(durationOption("90s")).toBe(90);
    expect(durationOption("30m")).toBe(1_800);
    expect(durationOption("12h")).toBe(43_200);
    expect(durationOption("7d")).toBe(604_800);
  });

  it.each(["", "1", "h", "1w", "1.5h", "-1h", "0s", "1 h x"])("refuses %j", (value) => {
    expect(() => durationOption(value)).toThrow(InvalidArgumentError);
    expect(() => durationOption(value)).toThrow("Expected a duration such as 90s, 30m, 12h or 7d.");
  });
});
