import { createLogger } from "@ctx/config";
import { type StoryId, storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  provisionEventStream,
} from "@ctx/event-store";
import { testStreamSettings } from "@ctx/event-store/testing";
import type { BackoffSettings } from "@ctx/projector";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createSnapshotStore,
  createSnapshotter,
  provisionSnapshotStream,
  type SnapshotStreamNames,
  type Snapshotter,
  type SnapshotterOptions,
} from "./index.ts";

// The snapshotter waits out outages with the projectors' back-off policy (exponential, jittered,
// capped), not with a fixed one-second pause: checked on the delays it chose, never on the clock.

const INTERVAL = 3;
const backoff: BackoffSettings = { initialDelayMs: 20, maxDelayMs: 300, halfOpenAfterMs: 200 };

let nc: NatsConnection;
let jsm: JetStreamManager;
const streams: string[] = [];
const running: Snapshotter[] = [];

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

afterAll(async () => {
  for (const stream of streams) await jsm.streams.delete(stream).catch(() => undefined);
  await nc.close();
});

function names(): { events: EventStreamSettings; snapshots: SnapshotStreamNames } {
  const name = uniqueName("SNAPPER");
  const events = testStreamSettings(name);
  const snapshots = { stream: `${name}_SNAP`, subjectPrefix: `${name.toLowerCase()}_snap` };
  streams.push(events.stream, snapshots.stream);
  return { events, snapshots };
}

/** The snapshot stream, as `ctx provision` makes it on one server. */
function provisionSnapshots(snapshotNames: SnapshotStreamNames) {
  return provisionSnapshotStream(jsm, { ...snapshotNames, replicas: 1, duplicateWindowMs: 60_000 });
}

/** A snapshotter on the test connection with the test's back-off, started, and stopped after the test. */
async function startSnapshotter(
  options: Omit<SnapshotterOptions, "nc" | "backoff">,
): Promise<Snapshotter> {
  const snapshotter = createSnapshotter({ nc, backoff, ...options });
  running.push(snapshotter);
  await snapshotter.start();
  return snapshotter;
}

/** A logger whose `level` calls are recorded: the delays the snapshotter chose, in order. */
function recordingLogger(level: "warn" | "debug", message: RegExp) {
  const logger = createLogger({ name: "snapshotter-int", level: "silent", pretty: false });
  const spy = vi.spyOn(logger, level);
  const delays = () =>
    spy.mock.calls
      .filter(([, msg]) => typeof msg === "string" && message.test(msg))
      .map(([fields]) => (fields as { delay?: unknown }).delay)
      .filter((d): d is number => typeof d === "number");
  return { logger, delays };
}

async function writeStory(store: EventStore, versions: number): Promise<StoryId> {
  const id = storyId(uniqueName("story"));
  const events = Array.from({ length: versions }, (_, i) => ({
    data: i === 0 ? eventData.contextCreated() : eventData.subtaskAdded({ subtaskId: `s${i}` }),
  }));
  await store.append(id, events, ExpectedVersion.NoStory);
  return id;
}

/** The waits grew from the first delay (jittered, so not exactly doubling) and never passed the cap. */
function expectBackoff(delays: readonly number[]): void {
  expect(delays.length).toBeGreaterThanOrEqual(6);
  for (const d of delays) expect(d).toBeLessThanOrEqual(backoff.maxDelayMs as number);
  expect(Math.max(...delays)).toBeGreaterThanOrEqual(4 * (backoff.initialDelayMs as number));
  expect(new Set(delays).size).toBeGreaterThan(1);
}

