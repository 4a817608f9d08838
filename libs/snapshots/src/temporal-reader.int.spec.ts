import { create, toBinary } from "@bufbuild/protobuf";
import { createLogger } from "@ctx/config";
import {
  type ContextEventData,
  type ContextState,
  fold,
  type StoryId,
  storyId,
  streamVersion,
} from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  eventSubject,
  provisionEventStream,
  type RecordedEvent,
  UnreadableEventError,
} from "@ctx/event-store";
import { appendAsWritten, envelopeAsWritten, testStreamSettings } from "@ctx/event-store/testing";
import { type ContextEvent, ContextEventSchema, SubtaskAddedSchema } from "@ctx/proto";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import fc from "fast-check";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createSnapshotStore,
  createSnapshotter,
  createTemporalReader,
  type PointInTime,
  provisionSnapshotStream,
  type SnapshotStore,
  type SnapshotStreamNames,
  type Snapshotter,
  type StoredCopy,
  type TemporalReader,
  toSegment,
  toSnapshot,
} from "./index.ts";
import { storyHistories } from "./testing/index.ts";

// The temporal reader against the fold of the same events: with snapshots every 3 versions (the
// snapshotter run to completion) and without, at every version, at every event's time and between.

const INTERVAL = 3;
const logger = createLogger({ name: "temporal-reader-int", level: "silent", pretty: false });

let nc: NatsConnection;
let jsm: JetStreamManager;
let events: EventStreamSettings;
let snapshotNames: SnapshotStreamNames;
let store: EventStore;
let snapshots: SnapshotStore;
let snapshotter: Snapshotter;
let withSnapshots: TemporalReader;
let withoutSnapshots: TemporalReader;
let consumerName: string;

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  const name = uniqueName("TEMPORAL");
  events = testStreamSettings(name);
  snapshotNames = { stream: `${name}_SNAP`, subjectPrefix: `${name.toLowerCase()}_snap` };
  await provisionEventStream(jsm, events);
  await provisionSnapshotStream(jsm, { ...snapshotNames, replicas: 1, duplicateWindowMs: 60_000 });
  store = createEventStore(nc, { names: events });
  snapshots = createSnapshotStore(nc, snapshotNames, { interval: INTERVAL });
  consumerName = uniqueName("snapshotter");
  snapshotter = createSnapshotter({ nc, store, snapshots, logger, consumerName });
  await snapshotter.start();
  withSnapshots = createTemporalReader({ store, snapshots, logger });
  withoutSnapshots = createTemporalReader({ store, logger });
});

afterAll(async () => {
  await snapshotter?.stop();
  await jsm?.streams.delete(events.stream).catch(() => undefined);
  await jsm?.streams.delete(snapshotNames.stream).catch(() => undefined);
  await nc?.close();
});

const newStory = () => storyId(uniqueName("story"));

/** Appends a history, each event stamped at least 2 ms after the previous one and near now. */
async function append(
  story: StoryId,
  appends: readonly (readonly ContextEventData[])[],
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let last = 0;
  for (const group of appends) {
    const stamped = group.map((data) => {
      last = Math.max(Date.now(), last + 2);
      return { data, occurredAt: new Date(last) };
    });
    const result = await store.append(story, stamped, ExpectedVersion.Any);
    out.push(...result.events);
  }
  return out;
}

const caughtUp = () =>
  eventually(async () => expect(await snapshotter.lag()).toBe(0), { timeout: 30_000 });

/** The fold of the history's longest prefix of events that occurred at or before `t`. */
function expectedAt(story: StoryId, history: readonly RecordedEvent[], t: number): ContextState {
  const end = history.findIndex((e) => e.occurredAt.getTime() > t);
  return fold(story, end < 0 ? history : history.slice(0, end));
}

const used = { atTime: 0, atVersion: 0, current: 0 };
const fromSegments = { atTime: 0, atVersion: 0 };
const count = (kind: keyof typeof used, point: PointInTime) => {
  if (point.snapshotVersion > 0) used[kind] += 1;
  if (point.eventsFrom === "segment" && kind !== "current") fromSegments[kind] += 1;
  return point;
};

