import { create, equals, toBinary } from "@bufbuild/protobuf";
import {
  ContextSchema,
  ContextStatus,
  DecisionSchema,
  DecisionStatus,
  SubtaskSchema,
  SubtaskStatus,
} from "@ctx/proto";
import { describe, expect, it } from "vitest";
import {
  type ContextEventData,
  type ContextState,
  encodeContextState,
  evolve,
  fold,
  fromContextMessage,
  initialState,
  storyId,
  streamVersion,
  toContextMessage,
} from "./index.ts";
import { domainEvents, eventData } from "./testing/index.ts";

const story = storyId("s-1");
const populated = fold(
  story,
  domainEvents([
    eventData.contextCreated({ title: "Checkout", description: "One-page checkout" }),
    eventData.subtaskAdded({ subtaskId: "z", title: "Z" }),
    eventData.subtaskAdded({ subtaskId: "a", title: "A", dependsOn: ["z"] }),
    eventData.decisionAdded({
      decisionId: "d2",
      title: "Use Stripe",
      rationale: "cheapest",
      madeBy: "ada",
      alternatives: ["Adyen"],
      affectsSubtaskIds: ["a", "z"],
    }),
    eventData.decisionAdded({ decisionId: "d1", title: "Use Adyen", madeBy: "grace" }),
    eventData.decisionSuperseded({ decisionId: "d2", supersededByDecisionId: "d1" }),
    eventData.subtaskUpdated({ subtaskId: "z", status: SubtaskStatus.BLOCKED, assignee: "bob" }),
  ]),
);

// Maps compare by content in toEqual; the order is part of the contract, so check it too.
function expectSameState(actual: ContextState, expected: ContextState): void {
  expect(actual).toEqual(expected);
  expect([...actual.decisions.keys()]).toEqual([...expected.decisions.keys()]);
  expect([...actual.subtasks.keys()]).toEqual([...expected.subtasks.keys()]);
}

describe("toContextMessage", () => {
  it("describes the state with decisions and subtasks in creation order", () => {
    const expected = create(ContextSchema, {
      storyId: "s-1",
      title: "Checkout",
      description: "One-page checkout",
      status: ContextStatus.OPEN,
      decisions: [
        create(DecisionSchema, {
          decisionId: "d2",
          title: "Use Stripe",
          rationale: "cheapest",
          madeBy: "ada",
          alternatives: ["Adyen"],
          status: DecisionStatus.SUPERSEDED,
          affectsSubtaskIds: ["a", "z"],
          supersededByDecisionId: "d1",
        }),
        create(DecisionSchema, {
          decisionId: "d1",
          title: "Use Adyen",
          madeBy: "grace",
          status: DecisionStatus.ACTIVE,
        }),
      ],
      subtasks: [
        create(SubtaskSchema, {
          subtaskId: "z",
          title: "Z",
          status: SubtaskStatus.BLOCKED,
          assignee: "bob",
        }),
        create(SubtaskSchema, {
          subtaskId: "a",
          title: "A",
          status: SubtaskStatus.TODO,
          dependsOn: ["z"],
        }),
      ],
    });
    const message = toContextMessage(populated);
    expect(message).toEqual(expected);
    expect(equals(ContextSchema, message, expected)).toBe(true);
  });

  it("maps the lifecycle to the context status", () => {
    expect(toContextMessage(initialState(story)).status).toBe(ContextStatus.UNSPECIFIED);
    const archived = fold(
      story,
      domainEvents([eventData.contextCreated({ title: "T" }), eventData.contextArchived()]),
    );
    expect(toContextMessage(archived).status).toBe(ContextStatus.ARCHIVED);
  });

  it("shares no list with the state", () => {
    const message = toContextMessage(populated);
    message.subtasks[1]?.dependsOn.push("x");
    message.decisions[0]?.alternatives.push("x");
    expect(populated.subtasks.get("a")?.dependsOn).toEqual(["z"]);
    expect(populated.decisions.get("d2")?.alternatives).toEqual(["Adyen"]);
  });
});

