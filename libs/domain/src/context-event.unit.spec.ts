import { describe, expect, it } from "vitest";
import {
  type ContextEventData,
  ContextEventType,
  currentSchemaVersion,
  eventTypeOf,
  payloadCaseOf,
} from "./index.ts";
import { eventData } from "./testing/index.ts";

const oneOfEach: readonly ContextEventData[] = [
  eventData.contextCreated(),
  eventData.decisionAdded(),
  eventData.decisionSuperseded(),
  eventData.subtaskAdded(),
  eventData.subtaskUpdated(),
  eventData.subtaskDependencyAdded(),
  eventData.contextArchived(),
  eventData.eventsSetAside(),
];

describe("eventTypeOf", () => {
  it.each(oneOfEach)("names $case after its proto message", (data) => {
    // the proto message name is what subjects and envelopes carry, so the two can never drift
    expect(eventTypeOf(data)).toBe(data.value.$typeName.replace("context.v1.", ""));
  });

  it("covers every event type, each once", () => {
    expect(oneOfEach.map(eventTypeOf)).toEqual(Object.values(ContextEventType));
  });

  it("gives valid NATS subject tokens", () => {
    for (const type of Object.values(ContextEventType)) {
      expect(type).toMatch(/^[A-Za-z]+$/);
    }
  });
});

describe("currentSchemaVersion", () => {
  it("has a version for every event type: 2 for the two types that evolved, 1 for the others", () => {
    expect(currentSchemaVersion).toEqual({
      ...Object.fromEntries(Object.values(ContextEventType).map((type) => [type, 1])),
      DecisionAdded: 2,
      SubtaskUpdated: 2,
    });
  });

  it("maps every event type back to its payload case", () => {
    for (const type of Object.values(ContextEventType)) {
      const c = payloadCaseOf(type);
      expect(c && eventTypeOf({ case: c } as ContextEventData)).toBe(type);
    }
    expect(payloadCaseOf("NoSuchEvent")).toBeUndefined();
    expect(payloadCaseOf("toString")).toBeUndefined();
  });

  it("cannot be changed at run time", () => {
    expect(Object.isFrozen(currentSchemaVersion)).toBe(true);
  });
});
