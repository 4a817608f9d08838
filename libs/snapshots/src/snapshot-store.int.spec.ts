import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ContextState, evolveAll, initialState, type StoryId, storyId } from "@ctx/domain";
import { domainEvents, eventData } from "@ctx/domain/testing";
import { ContextSnapshotSchema } from "@ctx/proto";
import { connectTestNats, uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createSnapshotStore,
  provisionSnapshotStream,
  type SnapshotStore,
  type SnapshotStreamNames,
  segmentSubject,
  timelineSubject,
  toSegment,
  toSnapshot,
  versionSubject,
} from "./index.ts";

let nc: NatsConnection;
let jsm: JetStreamManager;
let names: SnapshotStreamNames;
let snapshots: SnapshotStore;

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  const stream = uniqueName("SNAP");
  names = { stream, subjectPrefix: stream.toLowerCase() };
  await provisionSnapshotStream(jsm, { ...names, replicas: 1, duplicateWindowMs: 60_000 });
  snapshots = createSnapshotStore(nc, names, { interval: 10 });
});

afterAll(async () => {
  await jsm?.streams.delete(names.stream).catch(() => undefined);
  await nc?.close();
});

const newStory = () => storyId(uniqueName("story"));

/** The story after `version` events (subtasks added one by one), the last at `at`. */
function stateAt(story: StoryId, version: number, at = new Date()): ContextState {
  const data = [
    eventData.contextCreated({ title: story }),
    ...Array.from({ length: version - 1 }, (_, i) =>
      eventData.subtaskAdded({ subtaskId: `s${i}` }),
    ),
  ];
  const first = new Date(at.getTime() - (version - 1) * 60_000);
  return evolveAll(initialState(story), domainEvents(data, 1, first));
}

