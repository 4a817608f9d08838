import { storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { recorded, sampleHistory } from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { entityStatements } from "./apply-plan.ts";
import { generationKeys } from "./graph-keys.ts";
import { planEvents } from "./write-plan.ts";

const keys = generationKeys("unit", 3);

describe("planEvents", () => {
  it("writes any number of stories and events with at most one statement per kind of row", () => {
    const stories = Array.from({ length: 200 }, (_, i) => storyId(`s-${i}`));
    const plan = planEvents(
      keys,
      stories.map((s) => ({
        storyId: s,
        expectedVersion: streamVersion(0),
        events: sampleHistory(s),
      })),
    );
    expect(plan.stories).toHaveLength(200);
    expect(plan.subtasks).toHaveLength(600);
    expect(entityStatements(3, plan).length).toBeLessThanOrEqual(5);
  });

  it("folds a subtask's events in the batch into one row, in event order", () => {
    const s = storyId("fold");
    const events = [
      eventData.subtaskAdded({ subtaskId: "a", title: "A" }),
      eventData.subtaskAdded({ subtaskId: "b", dependsOn: ["a"] }),
      eventData.subtaskUpdated({
        subtaskId: "b",
        status: SubtaskStatus.IN_PROGRESS,
        assignee: "x",
      }),
      eventData.subtaskUpdated({ subtaskId: "b", status: SubtaskStatus.BLOCKED, assignee: "y" }),
      eventData.subtaskDependencyAdded({ subtaskId: "b", dependsOnSubtaskId: "a" }),
    ].map((d, i) => recorded(s, i + 3, d));
    const plan = planEvents(keys, [{ storyId: s, expectedVersion: streamVersion(2), events }]);
    expect(plan.subtasks).toEqual([
      expect.objectContaining({ key: "unit|3|fold|a", position: 3, status: "TODO" }),
      expect.objectContaining({
        key: "unit|3|fold|b",
        position: 4,
        status: "BLOCKED",
        assignee: "y",
        dependsOn: ["a"],
        dependsOnKeys: ["unit|3|fold|a"],
      }),
    ]);
    expect(plan.stories).toEqual([
      {
        key: "unit|3|fold",
        id: "fold",
        expected: 2,
        version: 7,
        updatedAt: expect.any(Number),
        props: {},
      },
    ]);
  });

  it("turns changes of nodes from earlier batches into patches", () => {
    const s = storyId("patch");
    const events = [
      eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.DONE, assignee: "x" }),
      eventData.subtaskDependencyAdded({ subtaskId: "a", dependsOnSubtaskId: "z" }),
      eventData.decisionSuperseded({ decisionId: "d", supersededByDecisionId: "e" }),
    ].map((d, i) => recorded(s, i + 6, d));
    const plan = planEvents(keys, [{ storyId: s, expectedVersion: streamVersion(5), events }]);
    expect(plan.subtasks).toEqual([]);
    expect(plan.subtaskPatches).toEqual([
      {
        key: "unit|3|patch|a",
        status: "DONE",
        assignee: "x",
        addDependsOn: ["z"],
        addDependsOnKeys: ["unit|3|patch|z"],
      },
    ]);
    expect(plan.decisionPatches).toEqual([{ key: "unit|3|patch|d", supersededBy: "e" }]);
    expect(plan.supersessions).toEqual([{ key: "unit|3|patch|d", by: "unit|3|patch|e" }]);
  });

  it("refuses events that do not follow the expected version, and a story given twice", () => {
    const s = storyId("gap");
    const events = sampleHistory(s);
    const attempt = (expected: number, versions: number[]) => () =>
      planEvents(keys, [
        {
          storyId: s,
          expectedVersion: streamVersion(expected),
          events: events.filter((e) => versions.includes(e.version)),
        },
      ]);
    expect(attempt(0, [1, 3])).toThrow(RangeError);
    expect(attempt(1, [3])).toThrow(RangeError);
    expect(attempt(2, [3])).not.toThrow();
    const once = { storyId: s, expectedVersion: streamVersion(0), events: [] };
    expect(() => planEvents(keys, [once, once])).toThrow(RangeError);
  });
});
