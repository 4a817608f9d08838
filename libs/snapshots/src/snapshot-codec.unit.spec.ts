import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { evolveAll, initialState, storyId, toContextMessage } from "@ctx/domain";
import { domainEvents, eventData } from "@ctx/domain/testing";
import {
  ContextSegmentSchema,
  ContextSnapshotSchema,
  type ContextStatus,
  SubtaskStatus,
} from "@ctx/proto";
import { describe, expect, it } from "vitest";
import {
  candidateVersions,
  currentSegmentSchemaVersion,
  currentSnapshotSchemaVersion,
  decodeSegment,
  decodeSnapshot,
  encodeSegment,
  encodeSnapshot,
  loadSnapshot,
  snapshotTime,
  toSegment,
  toSnapshot,
} from "./snapshot-codec.ts";

const story = storyId("s-1");
const state = evolveAll(
  initialState(story),
  domainEvents([
    eventData.contextCreated({ title: "T", description: "D" }),
    eventData.subtaskAdded({ subtaskId: "a", title: "A" }),
    eventData.subtaskAdded({ subtaskId: "b", title: "B", dependsOn: ["a"] }),
    eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.IN_PROGRESS, assignee: "x" }),
    eventData.decisionAdded({ decisionId: "d1", title: "D1", affectsSubtaskIds: ["a"] }),
  ]),
);

describe("snapshots on the wire", () => {
  it("round-trip a state exactly, with the sequence to resume after and its event's hash", () => {
    const hash = new Uint8Array(32).fill(9);
    const snapshot = toSnapshot(state, 42, hash);
    expect(snapshot).toMatchObject({
      version: 5,
      eventSequence: 42n,
      schemaVersion: currentSnapshotSchemaVersion,
    });
    expect(snapshotTime(snapshot)).toBe(state.updatedAt?.getTime());
    const decoded = decodeSnapshot(story, encodeSnapshot(snapshot));
    expect(decoded).toEqual(snapshot);
    expect(loadSnapshot(decoded as NonNullable<typeof decoded>)).toEqual({
      state,
      eventSequence: 42,
      eventHash: hash,
    });
    // Written before the hash was kept: an empty one (the reader then checks the rest only).
    expect(loadSnapshot(toSnapshot(state, 42))?.eventHash).toEqual(new Uint8Array(0));
  });

  it("refuses to snapshot a story without events", () => {
    expect(() => toSnapshot(initialState(story), 1)).toThrow(RangeError);
  });

  it("ignores what must not be read: another schema, another story, junk, missing fields", () => {
    const good = toSnapshot(state, 7);
    const variant = (change: Partial<typeof good>) =>
      toBinary(ContextSnapshotSchema, create(ContextSnapshotSchema, { ...good, ...change }));
    expect(decodeSnapshot(story, variant({ schemaVersion: 2 }))).toBeUndefined();
    expect(decodeSnapshot(story, variant({ schemaVersion: 0 }))).toBeUndefined();
    expect(decodeSnapshot(storyId("other"), encodeSnapshot(good))).toBeUndefined();
    expect(decodeSnapshot(story, new Uint8Array([0xff, 0xff, 0xff]))).toBeUndefined();
    expect(decodeSnapshot(story, variant({ eventSequence: 0n }))).toBeUndefined();
    expect(decodeSnapshot(story, variant({ occurredAt: undefined }))).toBeUndefined();
    expect(decodeSnapshot(story, variant({ version: 0 }))).toBeUndefined();
  });

  it("cannot load a context whose status this code does not know", () => {
    const context = { ...toContextMessage(state), status: 99 as ContextStatus };
    const snapshot = create(ContextSnapshotSchema, {
      context,
      version: 5,
      occurredAt: timestampFromDate(new Date()),
      eventSequence: 3n,
      schemaVersion: 1,
    });
    expect(loadSnapshot(snapshot)).toBeUndefined();
  });
});

describe("candidate versions", () => {
  it("are the multiple at or below the version and two below it, never 0", () => {
    expect(candidateVersions(250, 100)).toEqual([200, 100]);
    expect(candidateVersions(300, 100)).toEqual([300, 200, 100]);
    expect(candidateVersions(1_234, 100)).toEqual([1_200, 1_100, 1_000]);
    expect(candidateVersions(99, 100)).toEqual([]);
    expect(candidateVersions(7, 3)).toEqual([6, 3]);
    expect(candidateVersions(7, 1)).toEqual([7, 6, 5]);
    expect(candidateVersions(7, 1, 0)).toEqual([7]);
  });

  it("need a positive whole interval", () => {
    expect(() => candidateVersions(10, 0)).toThrow(RangeError);
    expect(() => candidateVersions(10, 2.5)).toThrow(RangeError);
  });
});

describe("segments on the wire", () => {
  const events = [
    { sequence: 7, data: new Uint8Array([1, 2, 3]) },
    { sequence: 9, data: new Uint8Array([4, 5]) },
  ];

  it("round-trip the stored events after a version, in order", () => {
    const segment = toSegment(story, 100, events);
    const decoded = decodeSegment(story, 100, encodeSegment(segment));
    expect(decoded).toEqual(segment);
    expect(decoded?.events.map((e) => [Number(e.sequence), [...e.data]])).toEqual([
      [7, [1, 2, 3]],
      [9, [4, 5]],
    ]);
  });

  it("are refused when they cannot be used: another story or position, schema, no events", () => {
    const bytes = encodeSegment(toSegment(story, 100, events));
    expect(decodeSegment(storyId("s-2"), 100, bytes)).toBeUndefined();
    expect(decodeSegment(story, 200, bytes)).toBeUndefined();
    expect(decodeSegment(story, 100, encodeSegment(toSegment(story, 100, [])))).toBeUndefined();
    const newer = create(ContextSegmentSchema, {
      ...toSegment(story, 100, events),
      schemaVersion: currentSegmentSchemaVersion + 1,
    });
    expect(decodeSegment(story, 100, toBinary(ContextSegmentSchema, newer))).toBeUndefined();
    const empty = toSegment(story, 100, [{ sequence: 7, data: new Uint8Array(0) }]);
    expect(decodeSegment(story, 100, encodeSegment(empty))).toBeUndefined();
    expect(decodeSegment(story, 100, new Uint8Array([0xff, 0xff]))).toBeUndefined();
  });
});