async function count(subject: string): Promise<number> {
  const info = await jsm.streams.info(names.stream, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

describe("snapshot store", () => {
  it("is provisioned idempotently", async () => {
    const settings = { ...names, replicas: 1, duplicateWindowMs: 60_000 };
    const again = await provisionSnapshotStream(jsm, settings);
    expect(again.config).toMatchObject({ allow_direct: true, compression: "s2", storage: "file" });
  });

  it("stores each version once, on its version subject and the story's timeline", async () => {
    const story = newStory();
    const snapshot = toSnapshot(stateAt(story, 10), 123);
    expect(await snapshots.write(snapshot)).toBe(true);
    expect(await snapshots.write(snapshot)).toBe(false);
    expect(await createSnapshotStore(nc, names, { interval: 10 }).write(snapshot)).toBe(false);
    expect(await count(versionSubject(names, story, 10))).toBe(1);
    expect(await count(timelineSubject(names, story))).toBe(1);
    expect(await snapshots.atOrBeforeVersion(story, 10)).toEqual(snapshot);
  });

  it("finds the snapshot at or below a version, two multiples back at most", async () => {
    const story = newStory();
    for (const v of [10, 20, 30]) await snapshots.write(toSnapshot(stateAt(story, v), v * 7));
    const versionAt = async (v: number) => (await snapshots.atOrBeforeVersion(story, v))?.version;
    expect(await versionAt(9)).toBeUndefined();
    expect(await versionAt(10)).toBe(10);
    expect(await versionAt(19)).toBe(10);
    expect(await versionAt(25)).toBe(20);
    expect(await versionAt(30)).toBe(30);
    expect(await versionAt(59)).toBe(30); // 50, 40, 30
    expect(await versionAt(60)).toBeUndefined(); // 60, 50, 40: the snapshotter is far behind
    expect(await snapshots.atOrBeforeVersion(newStory(), 30)).toBeUndefined();
  });

  it("ignores a snapshot of another schema version and falls back to an older one", async () => {
    const story = newStory();
    await snapshots.write(toSnapshot(stateAt(story, 10), 70));
    const future = { ...toSnapshot(stateAt(story, 20), 140), schemaVersion: 2 };
    const bytes = toBinary(ContextSnapshotSchema, create(ContextSnapshotSchema, future));
    const js = jetstream(nc);
    await js.publish(timelineSubject(names, story), bytes);
    await js.publish(versionSubject(names, story, 20), bytes);
    expect((await snapshots.atOrBeforeVersion(story, 25))?.version).toBe(10);
    expect((await snapshots.atOrBeforeTime(story, new Date(Date.now() + 60_000)))?.version).toBe(
      10,
    );
    expect((await snapshots.latest(story))?.version).toBe(10);
  });

  it("finds the newest snapshot stored by a time whose events occurred by then", async () => {
    const story = newStory();
    const before = new Date();
    await snapshots.write(toSnapshot(stateAt(story, 10, new Date(before.getTime() - 1_000)), 70));
    const between = (await jsm.streams.getMessage(names.stream, {
      last_by_subj: timelineSubject(names, story),
    })) as { time: Date };
    const stored10 = between.time;
    await snapshots.write(toSnapshot(stateAt(story, 20), 140));
    const byTime = async (t: Date) => (await snapshots.atOrBeforeTime(story, t))?.version;

    // Stored at a time with nanoseconds: the millisecond after it is the first that sees it.
    expect(await byTime(new Date(stored10.getTime() - 1))).toBeUndefined();
    expect(await byTime(new Date(stored10.getTime() + 1))).toBe(10);
    expect(await byTime(new Date(Date.now() + 60_000))).toBe(20);
    expect((await snapshots.latest(story))?.version).toBe(20);
  });

  it("skips a snapshot stored by a time but stamped after it (a clock ahead)", async () => {
    const story = newStory();
    const now = Date.now();
    await snapshots.write(toSnapshot(stateAt(story, 10, new Date(now - 60_000)), 70));
    await snapshots.write(toSnapshot(stateAt(story, 20, new Date(now + 3_600_000)), 140));
    const t = new Date(Date.now() + 1_000);
    expect((await snapshots.atOrBeforeTime(story, t))?.version).toBe(10);
    expect((await snapshots.latest(story))?.version).toBe(20);
  });

  it("refuses an interval that is not a positive whole number", () => {
    expect(() => createSnapshotStore(nc, names, { interval: 0 })).toThrow(RangeError);
  });

  it("keeps timestamps at millisecond precision", async () => {
    const story = newStory();
    const at = new Date("2030-05-06T07:08:09.123Z");
    const snapshot = toSnapshot(stateAt(story, 10, at), 1);
    expect(snapshot.occurredAt).toEqual(timestampFromDate(at));
  });

  it("stores a segment once, and refuses one that would not fit in a NATS message, storing nothing", async () => {
    const story = newStory();
    const maxPayload = nc.info?.max_payload as number;
    const copy = (sequence: number, bytes: number) => ({
      sequence,
      data: new Uint8Array(bytes).fill(sequence % 251),
    });
    // Ten events of 1 KiB: fits.
    const small = toSegment(
      story,
      10,
      Array.from({ length: 10 }, (_, i) => copy(100 + i, 1024)),
    );
    expect(await snapshots.writeSegment(small)).toBe("stored");
    expect(await snapshots.writeSegment(small)).toBe("exists");
    expect((await snapshots.segment(story, 10))?.events.map((e) => Number(e.sequence))).toEqual(
      Array.from({ length: 10 }, (_, i) => 100 + i),
    );
    // As many bytes as the server takes in one message, before the segment's own framing.
    const large = toSegment(story, 20, [copy(200, maxPayload / 2), copy(201, maxPayload / 2)]);
    expect(await snapshots.writeSegment(large)).toBe("too-large");
    expect(await count(segmentSubject(names, story, 20))).toBe(0);
    expect(await snapshots.segment(story, 20)).toBeUndefined();
  });
});
