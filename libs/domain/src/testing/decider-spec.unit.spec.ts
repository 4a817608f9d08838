import { describe, expect, it } from "vitest";
import {
  type Command,
  decide,
  evolve,
  initialState,
  RuleViolationError,
  StoryNotFoundError,
  storyId,
} from "../index.ts";
import { DeciderSpec, eventData } from "./index.ts";

const spec = DeciderSpec.for({ decide, evolve, initialState: () => initialState(storyId("s-1")) });
const create: Command = { type: "CreateContext", title: "T", description: "" };

// The helper is only useful if it fails when it should.
describe("DeciderSpec", () => {
  it("passes when the events are equal", () => {
    spec.when(create).then([eventData.contextCreated({ title: "T" })]);
  });

  it("fails with a field-by-field diff of the payloads when the events differ", () => {
    let failure: unknown;
    try {
      spec.when(create).then([eventData.contextCreated({ title: "U" })]);
    } catch (e) {
      failure = e;
    }
    expect(failure).toMatchObject({
      actual: [{ contextCreated: { title: "T", description: "" } }],
      expected: [{ contextCreated: { title: "U", description: "" } }],
    });
  });

  it("fails thenNothing when events are produced", () => {
    expect(() => spec.when(create).thenNothing()).toThrow();
  });

  it("folds the given events before deciding", () => {
    spec
      .given([eventData.contextCreated({ title: "T" }), eventData.subtaskAdded({ subtaskId: "a" })])
      .when({ type: "UpdateSubtask", subtaskId: "a", assignee: "" })
      .thenNothing();
  });

  it("returns the thrown error for further checks", () => {
    const error = spec
      .when({ type: "ArchiveContext", reason: "" })
      .thenThrows(StoryNotFoundError, /does not exist/);
    expect(error.storyId).toBe("s-1");
  });

  it("fails thenThrows when nothing is thrown, showing what was decided", () => {
    expect(() => spec.when(create).thenThrows(StoryNotFoundError)).toThrow(
      /expected StoryNotFoundError to be thrown, but decide returned .*contextCreated/s,
    );
  });

  it("fails thenThrows on another error class or another message", () => {
    const archive: Command = { type: "ArchiveContext", reason: "" };
    expect(() => spec.when(archive).thenThrows(RuleViolationError)).toThrow();
    expect(() => spec.when(archive).thenThrows(StoryNotFoundError, /archived/)).toThrow();
  });
});
