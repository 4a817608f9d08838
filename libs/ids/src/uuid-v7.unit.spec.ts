import { parse, stringify, validate, version } from "uuid";
import { describe, expect, it } from "vitest";
import { uuidBytes, uuidText, uuidv7, uuidv7Of } from "./uuid-v7.ts";

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

describe("uuidBytes and uuidText", () => {
  it("make the round trip for canonical ids and refuse every other text", () => {
    const id = uuidv7();
    expect(uuidText(uuidBytes(id) as Uint8Array)).toBe(id);
    expect(uuidBytes(id.toUpperCase())).toBeUndefined();
    expect(uuidBytes(id.replaceAll("-", ""))).toBeUndefined();
    expect(uuidBytes(`${id.slice(0, 35)}g`)).toBeUndefined();
    expect(uuidBytes(`${id.slice(0, 8)}_${id.slice(9)}`)).toBeUndefined();
    expect(uuidBytes("cmd-1")).toBeUndefined();
  });
});

describe("uuidv7Of", () => {
  it("makes the same valid version 7 id of the same time and digest, another of another digest", () => {
    const digest = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    const id = uuidv7Of(1_765_000_000_123, digest);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuidv7Of(1_765_000_000_123, digest)).toBe(id);
    expect(parseInt(id.replaceAll("-", "").slice(0, 12), 16)).toBe(1_765_000_000_123);
    const other = digest.slice();
    other[9] = 1;
    expect(uuidv7Of(1_765_000_000_123, other)).not.toBe(id);
    expect(() => uuidv7Of(-1, digest)).toThrow(RangeError);
  });
});
