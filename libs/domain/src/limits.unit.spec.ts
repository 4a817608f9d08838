import { type DescMessage, toBinary } from "@bufbuild/protobuf";
import { ContextEventSchema, ContextSchema, SubtaskStatus } from "@ctx/proto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AddDecision, AddSubtask } from "./command.ts";
import {
  type Command,
  CommandLimit,
  CommandTooLargeError,
  type ContextEventData,
  type ContextState,
  DomainRule,
  decideAll,
  decideWithin,
  defaultStoryLimits,
  eventPayloadSize,
  evolve,
  evolveAll,
  initialState,
  isCommandTooLargeError,
  isDomainError,
  isStoryLimitError,
  type MeasuredStory,
  measureChange,
  measureStory,
  StoryLimitError,
  type StoryLimits,
  storyId,
  streamVersion,
  toContextMessage,
} from "./index.ts";
import { utf8Length } from "./limits.ts";
import { DeciderSpec, domainEvents, eventData } from "./testing/index.ts";

const story = storyId("s-1");
const encodedSize = (state: ContextState) =>
  toBinary(ContextSchema, toContextMessage(state)).length;
const unlimited: StoryLimits = {
  changesPerCommand: Number.MAX_SAFE_INTEGER,
  eventBytes: Number.MAX_SAFE_INTEGER,
  decisions: Number.MAX_SAFE_INTEGER,
  subtasks: Number.MAX_SAFE_INTEGER,
  dependencies: Number.MAX_SAFE_INTEGER,
  contextBytes: Number.MAX_SAFE_INTEGER,
};

/** The story after `events`, measured from scratch. */
function measured(events: readonly ContextEventData[]): MeasuredStory {
  const state = evolveAll(initialState(story), domainEvents(events));
  return { state, measure: measureStory(state) };
}

/** A decider whose decide is decideWithin one command under `limits`, for given/when/then specs. */
const within = (limits: Partial<StoryLimits>) =>
  DeciderSpec.for<Command, ContextState>({
    decide: (command, state) =>
      decideWithin(
        [command],
        { state, measure: measureStory(state) },
        {
          ...unlimited,
          ...limits,
        },
      ).events,
    evolve,
    initialState: () => initialState(story),
  });

const created = eventData.contextCreated({ title: "T" });
const subtask = (subtaskId: string, dependsOn: string[] = []) =>
  eventData.subtaskAdded({ subtaskId, title: subtaskId, dependsOn });
const decision = (decisionId: string) =>
  eventData.decisionAdded({ decisionId, title: decisionId, madeBy: "ada" });
const addSubtask = (subtaskId: string, dependsOn: string[] = []): AddSubtask => ({
  type: "AddSubtask",
  subtaskId,
  title: subtaskId,
  dependsOn,
});
const addDecision = (decisionId: string, rationale = ""): AddDecision => ({
  type: "AddDecision",
  decisionId,
  title: decisionId,
  rationale,
  madeBy: "ada",
  alternatives: [],
  affectsSubtaskIds: [],
});

// Random changes of a story: few ids, so they collide; long texts in any UTF-16, lone surrogates too.
const few = fc.constantFrom("a", "b", "c", "ü", "日本", "🙂");
const long = fc.string({ unit: "binary", maxLength: 300, size: "medium" });
const randomCommand: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record({
        decisionId: few,
        rationale: long,
        affects: fc.subarray(["a", "b"], { maxLength: 1 }),
      })
      .map(
        ({ decisionId, rationale, affects }): Command => ({
          ...addDecision(decisionId, rationale),
          alternatives: [rationale, ""],
          affectsSubtaskIds: affects,
        }),
      ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ decisionId: few, by: few }).map(
      ({ decisionId, by }): Command => ({
        type: "SupersedeDecision",
        decisionId,
        supersededByDecisionId: by,
      }),
    ),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ subtaskId: few, title: long, dependsOn: fc.subarray(["a", "ü"], { maxLength: 1 }) })
      .map(
        ({ subtaskId, title, dependsOn }): Command => ({
          ...addSubtask(subtaskId, dependsOn),
          title,
        }),
      ),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        subtaskId: few,
        status: fc.constantFrom(1, 2, 3, 4) as fc.Arbitrary<SubtaskStatus>,
        assignee: fc.option(long),
      })
      .map(
        ({ subtaskId, status, assignee }): Command => ({
          type: "UpdateSubtask",
          subtaskId,
          status,
          ...(assignee === null ? {} : { assignee }),
        }),
      ),
  },
  {
    weight: 3,
    arbitrary: fc.record({ subtaskId: few, on: few }).map(
      ({ subtaskId, on }): Command => ({
        type: "AddSubtaskDependency",
        subtaskId,
        dependsOnSubtaskId: on,
      }),
    ),
  },
  { weight: 1, arbitrary: fc.constant<Command>({ type: "ArchiveContext", reason: "done" }) },
);
// Mostly one command per change (a change with a refused command is refused whole).
const randomChanges = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(randomCommand) },
    { weight: 1, arbitrary: fc.array(randomCommand, { minLength: 2, maxLength: 4 }) },
  ),
  { minLength: 5, maxLength: 40, size: "max" },
);

