import { parse, stringify, validate, version } from "uuid";
import { describe, expect, it } from "vitest";
import { uuidv7 } from "./uuid-v7.ts";

describe("uuidv7", () => {
  it("makes valid, distinct, strictly increasing version 7 ids, across pool refills", () => {
    const ids = Array.from({ length: 2000 }, () => uuidv7());
    for (const id of ids) {
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(7);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it("writes the bytes uuid lays out, as uuid writes them", () => {
    for (let i = 0; i < 100; i++) {
      const id = uuidv7();
      expect(stringify(parse(id))).toBe(id);
    }
  });

  it("starts with the current time in milliseconds", () => {
    const before = Date.now();
    const id = uuidv7();
    const msecs = Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16);
    expect(msecs).toBeGreaterThanOrEqual(before);
    expect(msecs).toBeLessThanOrEqual(Date.now() + 1);
  });
});
