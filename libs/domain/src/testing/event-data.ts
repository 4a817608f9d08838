import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ContextArchivedSchema,
  ContextCreatedSchema,
  DecisionAddedSchema,
  DecisionSupersededSchema,
  EventsSetAsideSchema,
  SubtaskAddedSchema,
  SubtaskDependencyAddedSchema,
  SubtaskUpdatedSchema,
} from "@ctx/proto";
import type { ContextEventData, DomainEvent } from "../context-event.ts";
import { streamVersion } from "../stream-version.ts";

type Case<K extends ContextEventData["case"]> = Extract<ContextEventData, { case: K }>;

/**
 * Builders of event payloads for tests: `eventData.subtaskAdded({ subtaskId: "a" })` instead of the
 * `{ case, value: create(Schema, …) }` ceremony. Fields left out take their proto defaults.
 */
export const eventData = {
  contextCreated: (
    init?: MessageInitShape<typeof ContextCreatedSchema>,
  ): Case<"contextCreated"> => ({
    case: "contextCreated",
    value: create(ContextCreatedSchema, init),
  }),
  decisionAdded: (init?: MessageInitShape<typeof DecisionAddedSchema>): Case<"decisionAdded"> => ({
    case: "decisionAdded",
    value: create(DecisionAddedSchema, init),
  }),
  decisionSuperseded: (
    init?: MessageInitShape<typeof DecisionSupersededSchema>,
  ): Case<"decisionSuperseded"> => ({
    case: "decisionSuperseded",
    value: create(DecisionSupersededSchema, init),
  }),
  subtaskAdded: (init?: MessageInitShape<typeof SubtaskAddedSchema>): Case<"subtaskAdded"> => ({
    case: "subtaskAdded",
    value: create(SubtaskAddedSchema, init),
  }),
  subtaskUpdated: (
    init?: MessageInitShape<typeof SubtaskUpdatedSchema>,
  ): Case<"subtaskUpdated"> => ({
    case: "subtaskUpdated",
    value: create(SubtaskUpdatedSchema, init),
  }),
  subtaskDependencyAdded: (
    init?: MessageInitShape<typeof SubtaskDependencyAddedSchema>,
  ): Case<"subtaskDependencyAdded"> => ({
    case: "subtaskDependencyAdded",
    value: create(SubtaskDependencyAddedSchema, init),
  }),
  contextArchived: (
    init?: MessageInitShape<typeof ContextArchivedSchema>,
  ): Case<"contextArchived"> => ({
    case: "contextArchived",
    value: create(ContextArchivedSchema, init),
  }),
  eventsSetAside: (
    init?: MessageInitShape<typeof EventsSetAsideSchema>,
  ): Case<"eventsSetAside"> => ({
    case: "eventsSetAside",
    value: create(EventsSetAsideSchema, init),
  }),
} as const;

/** The default time of the first event numbered by {@link domainEvents}. */
export const firstEventTime = new Date("2026-01-01T00:00:00.000Z");

/**
 * Numbers payloads as a story's history: versions `firstVersion`, `firstVersion + 1`, … and
 * occurredAt one minute apart from `firstTime`, so folds in tests are deterministic.
 */
export function domainEvents(
  data: readonly ContextEventData[],
  firstVersion = 1,
  firstTime: Date = firstEventTime,
): DomainEvent[] {
  return data.map((d, i) => ({
    version: streamVersion(firstVersion + i),
    occurredAt: new Date(firstTime.getTime() + i * 60_000),
    data: d,
  }));
}
