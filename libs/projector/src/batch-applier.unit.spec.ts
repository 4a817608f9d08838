import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createLogger } from "@ctx/config";
import { type StoryId, streamVersion } from "@ctx/domain";
import { domainEvents, eventData } from "@ctx/domain/testing";
import {
  type EventStore,
  type ReadOptions,
  type RecordedEvent,
  streamSequence,
} from "@ctx/event-store";
import { ContextEventSchema } from "@ctx/proto";
import type { JetStreamClient } from "@nats-io/jetstream";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { BatchApplier } from "./batch-applier.ts";
import { createProjectorMetrics } from "./metrics.ts";
import { defaultParkingNames } from "./parking.ts";
import { MemoryProjection } from "./testing/index.ts";

const story = "s-gap" as StoryId;

/** A story's history as the store records it (sequence = version here). */
const history: RecordedEvent[] = domainEvents([
  eventData.contextCreated({ title: "T" }),
  eventData.subtaskAdded({ subtaskId: "a", title: "A" }),
  eventData.subtaskAdded({ subtaskId: "b", title: "B" }),
]).map((e) => ({
  ...e,
  sequence: streamSequence(e.version),
  storyId: story,
  eventId: `e${e.version}`,
  eventType: e.data.case as string,
  schemaVersion: 1,
  envelope: create(ContextEventSchema, {
    eventId: `e${e.version}`,
    storyId: story,
    version: e.version,
    occurredAt: timestampFromDate(e.occurredAt),
    eventType: e.data.case as string,
    schemaVersion: 1,
    payload: e.data,
  }),
}));

/**
 * A store of that history whose reads through any replica come from a follower that is behind (it
 * holds version 1 only); its leader's reads are whole. Only `read` is used by the applier.
 */
function storeWithLaggingReplica(): { store: EventStore; reads: string[] } {
  const reads: string[] = [];
  const read = async (_id: StoryId, options: ReadOptions = {}) => {
    reads.push(options.fromLeader ? "leader" : "any replica");
    const from = options.fromVersion ?? 1;
    const to = Math.min(options.toVersion ?? Number.POSITIVE_INFINITY, options.fromLeader ? 3 : 1);
    return history.filter((e) => e.version >= from && e.version <= to);
  };
  return { store: { read } as unknown as EventStore, reads };
}

describe("BatchApplier", () => {
  it("given a delivery after a gap and a replica behind the leader, when the batch is applied, then the leader's read fills the gap and the story is not marked stale", async () => {
    const projection = new MemoryProjection();
    await projection.init();
    const generation = await projection.activeGeneration();
    const { store, reads } = storeWithLaggingReplica();
    const applier = new BatchApplier({
      projection,
      store,
      js: {} as JetStreamClient,
      parking: defaultParkingNames,
      logger: createLogger({ name: "batch-applier-spec", level: "silent", pretty: false }),
      metrics: createProjectorMetrics(new Registry()),
    });
    // The model holds version 1; version 2 was lost on the way; version 3 is delivered.
    await applier.applyBatch(
      generation,
      0,
      { byStory: new Map([[story, [history[0] as RecordedEvent]]]), poisoned: new Map() },
      0,
      1,
    );
    await applier.applyBatch(
      generation,
      0,
      { byStory: new Map([[story, [history[2] as RecordedEvent]]]), poisoned: new Map() },
      1,
      3,
    );

    expect(reads).toEqual(["any replica", "leader"]);
    const read = await projection.readContext(generation, story);
    expect(read?.stale).toBe(false);
    expect(read?.version).toBe(streamVersion(3));
  });
});
