import { create, toBinary } from "@bufbuild/protobuf";
import { ContextEventSchema, StoredContextEventSchema } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { eventClaim } from "./event-claim.ts";

describe("eventClaim", () => {
  it("reads the story and version of an envelope without its payload", () => {
    const envelope = create(ContextEventSchema, {
      eventId: "e-1",
      storyId: "s-1",
      version: 7,
      eventType: "ContextCreated",
      hash: new Uint8Array(32),
      payload: { case: "contextCreated", value: { title: "t" } },
    });
    expect(eventClaim(toBinary(ContextEventSchema, envelope))).toEqual({
      storyId: "s-1",
      version: 7,
    });
  });

  it("claims nothing for bytes that are no envelope, or one without a story or version", () => {
    expect(eventClaim(new Uint8Array([0xff, 0xff, 0xff]))).toBeUndefined();
    expect(eventClaim(new TextEncoder().encode("not protobuf at all"))).toBeUndefined();
    expect(eventClaim(new Uint8Array())).toBeUndefined();
    const noVersion = create(ContextEventSchema, { storyId: "s-1" });
    expect(eventClaim(toBinary(ContextEventSchema, noVersion))).toBeUndefined();
  });

  it("reads a version 2 envelope's version, and its story from its subject (the envelope names none)", () => {
    const stored = create(StoredContextEventSchema, {
      envelopeVersion: 2,
      version: 9,
      hash: new Uint8Array(32),
      payload: { case: "contextCreated", value: { title: "t" } },
    });
    const bytes = toBinary(StoredContextEventSchema, stored);
    expect(eventClaim(bytes, "context.events.s-2.ContextCreated")).toEqual({
      storyId: "s-2",
      version: 9,
    });
    expect(eventClaim(bytes, "context.events.4.s-2.ContextCreated")?.storyId).toBe("s-2");
    expect(eventClaim(bytes)).toBeUndefined();
  });
});