describe("sizes", () => {
  // Any UTF-16 string, lone surrogates included (TextEncoder writes those as U+FFFD).
  const text = fc.string({ unit: "binary", maxLength: 40 });
  const anyText = fc.oneof(
    text,
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  );

  it("counts a string's UTF-8 bytes as TextEncoder writes them", () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(anyText, (s) => {
        expect(utf8Length(s)).toBe(encoder.encode(s).length);
      }),
    );
  });

  it("sizes every payload as toBinary encodes it", () => {
    const status = fc.constantFrom(0, 1, 4, 99, -1) as fc.Arbitrary<SubtaskStatus>;
    const ids = fc.array(text, { maxLength: 4 });
    const payload: fc.Arbitrary<ContextEventData> = fc.oneof(
      fc.record({ title: text, description: text }).map((v) => eventData.contextCreated(v)),
      fc
        .record({
          decisionId: text,
          title: text,
          rationale: text,
          madeBy: text,
          alternatives: ids,
          affectsSubtaskIds: ids,
        })
        .map((v) => eventData.decisionAdded(v)),
      fc
        .record({ decisionId: text, supersededByDecisionId: text })
        .map((v) => eventData.decisionSuperseded(v)),
      fc
        .record({ subtaskId: text, title: text, dependsOn: ids })
        .map((v) => eventData.subtaskAdded(v)),
      fc
        .record({ subtaskId: text, status, assignee: text })
        .map((v) => eventData.subtaskUpdated(v)),
      fc
        .record({ subtaskId: text, dependsOnSubtaskId: text })
        .map((v) => eventData.subtaskDependencyAdded(v)),
      fc.record({ reason: text }).map((v) => eventData.contextArchived(v)),
    );
    fc.assert(
      fc.property(payload, (data) => {
        const schema = ContextEventSchema.field[data.case].message as DescMessage;
        expect(eventPayloadSize(data)).toBe(toBinary(schema, data.value).length);
      }),
    );
  });

  it("measures a story as toBinary encodes its context, from scratch and event by event", () => {
    fc.assert(
      fc.property(long, randomChanges, (title, all) => {
        let current: MeasuredStory = measured([]);
        const first = [{ type: "CreateContext", title, description: title } as Command];
        for (const commands of [first, ...all]) {
          try {
            current = decideWithin(commands, current, unlimited);
          } catch (e) {
            if (!isDomainError(e)) throw e;
            continue;
          }
          expect(current.measure).toEqual(measureStory(current.state));
          expect(current.measure.bytes).toBe(encodedSize(current.state));
        }
      }),
    );
  });

  it("measures the events a store returns the same way (a cache catching up)", () => {
    const before = measured([created, subtask("a"), decision("d")]);
    const events = domainEvents([
      created,
      subtask("a"),
      decision("d"),
      subtask("b", ["a"]),
      eventData.subtaskUpdated({
        subtaskId: "a",
        status: SubtaskStatus.IN_PROGRESS,
        assignee: "ü",
      }),
      eventData.subtaskDependencyAdded({ subtaskId: "a", dependsOnSubtaskId: "c" }),
      eventData.decisionSuperseded({ decisionId: "d", supersededByDecisionId: "e" }),
      eventData.contextArchived({ reason: "r" }),
    ]).slice(3);
    const after = evolveAll(before.state, events);
    const measure = measureChange(
      before.state,
      after,
      events.map((e) => e.data),
      before.measure,
    );
    expect(measure).toEqual({ bytes: encodedSize(after), dependencies: 2 });
  });
});

