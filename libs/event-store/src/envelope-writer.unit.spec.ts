import { createHash } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { type ContextEventData, currentSchemaVersion, eventTypeOf } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { uuidBytes, uuidv7, uuidv7Of } from "@ctx/ids";
import {
  type ContextEvent,
  ContextEventSchema,
  type StoredContextEvent,
  StoredContextEventSchema,
  type SubtaskStatus,
} from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { plannedPayloadCases, writeEnvelopeV2, writeSignedEnvelope } from "./envelope-writer.ts";

/** What the writer must give: toBinary's bytes with the hash set, and the chain's hash. */
function expected(envelope: ContextEvent) {
  const hash = createHash("sha256")
    .update(envelope.prevHash)
    .update(toBinary(ContextEventSchema, envelope))
    .digest();
  return { hash, bytes: toBinary(ContextEventSchema, { ...envelope, hash }) };
}

/** A small deterministic generator, so a failure names a reproducible case. */
function random(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] as T;
  const text = () =>
    pick([
      "",
      "a",
      "story-0001",
      "x".repeat(127),
      "y".repeat(128),
      "ü",
      "日本語の決定",
      "e\u0301🙂",
    ]) + pick(["", "-", "z".repeat(Math.floor(next() * 300))]);
  return { next, pick, text };
}

function payload(r: ReturnType<typeof random>): ContextEventData {
  return r.pick([
    () => eventData.contextCreated({ title: r.text(), description: r.text() }),
    () => eventData.subtaskAdded({ subtaskId: r.text(), title: r.text(), dependsOn: [r.text()] }),
    () =>
      eventData.decisionAdded({
        decisionId: r.text(),
        title: r.text(),
        alternatives: [r.text(), ""],
      }),
    () => eventData.contextArchived({ reason: r.pick(["", r.text()]) }),
    () => eventData.decisionSuperseded({ decisionId: r.text(), supersededByDecisionId: r.text() }),
    () =>
      eventData.subtaskUpdated({
        subtaskId: r.text(),
        status: r.pick([0, 1, 2, 3, 4, 99]) as SubtaskStatus,
        assignee: r.text(),
      }),
    () => eventData.subtaskDependencyAdded({ subtaskId: r.text(), dependsOnSubtaskId: r.text() }),
    () =>
      eventData.decisionAdded({
        decisionId: r.text(),
        title: r.text(),
        rationale: r.text(),
        madeBy: r.text(),
        alternatives: [],
        affectsSubtaskIds: [r.text(), r.text(), ""],
      }),
  ])();
}

function envelope(r: ReturnType<typeof random>): ContextEvent {
  const data = payload(r);
  const eventType = eventTypeOf(data);
  return create(ContextEventSchema, {
    eventId: r.text(),
    storyId: r.text(),
    version: r.pick([0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 - 1]),
    ...(r.next() < 0.9
      ? {
          occurredAt: create(TimestampSchema, {
            seconds: r.pick([0n, 1n, 1_700_000_000n, 253_402_300_799n]),
            nanos: r.pick([0, 1, 999_999_999, 123_000_000]),
          }),
        }
      : {}),
    eventType,
    schemaVersion: r.pick([0, currentSchemaVersion[eventType], 200]),
    correlationId: r.text(),
    causationId: r.text(),
    commandId: r.text(),
    commandEventIndex: r.pick([0, 1, 5000]),
    prevHash: r.pick([new Uint8Array(0), new Uint8Array(32).fill(9), new Uint8Array(200).fill(1)]),
    commandName: r.pick(["", "ApplyChanges", r.text()]),
    commandFingerprint: r.pick([new Uint8Array(0), new Uint8Array(33).fill(7)]),
    payload: data,
  });
}

describe("writeSignedEnvelope", () => {
  it("gives toBinary's bytes and the chain's hash for every envelope the store writes", () => {
    const r = random(42);
    for (let i = 0; i < 2_000; i++) {
      const e = envelope(r);
      const written = writeSignedEnvelope(e);
      const want = expected(e);
      expect(written, `case ${i}`).toBeDefined();
      expect(Buffer.from(written?.bytes ?? [])).toEqual(Buffer.from(want.bytes));
      expect(Buffer.from(written?.hash ?? [])).toEqual(want.hash);
    }
  });

  it("gives the same bytes for the same envelope, one call after another", () => {
    const e = envelope(random(7));
    const first = writeSignedEnvelope(e);
    writeSignedEnvelope(envelope(random(8)));
    expect(writeSignedEnvelope(e)?.bytes).toEqual(first?.bytes);
    expect(fromBinary(ContextEventSchema, first?.bytes ?? new Uint8Array()).hash).toEqual(
      new Uint8Array(first?.hash ?? []),
    );
  });

  it("writes every payload a command decides from a plan", () => {
    // EventsSetAside (an operator's record, with repeated messages) goes through toBinary: rare.
    const cases = ContextEventSchema.oneofs[0]?.fields
      .map((f) => f.localName)
      .filter((c) => c !== "eventsSetAside");
    expect(plannedPayloadCases().sort()).toEqual(cases?.sort());
  });

  it("writes an EventsSetAside as toBinary does", () => {
    const data = eventData.eventsSetAside({
      reason: "garbage",
      operator: "ana",
      setAside: [{ sequence: 12n, sha256: new Uint8Array(32).fill(3), version: 4, problem: "x" }],
    });
    const e = { ...envelope(random(5)), payload: data };
    expect(Buffer.from(writeSignedEnvelope(e)?.bytes ?? [])).toEqual(
      Buffer.from(expected(e).bytes),
    );
  });

  it("writes a payload with unknown fields or a negative enum value as toBinary does", () => {
    const r = random(3);
    const unknown = eventData.subtaskAdded({ subtaskId: "t", title: "T" });
    unknown.value.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    const negative = eventData.subtaskUpdated({ subtaskId: "t", status: -1 as SubtaskStatus });
    for (const data of [unknown, negative]) {
      const e = { ...envelope(r), payload: data };
      expect(Buffer.from(writeSignedEnvelope(e)?.bytes ?? [])).toEqual(
        Buffer.from(expected(e).bytes),
      );
    }
  });

  it("leaves to toBinary what it does not write: negative times, unknown fields, no payload", () => {
    const base = envelope(random(1));
    const before = create(TimestampSchema, { seconds: -1n, nanos: 5 });
    expect(writeSignedEnvelope({ ...base, occurredAt: before })).toBeUndefined();
    const unknown = { ...base, $unknown: [{ no: 99, wireType: 0, data: new Uint8Array([1]) }] };
    expect(writeSignedEnvelope(unknown)).toBeUndefined();
    expect(writeSignedEnvelope({ ...base, payload: { case: undefined } })).toBeUndefined();
  });
});

