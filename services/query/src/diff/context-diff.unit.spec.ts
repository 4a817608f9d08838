import { evolveAll, fold, initialState, storyId } from "@ctx/domain";
import { domainEvents, eventData } from "@ctx/domain/testing";
import { DecisionStatus, SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { diffContexts } from "./context-diff.ts";

const story = storyId("s-1");
const history = domainEvents([
  eventData.contextCreated({ title: "T", description: "D" }),
  eventData.subtaskAdded({ subtaskId: "a", title: "A" }),
  eventData.subtaskAdded({ subtaskId: "b", title: "B" }),
  eventData.decisionAdded({ decisionId: "d1", title: "D1" }),
  // -- the earlier point: version 4 --
  eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.IN_PROGRESS, assignee: "x" }),
  eventData.subtaskDependencyAdded({ subtaskId: "b", dependsOnSubtaskId: "a" }),
  eventData.subtaskAdded({ subtaskId: "c", title: "C", dependsOn: ["a"] }),
  eventData.decisionAdded({ decisionId: "d2", title: "D2" }),
  eventData.decisionSuperseded({ decisionId: "d1", supersededByDecisionId: "d2" }),
  eventData.decisionAdded({ decisionId: "d3", title: "D3" }),
  eventData.decisionAdded({ decisionId: "d4", title: "D4" }),
  eventData.decisionSuperseded({ decisionId: "d3", supersededByDecisionId: "d4" }),
  eventData.contextArchived({ reason: "done" }),
]);

describe("context diff", () => {
  it("names what was added, superseded and changed, in creation order", () => {
    const before = fold(story, history.slice(0, 4));
    const after = evolveAll(before, history.slice(4));
    const diff = diffContexts(before, after);

    expect(diff.decisionsAdded.map((d) => d.decisionId)).toEqual(["d2", "d3", "d4"]);
    expect(diff.decisionsSuperseded.map((d) => [d.decisionId, d.supersededByDecisionId])).toEqual([
      ["d1", "d2"],
      ["d3", "d4"],
    ]);
    expect(diff.decisionsSuperseded.every((d) => d.status === DecisionStatus.SUPERSEDED)).toBe(
      true,
    );
    expect(diff.subtasksAdded.map((s) => s.subtaskId)).toEqual(["c"]);
    expect(
      diff.subtasksChanged.map((c) => ({
        id: c.subtaskId,
        before: [c.before?.status, c.before?.assignee, c.before?.dependsOn],
        after: [c.after?.status, c.after?.assignee, c.after?.dependsOn],
      })),
    ).toEqual([
      {
        id: "a",
        before: [SubtaskStatus.TODO, "", []],
        after: [SubtaskStatus.IN_PROGRESS, "x", []],
      },
      { id: "b", before: [SubtaskStatus.TODO, "", []], after: [SubtaskStatus.TODO, "", ["a"]] },
    ]);
    expect(diff.storyChanged).toBe(true);
  });

  it("is empty between a state and itself", () => {
    const state = fold(story, history.slice(0, 6));
    expect(diffContexts(state, state)).toEqual({
      decisionsAdded: [],
      decisionsSuperseded: [],
      subtasksAdded: [],
      subtasksChanged: [],
      storyChanged: false,
    });
  });

  it("from before the story existed, everything is added and the story changed", () => {
    const after = fold(story, history.slice(0, 4));
    const diff = diffContexts(initialState(story), after);
    expect(diff.decisionsAdded).toHaveLength(1);
    expect(diff.subtasksAdded).toHaveLength(2);
    expect(diff.storyChanged).toBe(true);
  });

  it("does not count a status-only change of the story as nothing", () => {
    const before = fold(story, history.slice(0, 12));
    const diff = diffContexts(before, evolveAll(before, history.slice(12)));
    expect(diff).toMatchObject({ storyChanged: true, decisionsAdded: [], subtasksChanged: [] });
  });
});
