import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { productVersion } from "./version.ts";

describe("productVersion", () => {
  it("is the root package.json's version, a real one", () => {
    const root = JSON.parse(
      readFileSync(new URL("../../../../package.json", import.meta.url), "utf8"),
    ) as { name: string; version: string };
    expect(root.name).toBe("context-service");
    expect(productVersion()).toBe(root.version);
    expect(productVersion()).toMatch(/^\d+\.\d+\.\d+(-[\w.]+)?$/);
    expect(productVersion()).not.toBe("0.0.0");
  });
});
