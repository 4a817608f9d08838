import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ContextEventData, currentSchemaVersion, eventTypeOf } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { encodeWithHash, eventHash, verifyChain } from "./hash-chain.ts";

function envelope(version: number, prevHash: Uint8Array, data: ContextEventData, extra = {}) {
  const eventType = eventTypeOf(data);
  return create(ContextEventSchema, {
    eventId: `0190-${version}`,
    storyId: "story-1",
    version,
    occurredAt: timestampFromDate(new Date(1_700_000_000_123 + version)),
    eventType,
    schemaVersion: currentSchemaVersion[eventType],
    prevHash,
    payload: data,
    ...extra,
  });
}

const payloads: ContextEventData[] = [
  eventData.contextCreated({ title: "A story", description: "with a description" }),
  eventData.subtaskAdded({ subtaskId: "t1", title: "x".repeat(300), dependsOn: ["a", "b"] }),
  eventData.decisionAdded({ decisionId: "d1", title: "Decide", alternatives: ["no", "maybe"] }),
  eventData.contextArchived({}),
];

describe("encodeWithHash", () => {
  it("gives the bytes toBinary gives once the hash is set, and the hash eventHash gives", () => {
    let prevHash: Uint8Array = new Uint8Array(0);
    const chain: ContextEvent[] = [];
    for (const [i, data] of payloads.entries()) {
      const extra =
        i % 2 === 0
          ? { correlationId: "c-1", causationId: "e-9", commandId: "cmd", commandEventIndex: i }
          : {};
      const e = envelope(i + 1, prevHash, data, extra);
      const expectedHash = eventHash(e);
      const bytes = encodeWithHash(e);
      expect(e.hash).toEqual(expectedHash);
      expect(bytes).toEqual(toBinary(ContextEventSchema, e));
      expect(fromBinary(ContextEventSchema, bytes)).toEqual({ ...e, hash: new Uint8Array(e.hash) });
      chain.push(fromBinary(ContextEventSchema, bytes));
      prevHash = new Uint8Array(e.hash);
    }
    expect(verifyChain(chain)).toEqual({ intact: true, events: payloads.length });
  });

  it("gives the same for an envelope the writer leaves to toBinary (unknown fields)", () => {
    const e = envelope(1, new Uint8Array(0), payloads[1] as ContextEventData);
    e.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    const expectedHash = eventHash(e);
    const bytes = encodeWithHash(e);
    expect(e.hash).toEqual(expectedHash);
    expect(bytes).toEqual(toBinary(ContextEventSchema, e));
  });

  it("refuses an envelope that is hashed already", () => {
    const e = envelope(1, new Uint8Array(0), payloads[0] as ContextEventData);
    encodeWithHash(e);
    expect(() => encodeWithHash(e)).toThrow(/hashed already/);
  });
});