describe("decideWithin", () => {
  it("decides what decideAll decides, and returns the story after it", () => {
    const start = measured([created, subtask("a")]);
    const commands: Command[] = [
      addSubtask("b", ["a"]),
      addDecision("d"),
      { type: "UpdateSubtask", subtaskId: "a", status: SubtaskStatus.IN_PROGRESS },
    ];
    const decided = decideWithin(commands, start, defaultStoryLimits);
    expect(decided.events).toEqual(decideAll(commands, start.state));
    const applied = evolveAll(
      start.state,
      decided.events.map((data, i) => ({
        version: streamVersion(3 + i),
        occurredAt: start.state.updatedAt as Date,
        data,
      })),
    );
    expect(decided.state).toEqual(applied);
    expect(decided.measure).toEqual(measureStory(applied));
  });

  it("refuses more changes than a command may carry, before it looks at the story", () => {
    const commands = [addSubtask("a"), addSubtask("b"), addSubtask("c")];
    const limits = { ...unlimited, changesPerCommand: 2 };
    // On a story that does not exist: the size is refused first, whatever the story.
    const error = thrown(() => decideWithin(commands, measured([]), limits));
    expect(error).toBeInstanceOf(CommandTooLargeError);
    expect(error).toMatchObject({ limit: CommandLimit.Changes, value: 3, max: 2 });
    expect(error.message).toBe("a command may carry at most 2 changes, not 3");
    expect(decideWithin(commands.slice(1), measured([created]), limits).events).toHaveLength(2);
  });

  it("refuses a change whose event is larger than an event may be, naming the change", () => {
    const big = addDecision("d", "r".repeat(200));
    const size = eventPayloadSize(
      decideAll([big], measured([created]).state)[0] as ContextEventData,
    );
    within({ eventBytes: size })
      .given([created])
      .when(big)
      .then([
        eventData.decisionAdded({
          decisionId: "d",
          title: "d",
          rationale: "r".repeat(200),
          madeBy: "ada",
        }),
      ]);
    const error = thrown(() =>
      decideWithin([addSubtask("a"), big], measured([created]), {
        ...unlimited,
        eventBytes: size - 1,
      }),
    );
    expect(error).toBeInstanceOf(CommandTooLargeError);
    expect(error).toMatchObject({
      limit: CommandLimit.EventBytes,
      value: size,
      max: size - 1,
      change: 1,
    });
    expect(error.message).toBe(
      `change 1 (AddDecision) would be an event of ${size} bytes; an event may have at most ${size - 1}`,
    );
  });

  it("refuses a decision, subtask or dependency past the story's count, with the rule", () => {
    const history = [created, subtask("a"), subtask("b", ["a"]), decision("d1")];
    const spec = within({ decisions: 1, subtasks: 2, dependencies: 2 }).given(history);
    expect(spec.when(addDecision("d2")).thenThrows(StoryLimitError).rule).toBe(
      DomainRule.TooManyDecisions,
    );
    const subtasks = spec.when(addSubtask("c")).thenThrows(StoryLimitError);
    expect(subtasks).toMatchObject({ rule: DomainRule.TooManySubtasks, value: 3, limit: 2 });
    expect(subtasks.message).toBe('story "s-1" would hold 3 subtasks; a story may hold at most 2');
    const three = [...history, subtask("c")];
    within({ dependencies: 1 })
      .given(three)
      .when({ type: "AddSubtaskDependency", subtaskId: "c", dependsOnSubtaskId: "b" })
      .thenThrows(StoryLimitError, /would hold 2 subtask dependencies; a story may hold at most 1/);
    within({ dependencies: 2 })
      .given(three)
      .when(addSubtask("e", ["a", "b"]))
      .thenThrows(StoryLimitError, /would hold 3 subtask dependencies/);
    within({ dependencies: 2 })
      .given(three)
      .when({ type: "AddSubtaskDependency", subtaskId: "c", dependsOnSubtaskId: "b" })
      .then([eventData.subtaskDependencyAdded({ subtaskId: "c", dependsOnSubtaskId: "b" })]);
  });

  it("refuses a change that would make the story's context larger than it may be", () => {
    const start = measured([created, subtask("a")]);
    const fits = addDecision("d", "r".repeat(100));
    const after = decideWithin([fits], start, unlimited).measure.bytes;
    const limits = { ...unlimited, contextBytes: after };
    expect(decideWithin([fits], start, limits).measure.bytes).toBe(after);
    const error = thrown(() => decideWithin([addDecision("d", "r".repeat(101))], start, limits));
    expect(error).toBeInstanceOf(StoryLimitError);
    expect(error).toMatchObject({ rule: DomainRule.StoryTooLarge, value: after + 1, limit: after });
    expect(error.message).toBe(
      `story "s-1" would hold ${after + 1} bytes of encoded context; a story may hold at most ${after}`,
    );
  });

  it("never lets random changes grow a story past a limit, and reaches every limit", () => {
    const limits: StoryLimits = {
      changesPerCommand: 3,
      eventBytes: 600,
      decisions: 2,
      subtasks: 3,
      dependencies: 1,
      contextBytes: 1_500,
    };
    const reached = new Set<string>();
    fc.assert(
      fc.property(randomChanges, (all) => {
        let current = measured([created]);
        for (const commands of all) {
          try {
            current = decideWithin(commands, current, limits);
          } catch (e) {
            if (!isDomainError(e)) throw e;
            reached.add(isStoryLimitError(e) ? e.rule : isCommandTooLargeError(e) ? e.limit : "");
            continue;
          }
          const { state, measure } = current;
          expect(state.decisions.size).toBeLessThanOrEqual(limits.decisions);
          expect(state.subtasks.size).toBeLessThanOrEqual(limits.subtasks);
          expect(measure.dependencies).toBeLessThanOrEqual(limits.dependencies);
          expect(encodedSize(state)).toBeLessThanOrEqual(limits.contextBytes);
        }
      }),
      { numRuns: 300, seed: 7 },
    );
    expect([...reached].filter((r) => r !== "").sort()).toEqual(
      [
        ...[DomainRule.TooManyDecisions, DomainRule.TooManySubtasks],
        ...[DomainRule.TooManyDependencies, DomainRule.StoryTooLarge],
        ...[CommandLimit.Changes, CommandLimit.EventBytes],
      ].sort(),
    );
  });

  it("takes all of a change or none of it", () => {
    const commands = [addSubtask("a"), addSubtask("b"), addSubtask("c")];
    const limits = { ...unlimited, subtasks: 2 };
    expect(() => decideWithin(commands, measured([created]), limits)).toThrow(StoryLimitError);
    expect(decideWithin(commands.slice(1), measured([created]), limits).events).toHaveLength(2);
  });

  it("lets a story past its limits take every command that does not grow what is over", () => {
    // Written before the limits (or under higher ones): three subtasks, 2 allowed, and too large.
    const history = [created, subtask("a"), subtask("b"), subtask("c", ["a", "b"])];
    const { measure } = measured(history);
    const spec = within({ subtasks: 2, dependencies: 1, contextBytes: measure.bytes - 1 }).given(
      history,
    );
    spec
      .when({ type: "UpdateSubtask", subtaskId: "a", status: SubtaskStatus.IN_PROGRESS })
      .then([eventData.subtaskUpdated({ subtaskId: "a", status: SubtaskStatus.IN_PROGRESS })]);
    spec
      .when({ type: "ArchiveContext", reason: "" })
      .then([eventData.contextArchived({ reason: "" })]);
    spec.when(addSubtask("d")).thenThrows(StoryLimitError, /4 subtasks/);
    spec
      .when({ type: "UpdateSubtask", subtaskId: "a", assignee: "ada" })
      .thenThrows(StoryLimitError, /bytes of encoded context/);
  });
});

function thrown(run: () => unknown): Error & Record<string, unknown> {
  try {
    run();
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error("expected an error");
}
