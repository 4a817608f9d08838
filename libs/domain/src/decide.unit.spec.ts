import { SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import {
  type Command,
  type ContextEventData,
  DomainRule,
  decide,
  decideAll,
  EntityAlreadyExistsError,
  EntityNotFoundError,
  evolve,
  fold,
  initialState,
  RuleViolationError,
  StoryAlreadyExistsError,
  StoryNotFoundError,
  storyId,
} from "./index.ts";
import { DeciderSpec, domainEvents, eventData } from "./testing/index.ts";

const story = storyId("s-1");
const spec = DeciderSpec.for({ decide, evolve, initialState: () => initialState(story) });

const { TODO, IN_PROGRESS, BLOCKED, DONE, UNSPECIFIED } = SubtaskStatus;

const created = eventData.contextCreated({ title: "Checkout", description: "One-page checkout" });
const archived = eventData.contextArchived({ reason: "shipped" });
const subtask = (subtaskId: string, ...dependsOn: string[]) =>
  eventData.subtaskAdded({ subtaskId, title: `Title of ${subtaskId}`, dependsOn });
const decision = (decisionId: string, ...affectsSubtaskIds: string[]) =>
  eventData.decisionAdded({
    decisionId,
    title: `Title of ${decisionId}`,
    rationale: "because",
    madeBy: "ada",
    affectsSubtaskIds,
  });
const superseded = (decisionId: string, supersededByDecisionId: string) =>
  eventData.decisionSuperseded({ decisionId, supersededByDecisionId });
const updated = (subtaskId: string, status: SubtaskStatus, assignee = "") =>
  eventData.subtaskUpdated({ subtaskId, status, assignee });
const dependency = (subtaskId: string, dependsOnSubtaskId: string) =>
  eventData.subtaskDependencyAdded({ subtaskId, dependsOnSubtaskId });

// One command of each type, valid on a story holding subtasks a, b and decisions d1, d2.
const oneOfEach: readonly Command[] = [
  {
    type: "AddDecision",
    decisionId: "d3",
    title: "T",
    rationale: "",
    madeBy: "ada",
    alternatives: [],
    affectsSubtaskIds: [],
  },
  { type: "SupersedeDecision", decisionId: "d1", supersededByDecisionId: "d2" },
  { type: "AddSubtask", subtaskId: "c", title: "C", dependsOn: [] },
  { type: "UpdateSubtask", subtaskId: "a", status: IN_PROGRESS },
  { type: "AddSubtaskDependency", subtaskId: "b", dependsOnSubtaskId: "a" },
  { type: "ArchiveContext", reason: "done" },
];
const populated = [created, subtask("a"), subtask("b"), decision("d1"), decision("d2")];

describe("decide: every command but CreateContext", () => {
  it.each(oneOfEach)("$type on a story that does not exist is StoryNotFound", (command) => {
    const error = spec.when(command).thenThrows(StoryNotFoundError, /^story "s-1" does not exist$/);
    expect(error.storyId).toBe("s-1");
  });

  it.each(oneOfEach.filter((c) => c.type !== "ArchiveContext"))(
    "$type on an archived story is the rule story_archived",
    (command) => {
      const error = spec
        .given([...populated, archived])
        .when(command)
        .thenThrows(
          RuleViolationError,
          new RegExp(
            `^cannot ${command.type}: story "s-1" is archived and accepts no further changes$`,
          ),
        );
      expect(error.rule).toBe(DomainRule.StoryArchived);
    },
  );

  it.each(oneOfEach)("$type on the same story before archiving is accepted", (command) => {
    expect(decide(command, fold(story, domainEvents(populated)))).toHaveLength(1);
  });
});

describe("decide CreateContext", () => {
  it("opens a story that does not exist", () => {
    spec
      .when({ type: "CreateContext", title: "Checkout", description: "One-page checkout" })
      .then([created]);
  });

  it("refuses a story that exists", () => {
    spec
      .given([created])
      .when({ type: "CreateContext", title: "Again", description: "" })
      .thenThrows(StoryAlreadyExistsError, /^story "s-1" already exists$/);
  });

  it("refuses an archived story too: ids are never reused", () => {
    spec
      .given([created, archived])
      .when({ type: "CreateContext", title: "Again", description: "" })
      .thenThrows(StoryAlreadyExistsError);
  });
});

describe("decide AddDecision", () => {
  const add = (decisionId: string, ...affectsSubtaskIds: string[]): Command => ({
    type: "AddDecision",
    decisionId,
    title: `Title of ${decisionId}`,
    rationale: "because",
    madeBy: "ada",
    alternatives: ["do nothing", "buy it"],
    affectsSubtaskIds,
  });

  it("records the decision with its alternatives and affected subtasks", () => {
    spec
      .given([created, subtask("a"), subtask("b")])
      .when(add("d1", "b", "a"))
      .then([
        eventData.decisionAdded({
          decisionId: "d1",
          title: "Title of d1",
          rationale: "because",
          madeBy: "ada",
          alternatives: ["do nothing", "buy it"],
          affectsSubtaskIds: ["b", "a"],
        }),
      ]);
  });

  it("refuses a taken decision id", () => {
    const error = spec
      .given([created, decision("d1")])
      .when(add("d1"))
      .thenThrows(EntityAlreadyExistsError, /^decision "d1" already exists in story "s-1"$/);
    expect([error.entity, error.id]).toEqual(["decision", "d1"]);
  });

  it("refuses to affect an unknown subtask", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(add("d1", "a", "zz"))
      .thenThrows(
        RuleViolationError,
        /^decision "d1" cannot affect subtask "zz": it does not exist in story "s-1"$/,
      );
    expect(error.rule).toBe(DomainRule.UnknownReference);
  });

  it("refuses to list an affected subtask twice", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(add("d1", "a", "a"))
      .thenThrows(RuleViolationError, /^decision "d1" lists subtask "a" more than once$/);
    expect(error.rule).toBe(DomainRule.DuplicateReference);
  });
});

