import { describe, expect, it } from "vitest";
import { streamVersion } from "./index.ts";

describe("streamVersion", () => {
  it.each([0, 1, 10_000, Number.MAX_SAFE_INTEGER])("accepts %d", (n) => {
    expect(streamVersion(n)).toBe(n);
  });

  it("accepts a uint64 from a proto envelope as a bigint", () => {
    expect(streamVersion(42n)).toBe(42);
  });

  it.each([
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.MAX_SAFE_INTEGER + 1,
    -1n,
    2n ** 64n - 1n,
  ])("refuses %s", (n) => {
    expect(() => streamVersion(n)).toThrow(RangeError);
  });
});
