import { DecisionStatus, SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import {
  type ContextEventData,
  ContextLifecycle,
  type ContextState,
  type DomainEvent,
  evolve,
  evolveAll,
  fold,
  initialState,
  storyId,
  streamVersion,
} from "./index.ts";
import { domainEvents, eventData, firstEventTime } from "./testing/index.ts";

const story = storyId("s-1");
const created = eventData.contextCreated({ title: "Checkout", description: "One-page checkout" });
const subtask = (subtaskId: string, ...dependsOn: string[]) =>
  eventData.subtaskAdded({ subtaskId, title: `Title of ${subtaskId}`, dependsOn });
const decision = (decisionId: string, ...affectsSubtaskIds: string[]) =>
  eventData.decisionAdded({
    decisionId,
    title: `Title of ${decisionId}`,
    rationale: "because",
    madeBy: "ada",
    alternatives: ["a1", "a2"],
    affectsSubtaskIds,
  });
const foldData = (data: readonly ContextEventData[]) => fold(story, domainEvents(data));
const minutes = (n: number) => new Date(firstEventTime.getTime() + n * 60_000);

describe("initialState", () => {
  it("is an absent story at version 0", () => {
    const state = initialState(story);
    expect(state).toEqual({
      storyId: "s-1",
      lifecycle: ContextLifecycle.Absent,
      title: "",
      description: "",
      version: 0,
      updatedAt: undefined,
      decisions: new Map(),
      subtasks: new Map(),
    });
  });
});

describe("evolve", () => {
  it("opens the story on ContextCreated and records version and time", () => {
    const state = foldData([created]);
    expect(state.lifecycle).toBe(ContextLifecycle.Open);
    expect([state.title, state.description]).toEqual(["Checkout", "One-page checkout"]);
    expect(state.version).toBe(1);
    expect(state.updatedAt).toEqual(firstEventTime);
  });

  it("adds an ACTIVE decision on DecisionAdded", () => {
    const state = foldData([created, subtask("a"), decision("d1", "a")]);
    expect(state.decisions.get("d1")).toEqual({
      decisionId: "d1",
      title: "Title of d1",
      rationale: "because",
      madeBy: "ada",
      alternatives: ["a1", "a2"],
      status: DecisionStatus.ACTIVE,
      affectsSubtaskIds: ["a"],
      supersededByDecisionId: "",
    });
  });

  it("marks a decision SUPERSEDED with its replacement on DecisionSuperseded", () => {
    const state = foldData([
      created,
      decision("d1"),
      decision("d2"),
      eventData.decisionSuperseded({ decisionId: "d1", supersededByDecisionId: "d2" }),
    ]);
    expect(state.decisions.get("d1")).toMatchObject({
      status: DecisionStatus.SUPERSEDED,
      supersededByDecisionId: "d2",
    });
    expect(state.decisions.get("d2")).toMatchObject({
      status: DecisionStatus.ACTIVE,
      supersededByDecisionId: "",
    });
  });

  it("adds an unassigned TODO subtask on SubtaskAdded", () => {
    const state = foldData([created, subtask("a"), subtask("b", "a")]);
    expect(state.subtasks.get("b")).toEqual({
      subtaskId: "b",
      title: "Title of b",
      status: SubtaskStatus.TODO,
      assignee: "",
      dependsOn: ["a"],
    });
  });

  it("sets status and assignee from SubtaskUpdated", () => {
    const state = foldData([
      created,
      subtask("a"),
      eventData.subtaskUpdated({
        subtaskId: "a",
        status: SubtaskStatus.IN_PROGRESS,
        assignee: "grace",
      }),
    ]);
    expect(state.subtasks.get("a")).toMatchObject({
      status: SubtaskStatus.IN_PROGRESS,
      assignee: "grace",
    });
  });

  it("appends a dependency on SubtaskDependencyAdded", () => {
    const state = foldData([
      created,
      subtask("a"),
      subtask("b"),
      subtask("c", "b"),
      eventData.subtaskDependencyAdded({ subtaskId: "c", dependsOnSubtaskId: "a" }),
    ]);
    expect(state.subtasks.get("c")?.dependsOn).toEqual(["b", "a"]);
  });

  it("counts EventsSetAside as a version and changes nothing else", () => {
    const open = foldData([created, subtask("a"), decision("d1")]);
    const state = evolve(open, {
      version: streamVersion(4),
      occurredAt: minutes(9),
      data: eventData.eventsSetAside({ reason: "garbage at 3", setAside: [{ sequence: 3n }] }),
    });
    expect(state).toEqual({ ...open, version: 4, updatedAt: minutes(9) });
  });

  it("archives on ContextArchived and keeps everything else", () => {
    const open = foldData([created, subtask("a"), decision("d1")]);
    const state = evolve(open, {
      version: streamVersion(4),
      occurredAt: minutes(9),
      data: eventData.contextArchived({ reason: "shipped" }),
    });
    expect(state).toEqual({
      ...open,
      lifecycle: ContextLifecycle.Archived,
      version: 4,
      updatedAt: minutes(9),
    });
  });

  it("keeps decisions and subtasks in creation order, whatever changes them later", () => {
    const state = foldData([
      created,
      subtask("z"),
      decision("d9"),
      subtask("a"),
      decision("d1"),
      eventData.subtaskUpdated({ subtaskId: "z", status: SubtaskStatus.BLOCKED }),
      eventData.decisionSuperseded({ decisionId: "d9", supersededByDecisionId: "d1" }),
      subtask("m"),
    ]);
    expect([...state.subtasks.keys()]).toEqual(["z", "a", "m"]);
    expect([...state.decisions.keys()]).toEqual(["d9", "d1"]);
  });

  it("never changes the state it is given, and shares the map an event does not touch", () => {
    const before = foldData([created, subtask("a"), decision("d1")]);
    const subtasks = [...before.subtasks.entries()];
    const after = evolve(before, {
      version: streamVersion(4),
      occurredAt: minutes(3),
      data: eventData.subtaskDependencyAdded({ subtaskId: "a", dependsOnSubtaskId: "b" }),
    });
    expect([...before.subtasks.entries()]).toEqual(subtasks);
    expect(before.version).toBe(3);
    expect(after.subtasks).not.toBe(before.subtasks);
    expect(after.decisions).toBe(before.decisions);
  });

  it("copies the event's lists, so a message changed later does not change the state", () => {
    const added = decision("d1", "a");
    const state = foldData([created, subtask("a"), added]);
    added.value.alternatives.push("late");
    added.value.affectsSubtaskIds.length = 0;
    expect(state.decisions.get("d1")).toMatchObject({
      alternatives: ["a1", "a2"],
      affectsSubtaskIds: ["a"],
    });
  });

  describe("is tolerant: events are facts", () => {
    const base = foldData([created, subtask("a"), decision("d1")]);
    const next = (data: ContextEventData): ContextState =>
      evolve(base, { version: streamVersion(4), occurredAt: minutes(3), data });

    it.each([
      eventData.decisionSuperseded({ decisionId: "d-unknown", supersededByDecisionId: "d1" }),
      eventData.subtaskUpdated({ subtaskId: "s-unknown", status: SubtaskStatus.DONE }),
      eventData.subtaskDependencyAdded({ subtaskId: "s-unknown", dependsOnSubtaskId: "a" }),
    ])("an event about an unknown entity only advances the version (%#)", (data) => {
      expect(next(data)).toEqual({ ...base, version: 4, updatedAt: minutes(3) });
    });

    it("records a self-dependency that decide never emits, as it happened", () => {
      const data = eventData.subtaskDependencyAdded({ subtaskId: "a", dependsOnSubtaskId: "a" });
      expect(next(data).subtasks.get("a")?.dependsOn).toEqual(["a"]);
    });

    it("keeps references to unknown entities as they are", () => {
      const state = next(decision("d2", "s-unknown"));
      expect(state.decisions.get("d2")?.affectsSubtaskIds).toEqual(["s-unknown"]);
    });

    it("does not list a dependency twice", () => {
      const state = foldData([
        created,
        subtask("a"),
        subtask("b", "a"),
        eventData.subtaskDependencyAdded({ subtaskId: "b", dependsOnSubtaskId: "a" }),
      ]);
      expect(state.subtasks.get("b")?.dependsOn).toEqual(["a"]);
    });

    it("skips a payload case it does not know, but counts its version", () => {
      const unknown = { case: "somethingNew", value: {} } as unknown as ContextEventData;
      expect(next(unknown)).toEqual({ ...base, version: 4, updatedAt: minutes(3) });
    });

    it("applies events after archiving", () => {
      const state = foldData([created, eventData.contextArchived(), subtask("late")]);
      expect(state.lifecycle).toBe(ContextLifecycle.Archived);
      expect([...state.subtasks.keys()]).toEqual(["late"]);
    });
  });
});

describe("fold", () => {
  const history = [
    created,
    subtask("a"),
    subtask("b", "a"),
    decision("d1", "a", "b"),
    decision("d2"),
    eventData.decisionSuperseded({ decisionId: "d1", supersededByDecisionId: "d2" }),
    eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.IN_PROGRESS, assignee: "x" }),
    eventData.contextArchived({ reason: "done" }),
  ];

  it("equals evolving event by event", () => {
    const events = domainEvents(history);
    const stepwise = events.reduce<ContextState>(
      (state, event) => evolve(state, event),
      initialState(story),
    );
    const folded = fold(story, events);
    expect(folded).toEqual(stepwise);
    expect([...folded.subtasks.keys()]).toEqual([...stepwise.subtasks.keys()]);
    expect(folded.version).toBe(history.length);
    expect(folded.updatedAt).toEqual(minutes(history.length - 1));
  });

  it("of no events is the initial state", () => {
    expect(fold(story, [])).toEqual(initialState(story));
  });

  it("takes any iterable, e.g. a generator", () => {
    function* events(): Generator<DomainEvent> {
      yield* domainEvents(history);
    }
    expect(fold(story, events())).toEqual(fold(story, domainEvents(history)));
  });

  it("resumes from a state with evolveAll, as from a snapshot", () => {
    const events = domainEvents(history);
    const snapshot = fold(story, events.slice(0, 4));
    const resumed = evolveAll(snapshot, events.slice(4));
    expect(resumed).toEqual(fold(story, events));
    expect(snapshot.version).toBe(4);
    expect(snapshot.decisions.get("d1")?.status).toBe(DecisionStatus.ACTIVE);
  });

  it("folds a 10,000-event story with the same result as evolve", () => {
    const data: ContextEventData[] = [created];
    for (let i = 0; i < 3333; i++) {
      data.push(subtask(`t${i}`, ...(i > 0 ? [`t${i - 1}`] : [])));
      data.push(
        eventData.subtaskUpdated({ subtaskId: `t${i}`, status: SubtaskStatus.IN_PROGRESS }),
      );
      data.push(decision(`d${i}`, `t${i}`));
    }
    const events = domainEvents(data);
    const folded = fold(story, events);
    expect(folded.version).toBe(10_000);
    expect(folded.subtasks.size).toBe(3333);
    expect(folded.decisions.size).toBe(3333);
    const last = events.at(-1) as DomainEvent;
    const previous = fold(story, events.slice(0, -1));
    expect(evolve(previous, last)).toEqual(folded);
  });
});
