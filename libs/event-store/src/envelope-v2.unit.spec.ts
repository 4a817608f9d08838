import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type ContextEventData, currentSchemaVersion, eventTypeOf } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { uuidv7 } from "@ctx/ids";
import {
  type ContextEvent,
  ContextEventSchema,
  StoredContextEventFrameSchema,
  StoredContextEventSchema,
} from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { chainFields } from "./chain-audit.ts";
import { decodeStoredEvent, isEnvelopeV2, linkStoredEvent } from "./codec.ts";
import { isCorruptEventError, isEventMismatchError, isUnreadableEventError } from "./errors.ts";
import { encodeWithHash, eventHash, storedEnvelopeBytes, verifyChain } from "./hash-chain.ts";
import { storedEventHash } from "./stored-hash.ts";

const subjectOf = (data: ContextEventData) => `context.events.3.s-2.${eventTypeOf(data)}`;

/** An event as the store builds it before writing it, chained onto `prevHash`. */
function envelope(
  version: number,
  prevHash: Uint8Array,
  data: ContextEventData,
  envelopeVersion: 0 | 2,
  over: Omit<Partial<ContextEvent>, "$typeName" | "$unknown"> = {},
): ContextEvent {
  const commandId = uuidv7();
  return create(ContextEventSchema, {
    eventId: envelopeVersion === 2 ? "" : uuidv7(),
    storyId: "s-2",
    version,
    occurredAt: timestampFromMs(1_765_000_000_000 + version),
    eventType: eventTypeOf(data),
    schemaVersion: currentSchemaVersion[eventTypeOf(data)],
    correlationId: commandId,
    commandId,
    commandName: "ApplyChanges",
    commandFingerprint: new Uint8Array([2, 1, 2, 3, 4, 5, 6, 7, 8]),
    principal: "jwt:ana",
    prevHash,
    envelopeVersion,
    payload: data,
    ...over,
  });
}

const payloads: readonly ContextEventData[] = [
  eventData.contextCreated({ title: "Billing export", description: "" }),
  eventData.subtaskAdded({ subtaskId: "ST-1", title: "Write the plan", dependsOn: [] }),
  eventData.subtaskAdded({ subtaskId: "ST-2", title: "Review it", dependsOn: ["ST-1"] }),
  eventData.decisionAdded({ decisionId: "D-1", title: "Use NATS", alternatives: ["Kafka"] }),
];