describe("decide SupersedeDecision", () => {
  const supersede = (decisionId: string, by: string): Command => ({
    type: "SupersedeDecision",
    decisionId,
    supersededByDecisionId: by,
  });

  it("replaces an active decision by another active one", () => {
    spec
      .given([created, decision("d1"), decision("d2")])
      .when(supersede("d1", "d2"))
      .then([superseded("d1", "d2")]);
  });

  it("accepts a replacement that was itself added after a supersession", () => {
    spec
      .given([created, decision("d1"), decision("d2"), superseded("d1", "d2"), decision("d3")])
      .when(supersede("d2", "d3"))
      .then([superseded("d2", "d3")]);
  });

  it("refuses an unknown decision", () => {
    const error = spec
      .given([created, decision("d2")])
      .when(supersede("d1", "d2"))
      .thenThrows(EntityNotFoundError, /^decision "d1" does not exist in story "s-1"$/);
    expect([error.entity, error.id]).toEqual(["decision", "d1"]);
  });

  it("refuses an unknown replacement", () => {
    const error = spec
      .given([created, decision("d1")])
      .when(supersede("d1", "d9"))
      .thenThrows(
        RuleViolationError,
        /^decision "d1" cannot be superseded by decision "d9": it does not exist in story "s-1"$/,
      );
    expect(error.rule).toBe(DomainRule.UnknownReference);
  });

  it("refuses a decision superseding itself", () => {
    const error = spec
      .given([created, decision("d1")])
      .when(supersede("d1", "d1"))
      .thenThrows(RuleViolationError, /^decision "d1" cannot be superseded by itself$/);
    expect(error.rule).toBe(DomainRule.SelfReference);
  });

  it("refuses a decision that is already superseded", () => {
    const error = spec
      .given([created, decision("d1"), decision("d2"), decision("d3"), superseded("d1", "d2")])
      .when(supersede("d1", "d3"))
      .thenThrows(
        RuleViolationError,
        /^decision "d1" cannot be superseded: it is already superseded by "d2"$/,
      );
    expect(error.rule).toBe(DomainRule.DecisionNotActive);
  });

  it("refuses a replacement that is itself superseded", () => {
    const error = spec
      .given([created, decision("d1"), decision("d2"), decision("d3"), superseded("d2", "d3")])
      .when(supersede("d1", "d2"))
      .thenThrows(
        RuleViolationError,
        /^decision "d1" cannot be superseded by "d2": "d2" is itself superseded by "d3"$/,
      );
    expect(error.rule).toBe(DomainRule.DecisionNotActive);
  });
});