/** A stored copy of an event with some envelope fields changed (a forged segment event). */
const forged = (event: RecordedEvent, changes: Partial<ContextEvent>): StoredCopy => ({
  sequence: event.sequence,
  data: toBinary(ContextEventSchema, { ...event.envelope, ...changes }),
});

/** A history of a created story and `n - 1` added subtasks, one event per append. */
const subtaskHistory = (n: number, prefix = "s") =>
  Array.from({ length: n }, (_, i) =>
    i === 0
      ? [eventData.contextCreated()]
      : [eventData.subtaskAdded({ subtaskId: `${prefix}${i}` })],
  );

describe("temporal reader", () => {
  it("equals the fold of the events up to every version and time, with and without snapshots", async () => {
    await fc.assert(
      fc.asyncProperty(storyHistories({ maxEvents: 30 }), async (appends) => {
        const story = newStory();
        const history = await append(story, appends);
        await caughtUp();
        const times = history.map((e) => e.occurredAt.getTime());
        const first = times[0] as number;
        const probes = [first - 1, ...times.flatMap((t) => [t, t + 1]), Date.now() + 3_600_000];
        for (const reader of [withSnapshots, withoutSnapshots]) {
          const snapshotted = reader === withSnapshots;
          for (const t of probes) {
            const point = await reader.atTime(story, new Date(t));
            if (snapshotted) count("atTime", point);
            expect(point.state).toEqual(expectedAt(story, history, t));
          }
          for (let v = 1; v <= history.length; v++) {
            const point = await reader.atVersion(story, v);
            if (snapshotted) count("atVersion", point);
            expect(point.state).toEqual(fold(story, history.slice(0, v)));
            expect(point.sequence).toBe(history[v - 1]?.sequence);
          }
          const now = await reader.current(story);
          if (snapshotted) count("current", now);
          expect(now.state).toEqual(fold(story, history));
          expect((await reader.atVersion(story, history.length + 5)).state.version).toBe(
            history.length,
          );
        }
      }),
      { numRuns: 12 },
    );
    // The snapshots were really used, for every kind of read, and so were the segments.
    expect(used.atTime).toBeGreaterThan(0);
    expect(used.atVersion).toBeGreaterThan(0);
    expect(used.current).toBeGreaterThan(0);
    expect(fromSegments.atTime).toBeGreaterThan(0);
    expect(fromSegments.atVersion).toBeGreaterThan(0);
  });

  it("folds from the segment after a snapshot when it reaches the point, else from the stream", async () => {
    const story = newStory();
    const history = await append(story, subtaskHistory(10));
    await caughtUp();
    const at = (v: number) => history[v - 1] as RecordedEvent;
    const cases: [PointInTime, number, PointInTime["eventsFrom"], number | readonly number[]][] = [
      // [answer, expected version, where its events came from, snapshot used (or the ones it may
      // be: a time lookup finds the snapshots *stored* by then, and the snapshotter may have
      // stored snapshot 6 only after event 8 occurred; the read then goes on from segment 3)]
      [await withSnapshots.atVersion(story, 5), 5, "segment", 3],
      [await withSnapshots.atVersion(story, 6), 6, "segment", 6],
      [await withSnapshots.atVersion(story, 2), 2, "segment", 0],
      // (or none at all: on a loaded machine the snapshotter may store snapshot 3 only after
      // event 8 occurred too; the read then goes on from the story's first segment)
      [await withSnapshots.atTime(story, at(8).occurredAt), 8, "segment", [0, 3, 6]],
      [
        await withSnapshots.atTime(story, new Date(at(1).occurredAt.getTime() - 1)),
        0,
        "segment",
        0,
      ],
      // After the last snapshot (9) there is no segment: the tail comes from the stream.
      [await withSnapshots.atVersion(story, 10), 10, "stream", 9],
      [await withSnapshots.atTime(story, new Date(Date.now() + 60_000)), 10, "stream", 9],
    ];
    // A reader that looks for snapshots every 9 versions finds none up to 8: it goes on from
    // segment to segment, each linked to the one before.
    const sparse = createTemporalReader({
      store,
      snapshots: createSnapshotStore(nc, snapshotNames, { interval: 9 }),
      logger,
    });
    cases.push([await sparse.atVersion(story, 8), 8, "segment", 0]);
    for (const [point, version, from, snapshotVersion] of cases) {
      expect(point.state).toEqual(fold(story, history.slice(0, version)));
      expect(point.sequence).toBe(version === 0 ? 0 : at(version).sequence);
      expect(point.eventsFrom).toBe(from);
      expect([snapshotVersion].flat()).toContain(point.snapshotVersion);
      expect(point.eventsFolded).toBe(point.events.length);
    }
  });

  it("reads a story shorter than an interval from the stream, without looking for segments", async () => {
    let segmentLookups = 0;
    const counting: SnapshotStore = {
      names: snapshots.names,
      interval: snapshots.interval,
      write: (snapshot) => snapshots.write(snapshot),
      atOrBeforeVersion: (id, version) => snapshots.atOrBeforeVersion(id, version),
      atOrBeforeTime: (id, time) => snapshots.atOrBeforeTime(id, time),
      latest: (id) => snapshots.latest(id),
      writeSegment: (segment) => snapshots.writeSegment(segment),
      segment: (id, afterVersion) => {
        segmentLookups += 1;
        return snapshots.segment(id, afterVersion);
      },
    };
    const reader = createTemporalReader({ store, snapshots: counting, logger });
    const short = newStory();
    const history = await append(short, subtaskHistory(INTERVAL - 1));
    await caughtUp();
    const first = history[0] as RecordedEvent;
    expect((await reader.atTime(short, first.occurredAt)).state).toEqual(fold(short, [first]));
    expect((await reader.atTime(short, new Date(Date.now() + 1_000))).state).toEqual(
      fold(short, history),
    );
    expect((await reader.atVersion(short, 1)).state).toEqual(fold(short, [first]));
    expect((await reader.atTime(newStory(), new Date())).state.version).toBe(0);
    expect(segmentLookups).toBe(0);
    // Once it reaches an interval, its reads look for segments (and find the first).
    await append(short, [[eventData.subtaskAdded({ subtaskId: "last" })]]);
    await caughtUp();
    const point = await reader.atVersion(short, 2);
    expect(point.eventsFrom).toBe("segment");
    expect(segmentLookups).toBe(1);
  });

  it("never uses a segment that does not match the event stream", async () => {
    // Without a snapshot: another story's first events, relabelled as this story's, written
    // before this story's own (the snapshotter then finds the subject taken).
    const other = newStory();
    const otherHistory = await append(other, subtaskHistory(3, "o"));
    const story = newStory();
    await snapshots.writeSegment(
      toSegment(
        story,
        0,
        otherHistory.map((e) => forged(e, { storyId: story })),
      ),
    );
    const history = await append(story, subtaskHistory(4));
    await caughtUp();
    const early = await withSnapshots.atVersion(story, 2);
    expect(early.eventsFrom).toBe("stream");
    expect(early.state).toEqual(fold(story, history.slice(0, 2)));

    // After a snapshot: the story's own first events, renumbered as the ones after it; they do
    // not link to the snapshot's event by hash.
    const linked = newStory();
    const first = await append(linked, subtaskHistory(3, "l"));
    await caughtUp();
    await snapshots.writeSegment(
      toSegment(
        linked,
        3,
        first.map((e) => forged(e, { version: e.version + 3 })),
      ),
    );
    const rest = await append(linked, subtaskHistory(4, "m").slice(1));
    await caughtUp();
    const point = await withSnapshots.atVersion(linked, 5);
    expect(point.snapshotVersion).toBe(3);
    expect(point.eventsFrom).toBe("stream");
    expect(point.state).toEqual(fold(linked, [...first, ...rest].slice(0, 5)));

    // Left over from another stream: a snapshot whose event the stream does not hold, and a
    // segment after it whose events link to one another.
    const donor = await append(newStory(), subtaskHistory(6, "d"));
    const stale = newStory();
    await snapshots.write(
      toSnapshot(fold(stale, donor.slice(0, 3)), (donor.at(-1)?.sequence ?? 0) + 1_000_000),
    );
    await snapshots.writeSegment(
      toSegment(
        stale,
        3,
        donor.slice(3).map((e) => forged(e, { storyId: stale })),
      ),
    );
    const real = await append(stale, subtaskHistory(6, "r"));
    await caughtUp();
    const fromStream = await withSnapshots.atVersion(stale, 5);
    expect(fromStream.eventsFrom).toBe("stream");
    expect(fromStream.state).toEqual(fold(stale, real.slice(0, 5)));
  });

  it("reads any range of events, from a given position, a snapshot or the start", async () => {
    const story = newStory();
    const history = await append(
      story,
      Array.from({ length: 20 }, (_, i) =>
        i === 0 ? [eventData.contextCreated()] : [eventData.subtaskAdded({ subtaskId: `s${i}` })],
      ),
    );
    await caughtUp();
    const versions = (events: readonly RecordedEvent[]) => events.map((e) => e.version);
    const at = (v: number) => history[v - 1] as RecordedEvent;
    for (const reader of [withSnapshots, withoutSnapshots]) {
      expect(versions(await reader.events(story, { fromVersion: 1 }))).toEqual(versions(history));
      expect(versions(await reader.events(story, { fromVersion: 8, toVersion: 11 }))).toEqual([
        8, 9, 10, 11,
      ]);
      const after = { sequence: at(12).sequence, version: 12 };
      expect(
        versions(await reader.events(story, { fromVersion: 13, toVersion: 14, after })),
      ).toEqual([13, 14]);
      // A position that does not match the stream is only a lost shortcut.
      const wrong = { sequence: at(15).sequence, version: 12 };
      expect(
        versions(await reader.events(story, { fromVersion: 13, toVersion: 14, after: wrong })),
      ).toEqual([13, 14]);
      const untilTime = at(5).occurredAt;
      expect(versions(await reader.events(story, { fromVersion: 4, untilTime }))).toEqual([4, 5]);
      expect(await reader.events(story, { fromVersion: 9, toVersion: 8 })).toEqual([]);
      expect(await reader.events(story, { fromVersion: 21 })).toEqual([]);
    }
  });

  it("knows no state of a story that does not exist", async () => {
    const story = newStory();
    for (const reader of [withSnapshots, withoutSnapshots]) {
      expect((await reader.current(story)).state.version).toBe(0);
      expect((await reader.atVersion(story, 10)).state.version).toBe(0);
      expect((await reader.atTime(story, new Date())).state.version).toBe(0);
    }
  });

  it("never uses a snapshot that does not match the event stream", async () => {
    const story = newStory();
    const other = newStory();
    const data = [
      eventData.contextCreated({ title: "real" }),
      eventData.subtaskAdded({ subtaskId: "a" }),
      eventData.subtaskAdded({ subtaskId: "b" }),
      eventData.subtaskAdded({ subtaskId: "c" }),
    ];
    const otherEvents = await append(other, [[eventData.contextCreated({ title: "other" })]]);
    // A forged state at version 3, pointing at another story's event, written before the real one.
    const forged = fold(story, [
      { version: streamVersion(1), occurredAt: new Date(), data: eventData.contextCreated() },
      { version: streamVersion(2), occurredAt: new Date(), data: eventData.contextArchived() },
      {
        version: streamVersion(3),
        occurredAt: otherEvents[0]?.occurredAt ?? new Date(),
        data: eventData.contextArchived(),
      },
    ]);
    await snapshots.write(toSnapshot(forged, otherEvents[0]?.sequence ?? 1));
    const history = await append(story, [data]);
    await caughtUp();

    const point = await withSnapshots.atVersion(story, 4);
    expect(point.snapshotVersion).toBe(0);
    expect(point.state).toEqual(fold(story, history));
    const atTime = await withSnapshots.atTime(story, new Date(Date.now() + 1_000));
    expect(atTime.state).toEqual(fold(story, history));
  });

  it("never uses a snapshot whose event the stream holds with another hash", async () => {
    // Snapshots of its own, none written by a snapshotter: only the ones this test writes.
    const names = { stream: uniqueName("HASHSNAP"), subjectPrefix: uniqueName("hashsnap") };
    await provisionSnapshotStream(jsm, { ...names, replicas: 1, duplicateWindowMs: 60_000 });
    try {
      const own = createSnapshotStore(nc, names, { interval: INTERVAL });
      const reader = createTemporalReader({ store, snapshots: own, logger });
      const fourEvents = (title: string) => [
        [eventData.contextCreated({ title })],
        [eventData.subtaskAdded({ subtaskId: "a" })],
        [eventData.subtaskAdded({ subtaskId: "b" })],
        [eventData.subtaskAdded({ subtaskId: "c" })],
      ];

      // Left from a history rewritten since: the stream's event at the snapshot's position has
      // the same story, version and time, but not the hash the snapshot was folded up to.
      const story = newStory();
      const history = await append(story, fourEvents("real"));
      const anchor = history[2] as RecordedEvent;
      const forged = fold(story, [
        ...history.slice(0, 2),
        { ...anchor, data: eventData.subtaskAdded({ subtaskId: "forged" }) },
      ]);
      await own.write(toSnapshot(forged, anchor.sequence, new Uint8Array(32).fill(7)));
      const point = await reader.atVersion(story, 4);
      expect(point.snapshotVersion).toBe(0);
      expect(point.state).toEqual(fold(story, history));

      // With the hash the stream holds, a snapshot is used.
      const honest = newStory();
      const events = await append(honest, fourEvents("honest"));
      const at = events[2] as RecordedEvent;
      await own.write(toSnapshot(fold(honest, events.slice(0, 3)), at.sequence, at.envelope.hash));
      const used = await reader.atVersion(honest, 4);
      expect(used.snapshotVersion).toBe(3);
      expect(used.state).toEqual(fold(honest, events));
    } finally {
      await jsm.streams.delete(names.stream).catch(() => undefined);
    }
  });

  it("folds every event that occurred by a time, also those stored after it (past the read's size hint)", async () => {
    const story = newStory();
    const early = await append(
      story,
      Array.from({ length: 10 }, (_, i) =>
        i === 0 ? [eventData.contextCreated()] : [eventData.subtaskAdded({ subtaskId: `e${i}` })],
      ),
    );
    await caughtUp();
    // Stamped before `t` but stored after it (appends in flight at `t`, a backfill): the version
    // stored by `t` (10) under-counts what occurred by then (30), so the first read falls short.
    const t = (early[early.length - 1] as RecordedEvent).occurredAt.getTime() + 100;
    await new Promise((resolve) => setTimeout(resolve, t + 5 - Date.now()));
    const late = await store.append(
      story,
      Array.from({ length: 20 }, (_, i) => ({
        data: eventData.subtaskAdded({ subtaskId: `l${i}` }),
        occurredAt: new Date(t - 50 + i),
      })),
      ExpectedVersion.Any,
    );
    await caughtUp();
    const history = [...early, ...late.events];
    for (const reader of [withSnapshots, withoutSnapshots]) {
      const point = await reader.atTime(story, new Date(t));
      expect(point.state).toEqual(fold(story, history));
      expect(point.sequence).toBe(history[history.length - 1]?.sequence);
    }
    // Backfilled history stamped long before anything was stored: no snapshot and no version
    // stored by then, yet every event that occurred by then is folded.
    const backfilled = newStory();
    const past = Date.now() - 3_600_000;
    const old = await store.append(
      backfilled,
      Array.from({ length: 25 }, (_, i) => ({
        data: i === 0 ? eventData.contextCreated() : eventData.subtaskAdded({ subtaskId: `b${i}` }),
        occurredAt: new Date(past + i),
      })),
      ExpectedVersion.NoStory,
    );
    await caughtUp();
    for (const reader of [withSnapshots, withoutSnapshots]) {
      const point = await reader.atTime(backfilled, new Date(past + 20));
      expect(point.state).toEqual(fold(backfilled, old.events.slice(0, 21)));
    }
  });

  it("aborts a read when its signal is aborted", async () => {
    const signal = AbortSignal.abort(new Error("cancelled"));
    await expect(withSnapshots.current(newStory(), { signal })).rejects.toThrow("cancelled");
  });
});

