import { fold, storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { recorded } from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { affectedSubtasks, blockingSubtasks } from "./state-graph.ts";

// The story of @ctx/read-model-neo4j's graph reader spec, with the same expected answers
// (x → y: x depends on y):  a ← b ← d ← e,  a ← c ← d,  f ← g;  d1 affects a, d2 b and f, d3 g.
const { TODO, IN_PROGRESS, DONE } = SubtaskStatus;
const story = storyId("graph");
const history = [
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
const state = fold(
  story,
  history.map((d, i) => recorded(story, i + 1, d)),
);
const at = (subtaskId: string, title: string, depth: number, status = TODO) => ({
  subtaskId,
  title,
  status,
  depth,
});

describe("graph questions on a folded story", () => {
  it("finds what a decision affects, through every dependent, at its shortest depth", () => {
    expect(affectedSubtasks(state, "d1")).toEqual([
      at("a", "A", 1),
      at("b", "B", 2),
      at("c", "C", 2),
      at("d", "D", 3),
      at("e", "E", 4),
    ]);
    expect(affectedSubtasks(state, "d2")).toEqual([
      at("b", "B", 1),
      at("f", "F", 1),
      at("d", "D", 2),
      at("g", "G", 2),
      at("e", "E", 3),
    ]);
    expect(affectedSubtasks(state, "d3")).toEqual([at("g", "G", 1)]);
  });

  it("finds the subtasks that are not DONE among everything a subtask depends on", () => {
    expect(blockingSubtasks(state, "e")).toEqual([
      at("d", "D", 1),
      at("b", "B", 2),
      at("c", "C", 2),
      at("a", "A", 3),
    ]);
    expect(blockingSubtasks(state, "g")).toEqual([at("f", "F", 1)]);
    expect(blockingSubtasks(state, "a")).toEqual([]);
  });

  it("walks through DONE subtasks to what is behind them", () => {
    const later = fold(
      story,
      [
        ...history,
        eventData.subtaskUpdated({ subtaskId: "a", status: IN_PROGRESS }),
        eventData.subtaskUpdated({ subtaskId: "b", status: DONE }),
        eventData.subtaskUpdated({ subtaskId: "c", status: IN_PROGRESS }),
      ].map((d, i) => recorded(story, i + 1, d)),
    );
    expect(blockingSubtasks(later, "e")).toEqual([
      at("d", "D", 1),
      at("c", "C", 2, IN_PROGRESS),
      at("a", "A", 3, IN_PROGRESS),
    ]);
    expect(affectedSubtasks(later, "d1")?.[0]).toEqual(at("a", "A", 1, IN_PROGRESS));
  });

  it("tells an unknown decision or subtask from an empty answer", () => {
    expect(affectedSubtasks(state, "nope")).toBeUndefined();
    expect(blockingSubtasks(state, "nope")).toBeUndefined();
  });
});
