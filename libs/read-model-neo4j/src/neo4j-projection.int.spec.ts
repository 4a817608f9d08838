import { createServer } from "node:net";
import { fold, type StoryId, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import type { RecordedEvent } from "@ctx/event-store";
import {
  isStoreUnavailableError,
  isVersionConflictError,
  type ProjectionBatch,
} from "@ctx/projector";
import {
  expectedContext,
  projectionContract,
  recorded,
  sampleHistory,
} from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import { stack, uniqueName } from "@ctx/test-support";
import neo4j, { type Driver } from "neo4j-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNeo4jGraphReader } from "./neo4j-graph-reader.ts";
import { createNeo4jProjection } from "./neo4j-projection.ts";

let driver: Driver | undefined;
function testDriver(): Driver {
  if (driver === undefined) {
    const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
    driver = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
  }
  return driver;
}
afterAll(async () => {
  await driver?.close();
});

projectionContract("neo4j", async () =>
  createNeo4jProjection(testDriver(), { namespace: uniqueName("contract") }),
);

const newStory = (prefix: string) => storyId(uniqueName(prefix));

/** Versions 1, 2, … of a story, from payloads. */
const history = (story: StoryId, data: ReadonlyArray<RecordedEvent["data"]>) =>
  data.map((d, i) => recorded(story, i + 1, d));

/** The events of several stories as one batch, each story starting after `from` of its events. */
const batchOf = (
  generation: number,
  checkpoint: number,
  stories: ReadonlyArray<{ story: StoryId; events: readonly RecordedEvent[]; from?: number }>,
): ProjectionBatch => ({
  generation,
  partition: 0,
  checkpoint,
  stories: stories.map(({ story, events, from = 0 }) => ({
    storyId: story,
    expectedVersion: streamVersion(from),
    events: events.slice(from),
  })),
});

describe("Neo4j projection", () => {
  const namespace = uniqueName("projection");
  const generation = 1;

  it("writes a batch of several stories with several events each, in order per story", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    await projection.init();
    const [s1, s2, s3] = [newStory("mixed"), newStory("mixed"), newStory("mixed")];
    const one = history(s1, [
      eventData.contextCreated({ title: "one" }),
      eventData.subtaskAdded({ subtaskId: "a", title: "A" }),
      eventData.subtaskUpdated({
        subtaskId: "a",
        status: SubtaskStatus.IN_PROGRESS,
        assignee: "bo",
      }),
      eventData.subtaskAdded({ subtaskId: "b", title: "B", dependsOn: ["a"] }),
      eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.DONE, assignee: "bo" }),
      eventData.decisionAdded({ decisionId: "d1", title: "D1", affectsSubtaskIds: ["a", "b"] }),
    ]);
    const two = history(s2, [
      eventData.contextCreated({ title: "two" }),
      eventData.subtaskAdded({ subtaskId: "x" }),
      eventData.subtaskAdded({ subtaskId: "y" }),
      eventData.subtaskDependencyAdded({ subtaskId: "y", dependsOnSubtaskId: "x" }),
      eventData.decisionAdded({ decisionId: "p", affectsSubtaskIds: ["x"] }),
      eventData.decisionAdded({ decisionId: "q", affectsSubtaskIds: ["y"] }),
      eventData.decisionSuperseded({ decisionId: "p", supersededByDecisionId: "q" }),
      eventData.contextArchived({ reason: "done" }),
    ]);
    const three = history(s3, [eventData.contextCreated({ title: "three" })]);

    await projection.apply(
      batchOf(generation, 100, [
        { story: s1, events: one },
        { story: s2, events: two },
        { story: s3, events: three },
      ]),
    );

    for (const [story, events] of [
      [s1, one],
      [s2, two],
      [s3, three],
    ] as const) {
      const read = await projection.readContext(generation, story);
      expect(read?.version).toBe(events.length);
      expect(read?.context).toEqual(expectedContext(story, events));
    }
    const reader = createNeo4jGraphReader(testDriver(), { namespace });
    expect((await reader.storyGraph(s1))?.edges).toEqual([
      { type: "AFFECTS", from: "d1", to: "a" },
      { type: "AFFECTS", from: "d1", to: "b" },
      { type: "DEPENDS_ON", from: "b", to: "a" },
    ]);
    expect((await reader.storyGraph(s2))?.edges).toEqual([
      { type: "AFFECTS", from: "p", to: "x" },
      { type: "AFFECTS", from: "q", to: "y" },
      { type: "DEPENDS_ON", from: "y", to: "x" },
      { type: "SUPERSEDES", from: "q", to: "p" },
    ]);
    expect(await projection.checkpoint(generation, 0)).toBe(100);
  });

  it("equals the fold wherever a history is cut into batches", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    const cuts = [[1, 2, 3], [4, 7], [5, 6, 9], [8]];
    for (const cut of cuts) {
      const story = newStory("cut");
      const events = sampleHistory(story);
      let from = 0;
      for (const to of [...cut, events.length]) {
        await projection.apply(
          batchOf(generation, to, [{ story, events: events.slice(0, to), from }]),
        );
        from = to;
      }
      expect((await projection.readContext(generation, story))?.context).toEqual(
        expectedContext(story, events),
      );
    }
  });

  it("applies events about unknown or repeated ids exactly as evolve does", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    const story = newStory("odd");
    // Streams decide never writes, but an old or repaired stream may hold: evolve accepts them.
    const events = history(story, [
      eventData.contextCreated({ title: "odd" }),
      eventData.subtaskUpdated({ subtaskId: "ghost", status: SubtaskStatus.DONE }),
      eventData.decisionSuperseded({ decisionId: "ghost", supersededByDecisionId: "x" }),
      eventData.subtaskDependencyAdded({ subtaskId: "ghost", dependsOnSubtaskId: "a" }),
      eventData.subtaskAdded({ subtaskId: "a", title: "first" }),
      eventData.subtaskAdded({ subtaskId: "b", dependsOn: ["a", "nowhere"] }),
      eventData.subtaskDependencyAdded({ subtaskId: "b", dependsOnSubtaskId: "a" }),
      eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.BLOCKED, assignee: "al" }),
      eventData.decisionAdded({ decisionId: "d", affectsSubtaskIds: ["b"] }),
      eventData.decisionSuperseded({ decisionId: "d", supersededByDecisionId: "e" }),
      eventData.subtaskAdded({ subtaskId: "a", title: "again" }),
      eventData.decisionAdded({ decisionId: "d", title: "again", affectsSubtaskIds: ["a"] }),
      eventData.subtaskDependencyAdded({ subtaskId: "a", dependsOnSubtaskId: "b" }),
      eventData.contextArchived(),
      eventData.contextCreated({ title: "reopened" }),
    ]);
    for (const cut of [4, 9, 12]) {
      const other = newStory("odd");
      const rebased = events.map((e) => recorded(other, e.version, e.data));
      await projection.apply(
        batchOf(generation, 1, [{ story: other, events: rebased.slice(0, cut) }]),
      );
      await projection.apply(
        batchOf(generation, 2, [{ story: other, events: rebased, from: cut }]),
      );
      expect((await projection.readContext(generation, other))?.context).toEqual(
        expectedContext(other, rebased),
      );
    }
    await projection.apply(batchOf(generation, 3, [{ story, events }]));
    expect((await projection.readContext(generation, story))?.context).toEqual(
      expectedContext(story, events),
    );
  });

  it("lets exactly one of two concurrent writers of a story through", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    const story = newStory("race");
    const events = sampleHistory(story);
    const writers = [events.slice(0, 3), events.slice(0, 5)].map((mine) =>
      projection.apply(batchOf(generation, 1, [{ story, events: mine }])),
    );
    const [first, second] = await Promise.allSettled(writers);
    const outcomes = [first?.status, second?.status].sort();
    expect(outcomes).toEqual(["fulfilled", "rejected"]);
    const refused = [first, second].find((r) => r?.status === "rejected");
    expect(refused?.status === "rejected" && isVersionConflictError(refused.reason)).toBe(true);
    const read = await projection.readContext(generation, story);
    expect(read?.context).toEqual(expectedContext(story, events.slice(0, read?.version ?? 0)));
  });

  it("keeps the stored checkpoint when a batch carries a lower one", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    const partition = 7;
    await projection.apply({ generation, partition, checkpoint: 50, stories: [] });
    await projection.apply({ generation, partition, checkpoint: 40, stories: [] });
    expect(await projection.checkpoint(generation, partition)).toBe(50);
  });

  it("refuses a batch whose events do not follow the expected version", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    const story = newStory("gap");
    const events = sampleHistory(story);
    const gap = projection.apply(
      batchOf(generation, 1, [{ story, events: [events[0], events[2]].filter((e) => !!e) }]),
    );
    await expect(gap).rejects.toThrow(RangeError);
    expect(await projection.readContext(generation, story)).toBeUndefined();
  });

  it("replaces a story's nodes whole, leaving nothing of what it held before", async () => {
    const projection = createNeo4jProjection(testDriver(), { namespace });
    const story = newStory("replace");
    const events = sampleHistory(story);
    await projection.apply(batchOf(generation, 1, [{ story, events }]));
    // A newer state with less in it (a replacement never goes back in version).
    const smaller = { ...fold(story, events.slice(0, 3)), version: streamVersion(11) };
    await projection.replaceStory(generation, smaller);
    const read = await projection.readContext(generation, story);
    expect(read?.version).toBe(11);
    expect(read?.context).toEqual(expectedContext(story, events.slice(0, 3)));
    const reader = createNeo4jGraphReader(testDriver(), { namespace });
    expect((await reader.storyGraph(story))?.edges).toEqual([
      { type: "DEPENDS_ON", from: "b", to: "a" },
    ]);
  });
});

describe("Neo4j projection during an outage", () => {
  /** A port nothing listens on: the OS picks it, and it is closed again at once. */
  const closedPort = () =>
    new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.on("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
      });
    });

  let down: Driver;
  beforeAll(async () => {
    down = neo4j.driver(`bolt://127.0.0.1:${await closedPort()}`, neo4j.auth.basic("neo4j", ""), {
      connectionTimeout: 500,
      connectionAcquisitionTimeout: 1_000,
      maxTransactionRetryTime: 500,
    });
  });
  afterAll(async () => {
    await down.close();
  });

  it("rejects writes and reads with StoreUnavailableError instead of hanging", async () => {
    const projection = createNeo4jProjection(down, { namespace: uniqueName("down") });
    const story = newStory("down");
    const apply = projection.apply(batchOf(1, 1, [{ story, events: sampleHistory(story) }]));
    await expect(apply).rejects.toSatisfy(isStoreUnavailableError);
    await expect(projection.positions(1, [story])).rejects.toSatisfy(isStoreUnavailableError);
    await expect(projection.init()).rejects.toSatisfy(isStoreUnavailableError);
  }, 15_000);
});