describe("snapshotter", () => {
  it("stores one snapshot per multiple of the interval, and nothing again on a replay", async () => {
    const story = newStory();
    const history = await append(
      story,
      Array.from({ length: 10 }, (_, i) =>
        i === 0 ? [eventData.contextCreated()] : [eventData.subtaskAdded({ subtaskId: `s${i}` })],
      ),
    );
    await caughtUp();
    for (const v of [3, 6, 9]) {
      const snapshot = await snapshots.atOrBeforeVersion(story, v);
      expect(snapshot?.version).toBe(v);
      expect(Number(snapshot?.eventSequence)).toBe(history[v - 1]?.sequence);
      // Anchored by the hash of its last event, as stored.
      expect(Buffer.from(snapshot?.eventHash ?? [])).toEqual(
        Buffer.from(history[v - 1]?.envelope.hash ?? []),
      );
      // The events before it, as stored, in the segment after the previous snapshot.
      const segment = await snapshots.segment(story, v - INTERVAL);
      expect(segment?.events.map((e) => Number(e.sequence))).toEqual(
        history.slice(v - INTERVAL, v).map((e) => e.sequence),
      );
      const stored = await Promise.all(
        history
          .slice(v - INTERVAL, v)
          .map((e) => jsm.direct.getMessage(events.stream, { seq: e.sequence })),
      );
      expect(segment?.events.map((e) => e.data)).toEqual(stored.map((m) => m?.data));
    }
    expect((await snapshots.latest(story))?.version).toBe(9);
    expect(await snapshots.segment(story, 9)).toBeUndefined();

    // A second snapshotter replays the whole stream from the start: everything is already there.
    const registry = new Registry();
    const replay = createSnapshotter({
      nc,
      store,
      snapshots,
      logger,
      registry,
      consumerName: uniqueName("replay"),
    });
    await replay.start();
    try {
      await eventually(async () => expect(await replay.lag()).toBe(0), { timeout: 30_000 });
      const written = await registry.getSingleMetricAsString("ctx_snapshots_written_total");
      expect(written).toMatch(/ctx_snapshots_written_total 0$/m);
      const segments = await registry.getSingleMetricAsString("ctx_snapshot_segments_total");
      expect(segments).not.toMatch(/outcome="stored"/);
    } finally {
      await replay.stop();
    }
  });

  it("resumes after a restart where it stopped", async () => {
    await snapshotter.stop();
    const story = newStory();
    await append(
      story,
      Array.from({ length: 6 }, (_, i) =>
        i === 0 ? [eventData.contextCreated()] : [eventData.subtaskAdded({ subtaskId: `s${i}` })],
      ),
    );
    expect(await snapshotter.lag()).toBeGreaterThanOrEqual(6);
    snapshotter = createSnapshotter({ nc, store, snapshots, logger, consumerName });
    await snapshotter.start();
    await caughtUp();
    expect((await snapshots.latest(story))?.version).toBe(6);
  });
});

