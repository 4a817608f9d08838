import { type ContextEventData, fold, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { recorded } from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import {
  createNeo4jGraphReader,
  createNeo4jProjection,
  type GraphReader,
} from "@ctx/read-model-neo4j";
import { stack, uniqueName } from "@ctx/test-support";
import fc from "fast-check";
import neo4j, { type Driver } from "neo4j-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { affectedSubtasks, blockingSubtasks } from "./state-graph.ts";

// The stream fallback of the graph RPCs must answer exactly as the graph does: random stories
// (dependencies on earlier subtasks only, as the domain allows no cycle; random statuses; decisions
// affecting random subtasks) are projected into Neo4j and every question is asked of both.

const namespace = uniqueName("stategraph");
let driver: Driver;
let graph: GraphReader;
const projection = () => createNeo4jProjection(driver, { namespace });

beforeAll(async () => {
  const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
  driver = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
  await projection().init();
  graph = createNeo4jGraphReader(driver, { namespace });
});
afterAll(async () => {
  await projection().dropGeneration(1);
  await driver.close();
});

const statuses = [
  SubtaskStatus.TODO,
  SubtaskStatus.IN_PROGRESS,
  SubtaskStatus.BLOCKED,
  SubtaskStatus.DONE,
];

/** A story's events: subtasks t0..tn with dependencies on earlier ones, statuses, decisions. */
const storyEvents = fc
  .record({
    subtasks: fc.array(
      fc.record({
        dependsOn: fc.uniqueArray(fc.nat(), { maxLength: 3 }),
        status: fc.constantFrom(...statuses),
      }),
      { minLength: 1, maxLength: 12 },
    ),
    decisions: fc.array(fc.uniqueArray(fc.nat(), { maxLength: 3 }), { maxLength: 4 }),
  })
  .map(({ subtasks, decisions }): ContextEventData[] => {
    const events: ContextEventData[] = [eventData.contextCreated({ title: "random" })];
    subtasks.forEach((t, i) => {
      const dependsOn = i === 0 ? [] : [...new Set(t.dependsOn.map((d) => `t${d % i}`))];
      events.push(eventData.subtaskAdded({ subtaskId: `t${i}`, title: `T${i}`, dependsOn }));
    });
    subtasks.forEach((t, i) => {
      if (t.status !== SubtaskStatus.TODO) {
        events.push(eventData.subtaskUpdated({ subtaskId: `t${i}`, status: t.status }));
      }
    });
    decisions.forEach((affects, i) => {
      const ids = [...new Set(affects.map((a) => `t${a % subtasks.length}`))];
      events.push(
        eventData.decisionAdded({ decisionId: `d${i}`, title: `D${i}`, affectsSubtaskIds: ids }),
      );
    });
    return events;
  });

describe("graph questions from the stream and from Neo4j", () => {
  it("give the same answers on random stories", async () => {
    await fc.assert(
      fc.asyncProperty(storyEvents, async (data) => {
        const story = storyId(uniqueName("rnd"));
        const events = data.map((d, i) => recorded(story, i + 1, d));
        await projection().apply({
          generation: 1,
          partition: 0,
          checkpoint: events.length,
          stories: [{ storyId: story, expectedVersion: streamVersion(0), events }],
        });
        const state = fold(story, events);
        for (const decisionId of [...state.decisions.keys(), "none"]) {
          const fromGraph = await graph.subtasksAffectedBy(story, decisionId);
          expect(fromGraph.subtasks).toEqual(affectedSubtasks(state, decisionId));
        }
        for (const subtaskId of [...state.subtasks.keys(), "none"]) {
          const fromGraph = await graph.blockersOf(story, subtaskId);
          expect(fromGraph.subtasks).toEqual(blockingSubtasks(state, subtaskId));
        }
      }),
      { numRuns: 12 },
    );
  });
});