/** `e` as envelope version 2 stands for it: what writeEnvelopeV2 must give, by toBinary. */
function expectedV2(e: ContextEvent, derivedId: (hash: Uint8Array) => string) {
  const ms = Number(e.occurredAt?.seconds ?? 0n) * 1000 + (e.occurredAt?.nanos ?? 0) / 1_000_000;
  const uuid = uuidBytes(e.commandId);
  const stored = (eventId: string, hash: Uint8Array) =>
    create(StoredContextEventSchema, {
      envelopeVersion: 2,
      version: e.version,
      occurredAtMs: BigInt(ms),
      schemaVersion: e.schemaVersion,
      ...(uuid ? { commandUuid: uuid } : { commandId: e.commandId }),
      commandEventIndex: e.commandEventIndex,
      commandName: e.commandName,
      commandFingerprint: e.commandFingerprint,
      principal: e.principal,
      ...(e.correlationId !== e.commandId ? { correlationId: e.correlationId } : {}),
      causationId: e.causationId,
      eventId,
      hash,
      payload: e.payload as StoredContextEvent["payload"],
    });
  // The story id is hashed as field 14 right after the previous hash, and not stored.
  const story = Buffer.from(e.storyId, "utf8");
  const storyField = Buffer.concat([Buffer.from([0x72]), varintBytes(story.length), story]);
  const hashOf = (eventId: string) =>
    createHash("sha256")
      .update(e.prevHash)
      .update(storyField)
      .update(toBinary(StoredContextEventSchema, stored(eventId, new Uint8Array(0))))
      .digest()
      .subarray(0, 16);
  // Without the given id first: when the given id is the one made of the hash, it is left out.
  let hash = hashOf("");
  let eventId = derivedId(hash);
  let storedId = "";
  if (e.eventId !== "" && e.eventId !== eventId) {
    hash = hashOf(e.eventId);
    eventId = e.eventId;
    storedId = e.eventId;
  }
  return { hash, eventId, bytes: toBinary(StoredContextEventSchema, stored(storedId, hash)) };
}

describe("writeEnvelopeV2", () => {
  it("gives toBinary's StoredContextEvent, its hash and its event id for every envelope the store writes", () => {
    const r = random(43);
    for (let i = 0; i < 2_000; i++) {
      const e: ContextEvent = {
        ...envelope(r),
        envelopeVersion: 2,
        occurredAt: create(TimestampSchema, {
          seconds: r.pick([1n, 1_700_000_000n, 253_402_300_799n]),
          nanos: r.pick([0, 1_000_000, 999_000_000]),
        }),
        eventId: r.pick(["", r.text(), uuidv7()]),
        commandId: r.pick(["", r.text(), uuidv7(), uuidv7().toUpperCase()]),
        principal: r.pick(["", "jwt:ana", r.text()]),
      };
      if (r.next() < 0.5) e.correlationId = e.commandId;
      const written = writeEnvelopeV2(e);
      const ms = Number(e.occurredAt?.seconds) * 1000 + (e.occurredAt?.nanos ?? 0) / 1e6;
      const want = expectedV2(e, (hash) => uuidv7Of(ms, hash));
      expect(written, `case ${i}`).toBeDefined();
      expect(Buffer.from(written?.bytes ?? []), `case ${i}`).toEqual(Buffer.from(want.bytes));
      expect(Buffer.from(written?.hash ?? [])).toEqual(want.hash);
      expect(written?.eventId).toBe(want.eventId);
    }
  });

  it("leaves a time it cannot hold in whole milliseconds to version 1", () => {
    const base: ContextEvent = { ...envelope(random(2)), envelopeVersion: 2 };
    const fine = create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 1 });
    expect(writeEnvelopeV2({ ...base, occurredAt: fine })).toBeUndefined();
    const before = create(TimestampSchema, { seconds: -1n, nanos: 0 });
    expect(writeEnvelopeV2({ ...base, occurredAt: before })).toBeUndefined();
    const { occurredAt: _, ...timeless } = base;
    expect(writeEnvelopeV2(timeless as ContextEvent)).toBeUndefined();
  });
});

function varintBytes(n: number): Buffer {
  const out: number[] = [];
  for (; n >= 0x80; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
}