describe("decide AddSubtask", () => {
  const add = (subtaskId: string, ...dependsOn: string[]): Command => ({
    type: "AddSubtask",
    subtaskId,
    title: `Title of ${subtaskId}`,
    dependsOn,
  });

  it("adds a subtask without dependencies", () => {
    spec
      .given([created])
      .when(add("a"))
      .then([subtask("a")]);
  });

  it("adds a subtask depending on existing subtasks, in the given order", () => {
    spec
      .given([created, subtask("a"), subtask("b")])
      .when(add("c", "b", "a"))
      .then([subtask("c", "b", "a")]);
  });

  it("refuses a taken subtask id", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(add("a"))
      .thenThrows(EntityAlreadyExistsError, /^subtask "a" already exists in story "s-1"$/);
    expect([error.entity, error.id]).toEqual(["subtask", "a"]);
  });

  it("does not confuse decision ids with subtask ids", () => {
    spec
      .given([created, decision("x")])
      .when(add("x"))
      .then([subtask("x")]);
  });

  it("refuses an unknown dependency", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(add("b", "a", "zz"))
      .thenThrows(
        RuleViolationError,
        /^subtask "b" cannot depend on subtask "zz": it does not exist in story "s-1"$/,
      );
    expect(error.rule).toBe(DomainRule.UnknownReference);
  });

  it("refuses a dependency on itself", () => {
    const error = spec
      .given([created])
      .when(add("a", "a"))
      .thenThrows(RuleViolationError, /^subtask "a" cannot depend on itself$/);
    expect(error.rule).toBe(DomainRule.SelfReference);
  });

  it("refuses a dependency listed twice", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(add("b", "a", "a"))
      .thenThrows(RuleViolationError, /^subtask "b" lists dependency "a" more than once$/);
    expect(error.rule).toBe(DomainRule.DuplicateDependency);
  });
});