/** A story of v1 and v2 envelopes by turns, as a store that was upgraded mid-story writes it. */
function mixedStory() {
  const written: { bytes: Uint8Array; envelope: ContextEvent; subject: string }[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  payloads.forEach((data, i) => {
    const e = envelope(i + 1, prev, data, i % 2 === 0 ? 0 : 2);
    const bytes = encodeWithHash(e);
    written.push({ bytes, envelope: e, subject: subjectOf(data) });
    prev = e.hash;
  });
  return written;
}

describe("envelope version 2", () => {
  it("reads back as the ContextEvent it stands for, its hash over the previous hash and its bytes", () => {
    const prev = new Uint8Array(32).fill(5);
    const data = payloads[1] as ContextEventData;
    const e = envelope(2, prev, data, 2, { causationId: "evt-9" });
    const bytes = encodeWithHash(e);
    expect(isEnvelopeV2(bytes)).toBe(true);
    // Given: what the store wrote, without story, type, previous hash, event or correlation id.
    const stored = StoredContextEventSchema;
    expect(toBinary(stored, create(stored, { envelopeVersion: 2 })).length).toBe(2);
    expect(Buffer.from(bytes).includes(Buffer.from("s-2"))).toBe(false);
    expect(Buffer.from(bytes).includes(Buffer.from(e.eventId))).toBe(false);
    // When it is read after the event it was chained onto:
    const read = decodeStoredEvent(bytes, 11, subjectOf(data), prev);
    // Then every field is back, and its hash is the chain's.
    expect(read.envelope).toEqual(e);
    expect(read.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(eventHash(read.envelope)).toEqual(e.hash);
    expect(storedEventHash(bytes, prev, "s-2")).toEqual(e.hash);
  });

  it("keeps what cannot be made again: a given event id, a correlation id of its own, a command id that is no UUID", () => {
    const data = payloads[0] as ContextEventData;
    const e = envelope(1, new Uint8Array(0), data, 2, {
      eventId: "evt-given",
      correlationId: "",
      commandId: "cmd 7",
    });
    const bytes = encodeWithHash(e);
    const read = decodeStoredEvent(bytes, 1, subjectOf(data), new Uint8Array(0));
    expect(read.envelope).toEqual(e);
    expect(read.eventId).toBe("evt-given");
    expect(read.envelope.correlationId).toBe("");
  });

  it("is checked against the previous event's hash: given at once, or when a reader links it", () => {
    const prev = new Uint8Array(32).fill(1);
    const data = payloads[2] as ContextEventData;
    const e = envelope(3, prev, data, 2);
    const bytes = encodeWithHash(e);
    const other = new Uint8Array(32).fill(2);
    expect(() => decodeStoredEvent(bytes, 5, subjectOf(data), other)).toThrow(
      expect.objectContaining({ name: "CorruptEventError" }),
    );
    // Read alone (a head, a replay): nothing to check it with yet, and no previous hash to show.
    const alone = decodeStoredEvent(bytes, 5, subjectOf(data));
    expect(alone.envelope.prevHash).toEqual(new Uint8Array(0));
    let refused: unknown;
    try {
      linkStoredEvent(alone, other);
    } catch (error) {
      refused = error;
    }
    expect(isCorruptEventError(refused)).toBe(true);
    linkStoredEvent(alone, prev);
    expect(alone.envelope.prevHash).toEqual(prev);
  });

  it("is refused on the subject of another event type, and from a later envelope version", () => {
    const data = payloads[1] as ContextEventData;
    const bytes = encodeWithHash(envelope(1, new Uint8Array(0), data, 2));
    let mismatch: unknown;
    try {
      decodeStoredEvent(bytes, 1, "context.events.3.s-2.DecisionAdded", new Uint8Array(0));
    } catch (error) {
      mismatch = error;
    }
    expect(isCorruptEventError(mismatch) || isEventMismatchError(mismatch)).toBe(true);
    const later = toBinary(
      StoredContextEventFrameSchema,
      create(StoredContextEventFrameSchema, { envelopeVersion: 3, version: 1 }),
    );
    let unreadable: unknown;
    try {
      decodeStoredEvent(later, 1, subjectOf(data));
    } catch (error) {
      unreadable = error;
    }
    expect(isUnreadableEventError(unreadable)).toBe(true);
  });

  it("refuses a version 1 envelope that names an envelope version (it would skip its own hash check)", () => {
    const data = payloads[0] as ContextEventData;
    const e = envelope(1, new Uint8Array(0), data, 0);
    e.hash = eventHash(e);
    const forged = toBinary(ContextEventSchema, { ...e, envelopeVersion: 2 });
    expect(isEnvelopeV2(forged)).toBe(false);
    expect(() => decodeStoredEvent(forged, 1, subjectOf(data))).toThrow(/envelope version 2/);
  });

  it("chains on from version 1 envelopes and back: one story, one chain, as readers and the audit see it", () => {
    const story = mixedStory();
    let prev: Uint8Array = new Uint8Array(0);
    const read = story.map(({ bytes, subject }, i) => {
      const event = decodeStoredEvent(bytes, i + 1, subject, prev);
      prev = event.envelope.hash;
      return event;
    });
    expect(read.map((e) => e.envelope.envelopeVersion)).toEqual([0, 2, 0, 2]);
    expect(verifyChain(read.map((e) => e.envelope))).toEqual({ intact: true, events: 4 });
    // Read alone (a replay: no previous hashes shown), the chain is checked all the same.
    const alone = story.map(({ bytes, subject }, i) => decodeStoredEvent(bytes, i + 1, subject));
    expect(verifyChain(alone.map((e) => e.envelope))).toEqual({ intact: true, events: 4 });
    const [first, second, third, fourth] = alone.map((e) => e.envelope);
    const changed = { ...(fourth as ContextEvent), principal: "jwt:mallory" };
    expect(verifyChain([first, second, third, changed] as ContextEvent[])).toMatchObject({
      intact: false,
      version: 4,
    });
    expect(read.map((e) => e.envelope)).toEqual(story.map((s) => s.envelope));
    // The audit's own reading of the bytes: a v2 envelope names no story and no previous hash.
    const fields = story.map(({ bytes }) => chainFields(bytes));
    expect(fields.map((f) => f?.version)).toEqual([1, 2, 3, 4]);
    expect(fields.map((f) => f?.prevHash === undefined)).toEqual([false, true, false, true]);
  });

  it("is written again byte for byte from what a reader decoded, also without the previous hash (copies, parking)", () => {
    for (const { bytes, subject } of mixedStory()) {
      expect(
        Buffer.from(storedEnvelopeBytes(decodeStoredEvent(bytes, 1, subject).envelope)),
      ).toEqual(Buffer.from(bytes));
    }
    const data = payloads[0] as ContextEventData;
    const named = encodeWithHash(envelope(1, new Uint8Array(0), data, 2, { eventId: "evt-1" }));
    const read = decodeStoredEvent(named, 1, subjectOf(data));
    expect(Buffer.from(storedEnvelopeBytes(read.envelope))).toEqual(Buffer.from(named));
  });

  it("binds each event to its story: the same content in two stories hashes apart, and a moved event does not verify", () => {
    const data = payloads[0] as ContextEventData;
    const at = { eventId: "", commandId: "cmd-1", correlationId: "cmd-1" };
    const a = envelope(1, new Uint8Array(0), data, 2, { ...at, storyId: "s-a" });
    const b = envelope(1, new Uint8Array(0), data, 2, { ...at, storyId: "s-b" });
    const bytesA = encodeWithHash(a);
    const bytesB = encodeWithHash(b);
    // The same bytes but for the hash (field 15, 18 bytes: tag, length 16, hash): no story in them.
    const unhashed = (bytes: Uint8Array, hash: Uint8Array) => {
      expect(hash).toHaveLength(16);
      const at = Buffer.from(bytes).indexOf(Buffer.from([0x7a, 0x10, ...hash]));
      expect(at).toBeGreaterThan(0);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 18)]);
    };
    expect(unhashed(bytesA, a.hash)).toEqual(unhashed(bytesB, b.hash));
    expect(a.hash).not.toEqual(b.hash);
    expect(a.eventId).not.toBe(b.eventId);
    let moved: unknown;
    try {
      decodeStoredEvent(bytesA, 1, `context.events.3.s-b.${eventTypeOf(data)}`, new Uint8Array(0));
    } catch (error) {
      moved = error;
    }
    expect(isCorruptEventError(moved)).toBe(true);
  });
});
