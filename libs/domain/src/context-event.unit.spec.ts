import { describe, expect, it } from "vitest";
import {
  type ContextEventData,
  ContextEventType,
  currentSchemaVersion,
  eventTypeOf,
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
  it("has a version for every event type, 1 until the first upcaster", () => {
    expect(currentSchemaVersion).toEqual(
      Object.fromEntries(Object.values(ContextEventType).map((type) => [type, 1])),
    );
  });

  it("cannot be changed at run time", () => {
    expect(Object.isFrozen(currentSchemaVersion)).toBe(true);
  });
});