describe("decide UpdateSubtask", () => {
  const update = (subtaskId: string, change: { status?: SubtaskStatus; assignee?: string }) =>
    ({ type: "UpdateSubtask", subtaskId, ...change }) as const;
  // A subtask "a" in each status.
  const inStatus = (status: SubtaskStatus): ContextEventData[] => {
    const path: Record<number, SubtaskStatus[]> = {
      [TODO]: [],
      [IN_PROGRESS]: [IN_PROGRESS],
      [BLOCKED]: [BLOCKED],
      [DONE]: [IN_PROGRESS, DONE],
    };
    return [created, subtask("a"), ...(path[status] ?? []).map((s) => updated("a", s))];
  };

  const allowed: readonly [SubtaskStatus, SubtaskStatus][] = [
    [TODO, IN_PROGRESS],
    [TODO, BLOCKED],
    [IN_PROGRESS, TODO],
    [IN_PROGRESS, BLOCKED],
    [IN_PROGRESS, DONE],
    [BLOCKED, TODO],
    [BLOCKED, IN_PROGRESS],
    [DONE, IN_PROGRESS],
  ];
  const refused: readonly [SubtaskStatus, SubtaskStatus, string][] = [
    [TODO, DONE, "IN_PROGRESS, BLOCKED"],
    [BLOCKED, DONE, "TODO, IN_PROGRESS"],
    [DONE, TODO, "IN_PROGRESS"],
    [DONE, BLOCKED, "IN_PROGRESS"],
  ];

  it.each(allowed)("moves a subtask from %s to %s", (from, to) => {
    spec
      .given(inStatus(from))
      .when(update("a", { status: to }))
      .then([updated("a", to)]);
  });

  it.each(refused)("refuses to move a subtask from %s to %s", (from, to, options) => {
    const name = (s: SubtaskStatus) => SubtaskStatus[s];
    const error = spec
      .given(inStatus(from))
      .when(update("a", { status: to }))
      .thenThrows(
        RuleViolationError,
        new RegExp(
          `^subtask "a" cannot move from ${name(from)} to ${name(to)} \\(allowed from ${name(from)}: ${options}\\)$`,
        ),
      );
    expect(error.rule).toBe(DomainRule.InvalidStatusTransition);
  });

  it("assigns and unassigns, keeping the status, and carries both values", () => {
    spec
      .given(inStatus(BLOCKED))
      .when(update("a", { assignee: "grace" }))
      .then([updated("a", BLOCKED, "grace")]);
    spec
      .given([...inStatus(BLOCKED), updated("a", BLOCKED, "grace")])
      .when(update("a", { assignee: "" }))
      .then([updated("a", BLOCKED, "")]);
  });

  it("changes status and assignee at once", () => {
    spec
      .given(inStatus(TODO))
      .when(update("a", { status: IN_PROGRESS, assignee: "grace" }))
      .then([updated("a", IN_PROGRESS, "grace")]);
  });

  it("keeps the assignee when only the status changes", () => {
    spec
      .given([...inStatus(TODO), updated("a", TODO, "grace")])
      .when(update("a", { status: IN_PROGRESS }))
      .then([updated("a", IN_PROGRESS, "grace")]);
  });

  it("treats status UNSPECIFIED as unchanged", () => {
    spec
      .given(inStatus(DONE))
      .when(update("a", { status: UNSPECIFIED, assignee: "grace" }))
      .then([updated("a", DONE, "grace")]);
  });

  it("accepts the same status with a new assignee (not a transition)", () => {
    spec
      .given(inStatus(DONE))
      .when(update("a", { status: DONE, assignee: "grace" }))
      .then([updated("a", DONE, "grace")]);
  });

  it.each([
    ["the same status", { status: TODO }],
    ["the same assignee", { assignee: "grace" }],
    ["the same status and assignee", { status: TODO, assignee: "grace" }],
    ["status UNSPECIFIED", { status: UNSPECIFIED }],
    ["nothing", {}],
  ] as const)("is a no-op for %s", (_, change) => {
    spec
      .given([...inStatus(TODO), updated("a", TODO, "grace")])
      .when(update("a", change))
      .thenNothing();
  });

  it("refuses an unknown subtask", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(update("zz", { status: IN_PROGRESS }))
      .thenThrows(EntityNotFoundError, /^subtask "zz" does not exist in story "s-1"$/);
    expect([error.entity, error.id]).toEqual(["subtask", "zz"]);
  });

  it("lets a subtask become DONE when all its dependencies are DONE", () => {
    spec
      .given([
        ...inStatus(DONE),
        subtask("b"),
        updated("b", IN_PROGRESS),
        updated("b", DONE),
        subtask("c", "a", "b"),
        updated("c", IN_PROGRESS),
      ])
      .when(update("c", { status: DONE }))
      .then([updated("c", DONE)]);
  });

  it("refuses DONE while a dependency is not DONE, naming each pending one", () => {
    const error = spec
      .given([
        ...inStatus(DONE),
        subtask("b"),
        updated("b", BLOCKED),
        subtask("x"),
        subtask("c", "a", "b", "x"),
        updated("c", IN_PROGRESS),
      ])
      .when(update("c", { status: DONE }))
      .thenThrows(
        RuleViolationError,
        /^subtask "c" cannot be DONE before its dependencies: "b" is BLOCKED, "x" is TODO$/,
      );
    expect(error.rule).toBe(DomainRule.DependenciesNotDone);
  });

  it("considers dependencies added later", () => {
    spec
      .given([...inStatus(IN_PROGRESS), subtask("b"), dependency("a", "b")])
      .when(update("a", { status: DONE }))
      .thenThrows(RuleViolationError, /"b" is TODO$/);
  });

  it("lets a DONE subtask stay DONE when a dependency reopened (only the move to DONE is checked)", () => {
    spec
      .given([
        created,
        subtask("b"),
        updated("b", IN_PROGRESS),
        updated("b", DONE),
        subtask("a", "b"),
        updated("a", IN_PROGRESS),
        updated("a", DONE),
        updated("b", IN_PROGRESS),
      ])
      .when(update("a", { assignee: "grace" }))
      .then([updated("a", DONE, "grace")]);
  });
});

