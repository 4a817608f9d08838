import { describe, expect, it } from "vitest";
import { isInvalidQueryError } from "../errors.ts";
import { decodePageToken, encodePageToken } from "./page-token.ts";

describe("page tokens", () => {
  it("round-trip the next version and the position of the event before it", () => {
    const token = { nextVersion: 101, after: { sequence: 123_456, version: 100 } };
    const text = encodePageToken(token);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodePageToken(text)).toEqual(token);
  });

  it.each([
    ["empty", ""],
    ["not base64url", "###"],
    ["padding", `${Buffer.from("1.2.3").toString("base64")}==`],
    ["another format", Buffer.from("2.5.9").toString("base64url")],
    ["text", Buffer.from("hello").toString("base64url")],
    ["version 1 (no page before it)", Buffer.from("1.1.5").toString("base64url")],
    ["sequence 0", Buffer.from("1.5.0").toString("base64url")],
    ["version past uint32", Buffer.from("1.4294967296.5").toString("base64url")],
    ["a sign", Buffer.from("1.-5.5").toString("base64url")],
  ])("refuses a malformed token: %s", (_, text) => {
    let thrown: unknown;
    try {
      decodePageToken(text);
    } catch (e) {
      thrown = e;
    }
    expect(isInvalidQueryError(thrown)).toBe(true);
  });
});
