import { type StoryId, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import type { RecordedEvent } from "@ctx/event-store";
import type { Projection } from "@ctx/projector";
import { recorded } from "@ctx/projector/testing";
import { DecisionStatus, SubtaskStatus } from "@ctx/proto";
import { eventually, stack, startTcpProxy, uniqueName } from "@ctx/test-support";
import neo4j, { type Driver } from "neo4j-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNeo4jGraphReader, type GraphReader } from "./neo4j-graph-reader.ts";
import { createNeo4jProjection } from "./neo4j-projection.ts";

// The story of every test here, as a dependency graph (x → y: x depends on y):
//
//   a ← b ← d ← e        d depends on b and c: a diamond over a
//   a ← c ← d            f ← g: a separate chain
//
// Decision d1 affects a; d2 affects b and f; d3 affects g and supersedes d1.
const TODO = SubtaskStatus.TODO;
const dependencies = [
  eventData.contextCreated({ title: "graph" }),
  eventData.subtaskAdded({ subtaskId: "a", title: "A" }),
  eventData.subtaskAdded({ subtaskId: "b", title: "B", dependsOn: ["a"] }),
  eventData.subtaskAdded({ subtaskId: "c", title: "C", dependsOn: ["a"] }),
  eventData.subtaskAdded({ subtaskId: "d", title: "D", dependsOn: ["b"] }),
  eventData.subtaskDependencyAdded({ subtaskId: "d", dependsOnSubtaskId: "c" }),
  eventData.subtaskAdded({ subtaskId: "e", title: "E", dependsOn: ["d"] }),
  eventData.subtaskAdded({ subtaskId: "f", title: "F" }),
  eventData.subtaskAdded({ subtaskId: "g", title: "G", dependsOn: ["f"] }),
  eventData.decisionAdded({ decisionId: "d1", title: "D1", affectsSubtaskIds: ["a"] }),
  eventData.decisionAdded({ decisionId: "d2", title: "D2", affectsSubtaskIds: ["b", "f"] }),
  eventData.decisionAdded({ decisionId: "d3", title: "D3", affectsSubtaskIds: ["g"] }),
  eventData.decisionSuperseded({ decisionId: "d1", supersededByDecisionId: "d3" }),
];

const at = (subtaskId: string, title: string, depth: number, status = TODO) => ({
  subtaskId,
  title,
  status,
  depth,
});

describe("Neo4j graph reader", () => {
  const namespace = uniqueName("reader");
  let driver: Driver;
  let projection: Projection;
  let reader: GraphReader;
  let story: StoryId;
  let events: RecordedEvent[];

  const append = async (data: RecordedEvent["data"][]) => {
    const next = data.map((d, i) => recorded(story, events.length + i + 1, d));
    await projection.apply({
      generation: 1,
      partition: 0,
      checkpoint: events.length + next.length,
      stories: [{ storyId: story, expectedVersion: streamVersion(events.length), events: next }],
    });
    events.push(...next);
  };

  beforeAll(async () => {
    const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
    driver = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
    projection = createNeo4jProjection(driver, { namespace });
    await projection.init();
    reader = createNeo4jGraphReader(driver, { namespace });
    story = storyId(uniqueName("graph"));
    events = [];
    await append(dependencies);
  });
  afterAll(async () => {
    await projection.dropGeneration(1);
    await projection.dropGeneration(2);
    await driver.close();
  });

  it("finds what a decision affects, through every dependent, at its shortest depth", async () => {
    expect((await reader.subtasksAffectedBy(story, "d1")).subtasks).toEqual([
      at("a", "A", 1),
      at("b", "B", 2),
      at("c", "C", 2),
      at("d", "D", 3),
      at("e", "E", 4),
    ]);
    expect((await reader.subtasksAffectedBy(story, "d2")).subtasks).toEqual([
      at("b", "B", 1),
      at("f", "F", 1),
      at("d", "D", 2),
      at("g", "G", 2),
      at("e", "E", 3),
    ]);
    expect((await reader.subtasksAffectedBy(story, "d3")).subtasks).toEqual([at("g", "G", 1)]);
  });

  it("finds the subtasks that are not DONE among everything a subtask depends on", async () => {
    expect((await reader.blockersOf(story, "e")).subtasks).toEqual([
      at("d", "D", 1),
      at("b", "B", 2),
      at("c", "C", 2),
      at("a", "A", 3),
    ]);
    expect((await reader.blockersOf(story, "g")).subtasks).toEqual([at("f", "F", 1)]);
    expect((await reader.blockersOf(story, "a")).subtasks).toEqual([]);
  });

  it("tells an unknown story, decision or subtask from an empty answer", async () => {
    expect((await reader.subtasksAffectedBy(story, "nope")).subtasks).toBeUndefined();
    expect((await reader.blockersOf(story, "nope")).subtasks).toBeUndefined();
    expect(await reader.subtasksAffectedBy(storyId(uniqueName("none")), "d1")).toEqual({
      version: 0,
      stale: false,
      subtasks: undefined,
    });
    expect(await reader.storyGraph(storyId(uniqueName("none")))).toBeUndefined();
  });

  it("returns a story's nodes and relationships in creation order", async () => {
    const graph = await reader.storyGraph(story);
    expect(graph?.version).toBe(events.length);
    expect(graph?.stale).toBe(false);
    expect(graph?.subtasks.map((s) => s.subtaskId)).toEqual(["a", "b", "c", "d", "e", "f", "g"]);
    expect(graph?.decisions).toEqual([
      { decisionId: "d1", title: "D1", status: DecisionStatus.SUPERSEDED },
      { decisionId: "d2", title: "D2", status: DecisionStatus.ACTIVE },
      { decisionId: "d3", title: "D3", status: DecisionStatus.ACTIVE },
    ]);
    expect(graph?.edges).toEqual([
      { type: "AFFECTS", from: "d1", to: "a" },
      { type: "AFFECTS", from: "d2", to: "b" },
      { type: "AFFECTS", from: "d2", to: "f" },
      { type: "AFFECTS", from: "d3", to: "g" },
      { type: "DEPENDS_ON", from: "b", to: "a" },
      { type: "DEPENDS_ON", from: "c", to: "a" },
      { type: "DEPENDS_ON", from: "d", to: "b" },
      { type: "DEPENDS_ON", from: "d", to: "c" },
      { type: "DEPENDS_ON", from: "e", to: "d" },
      { type: "DEPENDS_ON", from: "g", to: "f" },
      { type: "SUPERSEDES", from: "d3", to: "d1" },
    ]);
  });

  it("answers with the story's version, and says when the story is stale", async () => {
    expect(await reader.blockersOf(story, "g")).toEqual({
      version: events.length,
      stale: false,
      subtasks: [at("f", "F", 1)],
    });
    // A projector parked one of its events.
    const other = storyId(uniqueName("stale"));
    await projection.apply({
      generation: 1,
      partition: 0,
      checkpoint: 2,
      stories: [
        {
          storyId: other,
          expectedVersion: streamVersion(0),
          events: dependencies.slice(0, 2).map((d, i) => recorded(other, i + 1, d)),
        },
      ],
    });
    expect((await reader.subtasksAffectedBy(other, "d1")).stale).toBe(false);
    await projection.markStale(1, other, "version 3 parked: no upcaster");
    expect(await reader.subtasksAffectedBy(other, "d1")).toEqual({
      version: 2,
      stale: true,
      subtasks: undefined,
    });
    expect((await reader.blockersOf(other, "a")).stale).toBe(true);
  });

  it("sees status changes, and DONE subtasks stop blocking", async () => {
    const { IN_PROGRESS, DONE } = SubtaskStatus;
    await append([
      eventData.subtaskUpdated({ subtaskId: "a", status: IN_PROGRESS, assignee: "ana" }),
      eventData.subtaskUpdated({ subtaskId: "a", status: DONE, assignee: "ana" }),
      eventData.subtaskUpdated({ subtaskId: "c", status: IN_PROGRESS, assignee: "bo" }),
    ]);
    expect((await reader.blockersOf(story, "e")).subtasks).toEqual([
      at("d", "D", 1),
      at("b", "B", 2),
      at("c", "C", 2, IN_PROGRESS),
    ]);
    expect((await reader.subtasksAffectedBy(story, "d1")).subtasks?.[0]).toEqual(
      at("a", "A", 1, DONE),
    );
  });

  it("answers from the active generation", async () => {
    // Generation 2 holds only the start of the story: no decisions yet.
    await projection.apply({
      generation: 2,
      partition: 0,
      checkpoint: 1,
      stories: [{ storyId: story, expectedVersion: streamVersion(0), events: events.slice(0, 3) }],
    });
    expect((await reader.subtasksAffectedBy(story, "d1")).subtasks).toHaveLength(5);
    await projection.activateGeneration(2);
    expect((await reader.subtasksAffectedBy(story, "d1")).subtasks).toBeUndefined();
    expect((await reader.blockersOf(story, "b")).subtasks).toEqual([at("a", "A", 1)]);
    await projection.activateGeneration(1);
    expect((await reader.subtasksAffectedBy(story, "d1")).subtasks).toHaveLength(5);
  });
});

describe("Neo4j graph reader, cut short", () => {
  const namespace = uniqueName("cut");
  let driver: Driver;
  let story: StoryId;

  /** Transactions open at the server with this metadata marker. */
  const openTransactions = async (marker: string): Promise<number> => {
    const result = await driver.executeQuery(
      "SHOW TRANSACTIONS YIELD metaData WHERE metaData.marker = $marker RETURN count(*) AS open",
      { marker },
    );
    return Number(result.records[0]?.get("open"));
  };

  beforeAll(async () => {
    const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
    driver = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
    const projection = createNeo4jProjection(driver, { namespace });
    await projection.init();
    story = storyId(uniqueName("graph"));
    await projection.apply({
      generation: 1,
      partition: 0,
      checkpoint: dependencies.length,
      stories: [
        {
          storyId: story,
          expectedVersion: streamVersion(0),
          events: dependencies.map((d, i) => recorded(story, i + 1, d)),
        },
      ],
    });
  });
  afterAll(async () => {
    await createNeo4jProjection(driver, { namespace }).dropGeneration(1);
    await driver.close();
  });

  it("ends the transaction at the server when the read is aborted while the answer is on its way", async () => {
    const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
    const target = new URL(neo4jUrl);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const proxied = neo4j.driver(
      `bolt://127.0.0.1:${proxy.port}`,
      neo4j.auth.basic(neo4jUser, neo4jPassword),
    );
    try {
      const reader = createNeo4jGraphReader(proxied, { namespace });
      expect((await reader.blockersOf(story, "e")).subtasks).toHaveLength(4);
      // Neo4j answers, but nothing reaches the driver: the read waits with its transaction open.
      proxy.hold();
      const marker = uniqueName("tx");
      const controller = new AbortController();
      const read = reader.blockersOf(story, "e", {
        signal: controller.signal,
        metadata: { marker },
      });
      await eventually(async () => expect(await openTransactions(marker)).toBe(1));
      controller.abort(new Error("the call was cancelled"));
      await expect(read).rejects.toThrow("the call was cancelled");
      await eventually(async () => expect(await openTransactions(marker)).toBe(0));
      // An aborted signal stops a read before it starts.
      await expect(reader.blockersOf(story, "e", { signal: controller.signal })).rejects.toThrow(
        "the call was cancelled",
      );
    } finally {
      proxy.release();
      await proxied.close();
      await proxy.close();
    }
  });
});
