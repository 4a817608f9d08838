import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ContextEventType } from "@ctx/domain";
import {
  ContextEventFrameSchema,
  ContextEventSchema,
  DecisionAddedSchema,
  legacyV1,
  SubtaskStatus,
  SubtaskUpdatedSchema,
} from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { contextEventUpcaster } from "./codec.ts";
import {
  CorruptEventError,
  decodeEvent,
  decodeStoredEvent,
  EventMismatchError,
  eventHash,
} from "./index.ts";
import { envelopeAsWritten, hashedAgain, type WrittenEvent } from "./testing/index.ts";

/** Where the test messages were stored: story s-1 (a copy without its subject). */
const inStory = { storyId: "s-1" };

const at = new Date("2026-03-04T05:06:07.000Z");

function written(event: Omit<WrittenEvent, "occurredAt">): Uint8Array {
  const envelope = envelopeAsWritten("s-1", 3, new Uint8Array(32).fill(7), {
    ...event,
    occurredAt: at,
  });
  envelope.correlationId = "corr-1";
  envelope.commandId = "cmd-1";
  envelope.hash = eventHash(envelope);
  return toBinary(ContextEventSchema, envelope);
}

const current = written({
  eventType: ContextEventType.SubtaskUpdated,
  schemaVersion: 2,
  payloadSchema: SubtaskUpdatedSchema,
  payload: create(SubtaskUpdatedSchema, {
    subtaskId: "t-1",
    status: SubtaskStatus.BLOCKED,
    assignee: "ana",
  }),
});

const legacy = written({
  eventType: ContextEventType.DecisionAdded,
  schemaVersion: 1,
  payloadSchema: legacyV1.DecisionAddedSchema,
  payload: create(legacyV1.DecisionAddedSchema, {
    decisionId: "d-1",
    title: "Use NATS",
    alternative: "Kafka",
  }),
});

/** The bytes with one more top-level field (number 15, a varint), as a newer writer might add. */
// Field 17 (a varint: tag 17 << 3 = 136, two bytes), which no release has defined yet.
const withUnknownField = (bytes: Uint8Array) =>
  hashedAgain(new Uint8Array([...bytes, 0x88, 0x01, 42]));

describe("ContextEventFrame", () => {
  it("has every field of ContextEvent under the same number, with the payloads left as bytes", () => {
    const frame = ContextEventFrameSchema.fields.map((f) => [f.number, f.name, f.oneof?.name]);
    const envelope = ContextEventSchema.fields.map((f) => [f.number, f.name, f.oneof?.name]);
    expect(frame).toEqual(envelope);
    for (const f of ContextEventSchema.fields) {
      const twin = ContextEventFrameSchema.fields.find((g) => g.number === f.number);
      if (f.oneof?.name === "payload") {
        expect(twin?.fieldKind === "scalar" && twin.scalar).toBe(12); // ScalarType.BYTES
      } else {
        expect([twin?.fieldKind, twin?.message?.typeName, twin?.scalar]).toEqual([
          f.fieldKind,
          f.message?.typeName,
          f.scalar,
        ]);
      }
    }
  });
});