describe("decide AddSubtaskDependency", () => {
  const depend = (subtaskId: string, dependsOnSubtaskId: string): Command => ({
    type: "AddSubtaskDependency",
    subtaskId,
    dependsOnSubtaskId,
  });

  it("adds a dependency", () => {
    spec
      .given([created, subtask("a"), subtask("b")])
      .when(depend("b", "a"))
      .then([dependency("b", "a")]);
  });

  it("accepts a diamond (shared dependencies are not cycles)", () => {
    spec
      .given([created, subtask("a"), subtask("b", "a"), subtask("c", "a"), subtask("d", "b")])
      .when(depend("d", "c"))
      .then([dependency("d", "c")]);
  });

  it("refuses an unknown subtask", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(depend("zz", "a"))
      .thenThrows(EntityNotFoundError, /^subtask "zz" does not exist in story "s-1"$/);
    expect([error.entity, error.id]).toEqual(["subtask", "zz"]);
  });

  it("refuses an unknown dependency", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(depend("a", "zz"))
      .thenThrows(
        RuleViolationError,
        /^subtask "a" cannot depend on subtask "zz": it does not exist in story "s-1"$/,
      );
    expect(error.rule).toBe(DomainRule.UnknownReference);
  });

  it("refuses a dependency on itself", () => {
    const error = spec
      .given([created, subtask("a")])
      .when(depend("a", "a"))
      .thenThrows(RuleViolationError, /^subtask "a" cannot depend on itself$/);
    expect(error.rule).toBe(DomainRule.SelfReference);
  });

  it("refuses a dependency that is already there, from AddSubtask or a previous dependency", () => {
    for (const history of [
      [created, subtask("a"), subtask("b", "a")],
      [created, subtask("a"), subtask("b"), dependency("b", "a")],
    ]) {
      const error = spec
        .given(history)
        .when(depend("b", "a"))
        .thenThrows(RuleViolationError, /^subtask "b" already depends on "a"$/);
      expect(error.rule).toBe(DomainRule.DuplicateDependency);
    }
  });

  it("refuses a direct cycle", () => {
    const error = spec
      .given([created, subtask("a"), subtask("b", "a")])
      .when(depend("a", "b"))
      .thenThrows(
        RuleViolationError,
        /^subtask "a" cannot depend on "b": it would close the cycle b → a → b$/,
      );
    expect(error.rule).toBe(DomainRule.DependencyCycle);
  });

  it("refuses a longer cycle, naming it from the new dependency back to itself", () => {
    const error = spec
      .given([created, subtask("s-1"), subtask("s-2", "s-1"), subtask("s-3", "s-2")])
      .when(depend("s-1", "s-3"))
      .thenThrows(
        RuleViolationError,
        /^subtask "s-1" cannot depend on "s-3": it would close the cycle s-3 → s-2 → s-1 → s-3$/,
      );
    expect(error.rule).toBe(DomainRule.DependencyCycle);
  });

  it("accepts the reverse edge of a chain (same direction is no cycle)", () => {
    spec
      .given([created, subtask("s-1"), subtask("s-2", "s-1"), subtask("s-3", "s-2")])
      .when(depend("s-3", "s-1"))
      .then([dependency("s-3", "s-1")]);
  });

  it("names the cycle in the words of the brief: s-1 → s-2 → s-3 → s-1", () => {
    spec
      .given([created, subtask("s-3"), subtask("s-2", "s-3"), subtask("s-1", "s-2")])
      .when(depend("s-3", "s-1"))
      .thenThrows(
        RuleViolationError,
        /^subtask "s-3" cannot depend on "s-1": it would close the cycle s-1 → s-2 → s-3 → s-1$/,
      );
  });

  it("finds the cycle through a branch and reports the shortest of two", () => {
    spec
      .given([created, subtask("a"), subtask("b", "a"), subtask("c", "b"), subtask("d", "c", "a")])
      .when(depend("a", "d"))
      .thenThrows(RuleViolationError, /the cycle d → a → d$/);
  });
});