describe("a stored message a reader cannot take as the story's", () => {
  /** An envelope of `of` at `version`, chained onto its head, published on `onto`'s subject. */
  async function publishEnvelope(of: StoryId, version: number, onto: StoryId): Promise<number> {
    const head = await store.head(of);
    const envelope = envelopeAsWritten(of, version, head?.hash ?? new Uint8Array(0), {
      eventType: "SubtaskAdded",
      schemaVersion: 1,
      payloadSchema: SubtaskAddedSchema,
      payload: create(SubtaskAddedSchema, { subtaskId: "forged", title: "forged" }),
      occurredAt: new Date(),
    });
    const bytes = toBinary(ContextEventSchema, envelope);
    return (await jetstream(nc).publish(eventSubject(events, onto, "SubtaskAdded"), bytes)).seq;
  }

  it("given another story's envelope on its subject, then temporal reads refuse it naming its sequence, and read past it once an operator set it aside", async () => {
    const a = newStory();
    const b = newStory();
    await append(a, subtaskHistory(4));
    const historyB = await append(b, subtaskHistory(2));
    const sequence = await publishEnvelope(b, 3, a);
    await caughtUp();
    const later = new Date(Date.now() + 60_000);
    for (const reader of [withSnapshots, withoutSnapshots]) {
      await expect(reader.current(a)).rejects.toMatchObject({ sequence, storyId: a });
      await expect(reader.atTime(a, later)).rejects.toMatchObject({ sequence });
      // B never sees it.
      expect((await reader.current(b)).state).toEqual(fold(b, historyB));
    }
    await store.setAside(a, { sequences: [sequence], reason: "forged", operator: "test" });
    const repaired = await store.read(a);
    expect(repaired.map((e) => e.version)).toEqual([1, 2, 3, 4, 5]);
    for (const reader of [withSnapshots, withoutSnapshots]) {
      expect((await reader.current(a)).state).toEqual(fold(a, repaired));
      expect((await reader.atTime(a, later)).state).toEqual(fold(a, repaired));
      expect(await reader.events(a, { fromVersion: 4 })).toEqual(repaired.slice(3));
    }
  });

  it("given an event of a newer schema set aside where a snapshot falls, then snapshots, segments and temporal reads count its version and fold the rest", async () => {
    const a = newStory();
    await append(a, subtaskHistory(5));
    // Version 6 (a multiple of the interval) as a newer release wrote it, then version 7.
    await appendAsWritten(nc, store, a, [
      {
        eventType: "SubtaskAdded",
        schemaVersion: 99,
        payloadSchema: SubtaskAddedSchema,
        payload: create(SubtaskAddedSchema, { subtaskId: "v99", title: "v99" }),
        occurredAt: new Date(),
      },
      {
        eventType: "SubtaskAdded",
        schemaVersion: 1,
        payloadSchema: SubtaskAddedSchema,
        payload: create(SubtaskAddedSchema, { subtaskId: "s7", title: "s7" }),
        occurredAt: new Date(),
      },
    ]);
    await caughtUp();
    await expect(withSnapshots.atVersion(a, 7)).rejects.toBeInstanceOf(UnreadableEventError);
    const bad = (await store.examine(a)).find((m) => m.status === "unreadable");
    expect(bad?.version).toBe(6);
    await store.setAside(a, {
      sequences: [bad?.sequence as number],
      reason: "a release we rolled back wrote it",
      operator: "test",
    });
    await append(a, [[eventData.subtaskAdded({ subtaskId: "s9" })]]);
    await caughtUp();
    expect((await snapshots.latest(a))?.version).toBe(9);
    const history = await store.read(a);
    expect(history.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(history[5]?.setAside?.version).toBe(6);
    for (const reader of [withSnapshots, withoutSnapshots]) {
      for (let v = 1; v <= 9; v++) {
        expect((await reader.atVersion(a, v)).state).toEqual(fold(a, history.slice(0, v)));
      }
      for (const e of history) {
        const t = e.occurredAt.getTime();
        expect((await reader.atTime(a, e.occurredAt)).state).toEqual(expectedAt(a, history, t));
      }
    }
  });
});