describe("decoding a stored event", () => {
  it("given current bytes, then the envelope is what decoding them as a ContextEvent gives", () => {
    const [event] = decodeEvent(current, 9, inStory);
    expect(event?.envelope).toEqual(fromBinary(ContextEventSchema, current));
    expect(event?.data).toEqual(fromBinary(ContextEventSchema, current).payload);
    expect(toBinary(ContextEventSchema, event?.envelope ?? create(ContextEventSchema))).toEqual(
      current,
    );
    expect(decodeStoredEvent(current, 9, inStory).envelope).toEqual(event?.envelope);
  });

  it("given a top-level field this release does not know, then the envelope keeps it and still verifies", () => {
    const bytes = withUnknownField(current);
    const [event] = decodeEvent(bytes, 9, inStory);
    expect(event && toBinary(ContextEventSchema, event.envelope)).toEqual(bytes);
  });

  it("given legacy bytes, then the payload is decoded with its own message and the envelope on demand", () => {
    const stored = decodeStoredEvent(legacy, 9, inStory);
    expect(stored.payload).toEqual(
      create(legacyV1.DecisionAddedSchema, {
        decisionId: "d-1",
        title: "Use NATS",
        alternative: "Kafka",
      }),
    );
    expect(stored.envelope).toEqual(fromBinary(ContextEventSchema, legacy));
    expect(stored.envelope).toBe(stored.envelope);
    expect(toBinary(ContextEventSchema, stored.envelope)).toEqual(legacy);
    expect(Buffer.from(eventHash(stored.envelope))).toEqual(Buffer.from(stored.envelope.hash));
  });

  it("given legacy bytes, then the upcast event carries the stored envelope and the current payload", () => {
    const stored = decodeStoredEvent(legacy, 9, inStory);
    const [event, ...more] = contextEventUpcaster.upcast(stored);
    expect(more).toEqual([]);
    expect(event?.envelope).toBe(stored.envelope);
    expect(event).toMatchObject({
      sequence: 9,
      version: 3,
      schemaVersion: 2,
      eventId: stored.eventId,
    });
    expect(event?.data).toEqual({
      case: "decisionAdded",
      value: create(DecisionAddedSchema, {
        decisionId: "d-1",
        title: "Use NATS",
        alternatives: ["Kafka"],
      }),
    });
    expect(event && "part" in event).toBe(false);
  });

  it("given payload bytes that are no message, then it is a CorruptEventError naming the payload", () => {
    // DecisionAdded (field 21), length 2, then a field-1 string that claims 5 bytes.
    const frame = create(ContextEventFrameSchema, {
      ...fromBinary(ContextEventFrameSchema, legacy),
      payload: { case: "decisionAdded", value: new Uint8Array([0x0a, 0x05]) },
    });
    const bytes = hashedAgain(toBinary(ContextEventFrameSchema, frame));
    expect(() => decodeEvent(bytes, 9, inStory)).toThrow(CorruptEventError);
    expect(() => decodeEvent(bytes, 9, inStory)).toThrow(
      /context\.legacy\.v1\.DecisionAdded payload/,
    );
    const asCurrent = hashedAgain(
      toBinary(
        ContextEventFrameSchema,
        create(ContextEventFrameSchema, { ...frame, schemaVersion: 2 }),
      ),
    );
    expect(() => decodeEvent(asCurrent, 9, inStory)).toThrow(/context\.v1\.DecisionAdded payload/);
  });
});