describe("encodeContextState", () => {
  const long = "x".repeat(20_000); // lengths of two and three varint bytes
  const before = fold(story, [
    ...domainEvents([
      eventData.contextCreated({ title: "T", description: long }),
      eventData.decisionAdded({ decisionId: "d1", title: "D", rationale: long.slice(0, 300) }),
      eventData.subtaskAdded({ subtaskId: "a", title: long }),
      eventData.subtaskAdded({ subtaskId: "c", title: "C" }),
    ]),
  ]);
  const next = (state: ContextState, data: ContextEventData) =>
    evolve(state, { version: streamVersion(state.version + 1), occurredAt: new Date(9), data });
  const bytesOf = (state: ContextState) => toBinary(ContextSchema, toContextMessage(state));

  it("gives the bytes of the state's Context message, long fields included", () => {
    for (const state of [initialState(story), populated, before]) {
      expect(encodeContextState(state).bytes).toEqual(bytesOf(state));
    }
  });

  it("gives the same bytes from the encoding of an earlier state, whatever changed", () => {
    const added = next(before, eventData.subtaskAdded({ subtaskId: "b", title: "B" }));
    const middle = next(added, eventData.subtaskUpdated({ subtaskId: "a", assignee: "ada" }));
    const renamed = { ...middle, title: "T2" };
    const archived = next(middle, eventData.contextArchived());
    const superseded = next(
      next(archived, eventData.decisionAdded({ decisionId: "d2", title: "D2" })),
      eventData.decisionSuperseded({ decisionId: "d1", supersededByDecisionId: "d2" }),
    );
    const reloaded = fromContextMessage(toContextMessage(middle), middle.version, undefined);
    const cases: [string, ContextState, ContextState][] = [
      ["an entry appended", before, added],
      ["an entry in the middle changed", added, middle],
      ["the title changed", middle, renamed],
      ["the status changed", middle, archived],
      ["a decision added and another superseded", archived, superseded],
      ["nothing changed", superseded, superseded],
      ["later states encoded from an earlier one's encoding", superseded, before],
      ["a state with equal but fresh entries", middle, reloaded],
      ["another story", populated, middle],
    ];
    for (const [what, from, to] of cases) {
      const encoded = encodeContextState(to, encodeContextState(from));
      expect(encoded.bytes, what).toEqual(bytesOf(to));
      // And the encoding is as good a start for the next one.
      const again = encodeContextState(superseded, encoded);
      expect(again.bytes, `${what}, then on`).toEqual(bytesOf(superseded));
    }
  });
});

describe("fromContextMessage", () => {
  it("round-trips a state exactly", () => {
    const message = toContextMessage(populated);
    expectSameState(fromContextMessage(message, populated.version, populated.updatedAt), populated);
  });

  it("round-trips the initial and an archived state", () => {
    const archived = fold(
      story,
      domainEvents([eventData.contextCreated({ title: "T" }), eventData.contextArchived()]),
    );
    for (const state of [initialState(story), archived]) {
      expectSameState(
        fromContextMessage(toContextMessage(state), state.version, state.updatedAt),
        state,
      );
    }
  });

  it("round-trips a message exactly", () => {
    const message = toContextMessage(populated);
    const again = toContextMessage(fromContextMessage(message, streamVersion(7), undefined));
    expect(equals(ContextSchema, again, message)).toBe(true);
  });

  it("shares no list with the message", () => {
    const message = toContextMessage(populated);
    const state = fromContextMessage(message, populated.version, populated.updatedAt);
    message.subtasks[1]?.dependsOn.push("x");
    expect(state.subtasks.get("a")?.dependsOn).toEqual(["z"]);
  });

  it("refuses a context status it does not know", () => {
    const message = create(ContextSchema, { storyId: "s-1", status: 7 as ContextStatus });
    expect(() => fromContextMessage(message, streamVersion(1), undefined)).toThrow(
      new RangeError("unknown context status 7"),
    );
  });

  it("refuses an invalid story id", () => {
    const message = create(ContextSchema, { storyId: "a.b", status: ContextStatus.OPEN });
    expect(() => fromContextMessage(message, streamVersion(1), undefined)).toThrow(RangeError);
  });
});