describe("snapshotter back-off", () => {
  it("waits out a snapshot stream that is not there with growing waits, then writes the snapshot", async () => {
    const { events, snapshots: snapshotNames } = names();
    await provisionEventStream(jsm, events);
    const store = createEventStore(nc, { names: events });
    // The snapshot stream is missing: every lookup and write finds no responder (an outage).
    const snapshots = createSnapshotStore(nc, snapshotNames, {
      interval: INTERVAL,
      timeoutMs: 500,
    });
    const { logger, delays } = recordingLogger("warn", /a stream is unavailable; retrying/);
    const snapshotter = await startSnapshotter({
      store,
      snapshots,
      logger,
      consumerName: uniqueName("snapper"),
    });
    const story = await writeStory(store, INTERVAL);

    await eventually(() => expect(delays().length).toBeGreaterThanOrEqual(8), { timeout: 30_000 });
    expectBackoff(delays());

    // The stream comes: the event it kept trying is snapshotted, nothing was skipped.
    await provisionSnapshots(snapshotNames);
    await eventually(
      async () => expect((await snapshots.atOrBeforeVersion(story, INTERVAL))?.version).toBe(3),
      { timeout: 30_000 },
    );
    await eventually(async () => expect(await snapshotter.lag()).toBe(0), { timeout: 30_000 });
  });

  it("stops at once while it waits for a stream to come back, handing the event back", async () => {
    const { events, snapshots: snapshotNames } = names();
    await provisionEventStream(jsm, events);
    const store = createEventStore(nc, { names: events });
    const snapshots = createSnapshotStore(nc, snapshotNames, {
      interval: INTERVAL,
      timeoutMs: 500,
    });
    const { logger, delays } = recordingLogger("warn", /a stream is unavailable; retrying/);
    const consumerName = uniqueName("snapper");
    // Long waits: a stop that waited for the next attempt would not end within the test.
    const slow = { initialDelayMs: 60_000, maxDelayMs: 60_000, halfOpenAfterMs: 60_000 };
    const snapshotter = createSnapshotter({
      nc,
      store,
      snapshots,
      logger,
      backoff: slow,
      consumerName,
    });
    await snapshotter.start();
    await writeStory(store, INTERVAL);
    await eventually(() => expect(delays().length).toBeGreaterThanOrEqual(1), { timeout: 20_000 });
    await snapshotter.stop();
    // Not acknowledged, not terminated: it is still to be done.
    const info = await jsm.consumers.info(events.stream, consumerName);
    expect(info.ack_floor.stream_seq).toBeLessThan(INTERVAL);
  }, 20_000);

  it("reopens its consumer with growing waits until the event stream exists", async () => {
    const { events, snapshots: snapshotNames } = names();
    await provisionSnapshots(snapshotNames);
    const store = createEventStore(nc, { names: events });
    const snapshots = createSnapshotStore(nc, snapshotNames, { interval: INTERVAL });
    const { logger, delays } = recordingLogger("debug", /reopening its consumer/);
    await startSnapshotter({ store, snapshots, logger, consumerName: uniqueName("snapper") });

    await eventually(() => expect(delays().length).toBeGreaterThanOrEqual(8), { timeout: 30_000 });
    expectBackoff(delays());

    await provisionEventStream(jsm, events);
    const story = await writeStory(store, INTERVAL);
    await eventually(
      async () => expect((await snapshots.atOrBeforeVersion(story, INTERVAL))?.version).toBe(3),
      { timeout: 30_000 },
    );
  });
});

describe("snapshotter pulls", () => {
  it("asks its consumer for a bounded number of bytes, not only of messages", async () => {
    const { events, snapshots: snapshotNames } = names();
    await provisionEventStream(jsm, events);
    await provisionSnapshots(snapshotNames);
    const store = createEventStore(nc, { names: events });
    const snapshots = createSnapshotStore(nc, snapshotNames, { interval: INTERVAL });
    const consumerName = uniqueName("snapper");
    // The pull requests as the server gets them (the test identity may watch the JetStream API).
    const pulls: { batch?: number; max_bytes?: number }[] = [];
    const watch = nc.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${events.stream}.${consumerName}`, {
      callback: (_, msg) => {
        pulls.push(msg.json());
      },
    });
    try {
      const logger = createLogger({ name: "snapshotter-int", level: "silent", pretty: false });
      await startSnapshotter({ store, snapshots, logger, consumerName });
      const story = await writeStory(store, INTERVAL);
      await eventually(async () =>
        expect((await snapshots.atOrBeforeVersion(story, INTERVAL))?.version).toBe(INTERVAL),
      );
      expect(pulls.length).toBeGreaterThan(0);
      for (const pull of pulls) {
        expect(pull.max_bytes).toBeGreaterThan(0);
        expect(pull.max_bytes).toBeLessThanOrEqual(16 * 1024 * 1024);
      }
    } finally {
      watch.unsubscribe();
    }
  });
});
