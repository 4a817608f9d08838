import { create } from "@bufbuild/protobuf";
import { type ContextEventData, storyId, streamVersion } from "@ctx/domain";
import { SubtaskAddedSchema } from "@ctx/proto";
import { connectTestNats, uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { partitionCountOf } from "./event-stream.ts";
import {
  ConcurrencyError,
  createEventStore,
  type EventStreamSettings,
  parseStoredSubject,
  provisionEventStream,
  storyPartition,
} from "./index.ts";
import { testStreamSettings } from "./testing/index.ts";

// Appends name the story's partition in their expectation once the store knows the stream's
// partition count. These check that the partition is the one the server computes, and that a wrong
// count (a stream recreated with another count under a running store) costs one retry, not a lost
// update.

const subtask = (id: string): ContextEventData => ({
  case: "subtaskAdded",
  value: create(SubtaskAddedSchema, { subtaskId: id, title: `Subtask ${id}` }),
});

let nc: NatsConnection;
let jsm: JetStreamManager;
let settings: EventStreamSettings;

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  settings = { ...testStreamSettings(uniqueName("PARTS")), partitions: 16 };
  await provisionEventStream(jsm, settings);
});

afterAll(async () => {
  await jsm.streams.delete(settings.stream).catch(() => undefined);
  await nc.close();
});

describe("storyPartition", () => {
  it("is the partition the stream's subject transform stores a story's events in", async () => {
    const store = createEventStore(nc, { names: settings });
    const stories = Array.from({ length: 40 }, (_, i) => storyId(`${uniqueName("p")}-${i}`));
    for (const story of stories) await store.append(story, [{ data: subtask("a") }], "any");
    for (const story of stories) {
      const [event] = await store.readStored(story);
      const stored = await jsm.direct.getMessage(settings.stream, { seq: Number(event?.sequence) });
      expect(parseStoredSubject(settings, stored?.subject ?? "").partition, story).toBe(
        storyPartition(story, settings.partitions),
      );
    }
  });

  it("reads the count only from a stream partitioned as provisioned", async () => {
    const info = await jsm.streams.info(settings.stream);
    expect(partitionCountOf(info.config, settings.subjectPrefix)).toBe(16);
    expect(partitionCountOf(info.config, "other.prefix")).toBeUndefined();
    expect(partitionCountOf({}, settings.subjectPrefix)).toBeUndefined();
  });
});

describe("an append whose expectation names a wrong partition", () => {
  it("is retried over every partition, and conflicts are still conflicts", async () => {
    const store = createEventStore(nc, { names: settings });
    // A story whose partition differs between 16 and 4 partitions.
    let story = storyId(uniqueName("moved"));
    while (storyPartition(story, 16) === storyPartition(story, 4)) {
      story = storyId(uniqueName("moved"));
    }
    await store.append(storyId(uniqueName("first")), [{ data: subtask("a") }], "any");

    // The stream is recreated with 4 partitions; the store still believes 16.
    await jsm.streams.delete(settings.stream);
    settings = { ...settings, partitions: 4 };
    await provisionEventStream(jsm, settings);

    const first = await store.append(story, [{ data: subtask("a") }], streamVersion(0));
    expect(first.version).toBe(1);
    const second = await store.append(story, [{ data: subtask("b") }], streamVersion(1));
    expect(second.version).toBe(2);
    const events = await store.read(story);
    expect(events.map((e) => e.version)).toEqual([1, 2]);

    // With the filter over every partition, a stale expectation is refused as before.
    const other = createEventStore(nc, { names: settings });
    await other.append(story, [{ data: subtask("c") }], streamVersion(2));
    await expect(
      store.append(story, [{ data: subtask("d") }], streamVersion(2)),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    expect((await store.read(story)).map((e) => e.version)).toEqual([1, 2, 3]);
  });
});