describe("checking a message against where it was stored", () => {
  const subject = (story: string, type: string, partition = "3") =>
    `context.events.${partition}.${story}.${type}`;

  it("given its own subject (stored or as published), then it decodes", () => {
    expect(decodeEvent(current, 9, subject("s-1", "SubtaskUpdated"))).toHaveLength(1);
    expect(decodeEvent(current, 9, "context.events.s-1.SubtaskUpdated")).toHaveLength(1);
    expect(decodeStoredEvent(legacy, 9, subject("s-1", "DecisionAdded")).version).toBe(3);
  });

  it("given another story's subject, then it is an EventMismatchError naming the sequence, both stories and no RangeError", () => {
    for (const origin of [subject("s-2", "SubtaskUpdated"), { storyId: "s-2" }]) {
      let error: unknown;
      try {
        decodeEvent(current, 9, origin);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(EventMismatchError);
      expect(error).toMatchObject({ sequence: 9, storyId: "s-2" });
      expect((error as Error).message).toMatch(
        /stream message 9 of story s-2 does not belong where it is stored: its envelope names story "s-1"/,
      );
    }
    expect(() => decodeStoredEvent(legacy, 9, subject("s-2", "DecisionAdded"))).toThrow(
      EventMismatchError,
    );
  });

  it("given another event type's subject, then it is an EventMismatchError (the type as stored, before any upcast)", () => {
    expect(() => decodeEvent(current, 9, subject("s-1", "SubtaskAdded"))).toThrow(
      /envelope names event type "SubtaskUpdated", its subject SubtaskAdded/,
    );
    // A legacy event keeps its stored type on its subject.
    expect(() => decodeEvent(legacy, 9, subject("s-1", "DecisionAdded"))).not.toThrow();
  });

  it("given a payload in another type's field, then it is a CorruptEventError", () => {
    const frame = fromBinary(ContextEventFrameSchema, current);
    const bytes = toBinary(
      ContextEventFrameSchema,
      create(ContextEventFrameSchema, {
        ...frame,
        payload: { case: "subtaskAdded", value: new Uint8Array(0) },
      }),
    );
    expect(() => decodeEvent(bytes, 9, inStory)).toThrow(CorruptEventError);
    expect(() => decodeEvent(bytes, 9, inStory)).toThrow(/SubtaskUpdated with a subtaskAdded/);
  });

  it("given an invalid story id on its own subject, then it is a CorruptEventError, not a RangeError", () => {
    const bad = "-no story-";
    const bytes = toBinary(
      ContextEventSchema,
      create(ContextEventSchema, { ...fromBinary(ContextEventSchema, current), storyId: bad }),
    );
    for (const read of [
      () => decodeEvent(bytes, 9, subject(bad, "SubtaskUpdated")),
      () => decodeStoredEvent(bytes, 9, subject(bad, "SubtaskUpdated")),
    ]) {
      expect(read).toThrow(CorruptEventError);
      expect(read).toThrow(/invalid story id "-no story-"/);
    }
  });

  describe("given an envelope whose content does not hash to its stored hash", () => {
    const tampered = {
      "a changed payload": (() => {
        const envelope = fromBinary(ContextEventSchema, current);
        envelope.payload = {
          case: "subtaskUpdated",
          value: create(SubtaskUpdatedSchema, { subtaskId: "t-1", assignee: "mallory" }),
        };
        return toBinary(ContextEventSchema, envelope);
      })(),
      "an all-zero hash": toBinary(ContextEventSchema, {
        ...fromBinary(ContextEventSchema, current),
        hash: new Uint8Array(32),
      }),
      "no hash at all": toBinary(ContextEventSchema, {
        ...fromBinary(ContextEventSchema, current),
        hash: new Uint8Array(0),
      }),
      "another prev_hash, the hash kept": toBinary(ContextEventSchema, {
        ...fromBinary(ContextEventSchema, current),
        prevHash: new Uint8Array(32).fill(8),
      }),
      "the hash field twice": new Uint8Array([
        ...current,
        0x62,
        32,
        ...fromBinary(ContextEventSchema, current).hash,
      ]),
    };
    for (const [what, bytes] of Object.entries(tampered)) {
      it(`(${what}), then no reader reads it: a CorruptEventError that says so`, () => {
        for (const read of [
          () => decodeEvent(bytes, 9, subject("s-1", "SubtaskUpdated")),
          () => decodeStoredEvent(bytes, 9, inStory),
        ]) {
          expect(read).toThrow(CorruptEventError);
          expect(read).toThrow(/does not hash to its stored hash/);
        }
      });
    }

    it("(an envelope larger than the checker's scratch buffer, and one right at its edge), then each is read", () => {
      for (const length of [70_000, 65_536 - 180, 65_536 - 100, 65_536]) {
        const envelope = fromBinary(ContextEventSchema, current);
        envelope.payload = {
          case: "subtaskUpdated",
          value: create(SubtaskUpdatedSchema, { subtaskId: "t-1", assignee: "x".repeat(length) }),
        };
        const bytes = hashedAgain(toBinary(ContextEventSchema, envelope));
        expect(() => decodeEvent(bytes, 9, inStory), String(length)).not.toThrow();
      }
    });

    it("(the same bytes hashed again, as their writer would have), then it is read", () => {
      expect(() =>
        decodeEvent(hashedAgain(tampered["a changed payload"]), 9, inStory),
      ).not.toThrow();
    });
  });

  it("given bytes that are no envelope, then the error names the sequence and the subject's story", () => {
    expect(() => decodeEvent(new Uint8Array([0xff, 1]), 12, subject("s-7", "X"))).toThrow(
      /stream message 12 of story s-7 is not a valid event: undecodable protobuf/,
    );
  });
});