describe("decide ArchiveContext", () => {
  it("archives an open story", () => {
    spec.given(populated).when({ type: "ArchiveContext", reason: "shipped" }).then([archived]);
  });

  it("refuses to archive twice", () => {
    const error = spec
      .given([created, archived])
      .when({ type: "ArchiveContext", reason: "again" })
      .thenThrows(RuleViolationError, /^story "s-1" is already archived$/);
    expect(error.rule).toBe(DomainRule.StoryArchived);
  });
});

describe("decideAll", () => {
  const all = DeciderSpec.for({
    decide: decideAll,
    evolve,
    initialState: () => initialState(story),
  });

  it("decides each command against the state after the previous ones", () => {
    all
      .when([
        { type: "CreateContext", title: "Checkout", description: "One-page checkout" },
        { type: "AddSubtask", subtaskId: "a", title: "Title of a", dependsOn: [] },
        { type: "AddSubtask", subtaskId: "b", title: "Title of b", dependsOn: ["a"] },
        { type: "UpdateSubtask", subtaskId: "a", status: IN_PROGRESS },
        { type: "UpdateSubtask", subtaskId: "a", status: DONE, assignee: "grace" },
        { type: "UpdateSubtask", subtaskId: "b", status: IN_PROGRESS },
        { type: "UpdateSubtask", subtaskId: "b", status: DONE },
      ])
      .then([
        created,
        subtask("a"),
        subtask("b", "a"),
        updated("a", IN_PROGRESS),
        updated("a", DONE, "grace"),
        updated("b", IN_PROGRESS),
        updated("b", DONE),
      ]);
  });

  it("skips no-ops and returns nothing when every command is one", () => {
    all
      .given([created, subtask("a")])
      .when([
        { type: "UpdateSubtask", subtaskId: "a", status: TODO },
        { type: "UpdateSubtask", subtaskId: "a", assignee: "" },
      ])
      .thenNothing();
  });

  it("returns nothing for no commands", () => {
    all.given([created]).when([]).thenNothing();
  });

  it("is all or nothing: a refusal anywhere throws", () => {
    const error = all
      .given([created, subtask("a")])
      .when([
        { type: "AddSubtask", subtaskId: "b", title: "B", dependsOn: ["a"] },
        { type: "AddSubtaskDependency", subtaskId: "a", dependsOnSubtaskId: "b" },
        { type: "AddSubtask", subtaskId: "c", title: "C", dependsOn: [] },
      ])
      .thenThrows(RuleViolationError, /cycle b → a → b$/);
    expect(error.rule).toBe(DomainRule.DependencyCycle);
  });

  it("sees the effects of earlier commands in refusals too", () => {
    all
      .given([created])
      .when([
        { type: "AddSubtask", subtaskId: "a", title: "A", dependsOn: [] },
        { type: "AddSubtask", subtaskId: "a", title: "A again", dependsOn: [] },
      ])
      .thenThrows(EntityAlreadyExistsError, /^subtask "a" already exists/);
    all
      .given([created])
      .when([
        { type: "ArchiveContext", reason: "oops" },
        { type: "AddSubtask", subtaskId: "a", title: "A", dependsOn: [] },
      ])
      .thenThrows(RuleViolationError, /^cannot AddSubtask: story "s-1" is archived/);
  });

  it("leaves the given state untouched", () => {
    const state = fold(story, domainEvents([created, subtask("a")]));
    decideAll(
      [
        { type: "AddSubtask", subtaskId: "b", title: "B", dependsOn: [] },
        { type: "UpdateSubtask", subtaskId: "a", status: IN_PROGRESS },
      ],
      state,
    );
    expect([...state.subtasks.keys()]).toEqual(["a"]);
    expect(state.subtasks.get("a")?.status).toBe(TODO);
    expect(state.version).toBe(2);
  });
});
