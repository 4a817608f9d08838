import type { ContextEvent } from "@ctx/proto";
import type { StreamVersion } from "./stream-version.ts";

/**
 * What happened, without the envelope: the `payload` oneof of the stored `ContextEvent`, exactly as
 * protobuf-es generates it. `decide` emits these and the event store wraps them, so no mapping layer
 * sits between the domain and the wire.
 */
export type ContextEventData = Exclude<ContextEvent["payload"], { case: undefined }>;

/**
 * What readers see of a stored event that an upcaster drops on purpose: its version still counts
 * (versions are positions in the story's history), but nothing changes. An empty payload oneof.
 */
export interface DroppedEventData {
  readonly case: undefined;
  readonly value?: undefined;
}

/**
 * An event with the envelope fields the domain needs: its position and time. The rest of the
 * envelope (ids, hashes, correlation) is the event store's business.
 */
export interface DomainEvent {
  readonly version: StreamVersion;
  readonly occurredAt: Date;
  readonly data: ContextEventData | DroppedEventData;
}

/**
 * The name of each event type: the proto message name, used as the last subject token
 * (`context.events.{story_id}.{event_type}`) and as the envelope's `event_type`. Stable forever,
 * since stored subjects carry it.
 */
export const ContextEventType = {
  ContextCreated: "ContextCreated",
  DecisionAdded: "DecisionAdded",
  DecisionSuperseded: "DecisionSuperseded",
  SubtaskAdded: "SubtaskAdded",
  SubtaskUpdated: "SubtaskUpdated",
  SubtaskDependencyAdded: "SubtaskDependencyAdded",
  ContextArchived: "ContextArchived",
  /**
   * An operator set aside stored messages no reader can read (`ctx stories repair`): never decided,
   * it only counts as a version of the story (see evolve).
   */
  EventsSetAside: "EventsSetAside",
} as const;
export type ContextEventType = (typeof ContextEventType)[keyof typeof ContextEventType];

const eventTypeByCase: Readonly<Record<ContextEventData["case"], ContextEventType>> = {
  contextCreated: ContextEventType.ContextCreated,
  decisionAdded: ContextEventType.DecisionAdded,
  decisionSuperseded: ContextEventType.DecisionSuperseded,
  subtaskAdded: ContextEventType.SubtaskAdded,
  subtaskUpdated: ContextEventType.SubtaskUpdated,
  subtaskDependencyAdded: ContextEventType.SubtaskDependencyAdded,
  contextArchived: ContextEventType.ContextArchived,
  eventsSetAside: ContextEventType.EventsSetAside,
};

const caseByEventType = Object.fromEntries(
  Object.entries(eventTypeByCase).map(([c, type]) => [type, c]),
) as Readonly<Record<ContextEventType, ContextEventData["case"]>>;

/** The payload case of an event type: the inverse of `eventTypeOf`; undefined for unknown names. */
export function payloadCaseOf(type: string): ContextEventData["case"] | undefined {
  return Object.hasOwn(caseByEventType, type)
    ? caseByEventType[type as ContextEventType]
    : undefined;
}

/** The event type of a payload, for its subject and envelope. */
export function eventTypeOf(data: ContextEventData): ContextEventType {
  return eventTypeByCase[data.case];
}

/**
 * The schema version each event type is written with today. Writers stamp it into the envelope;
 * readers upcast older events to it before `evolve` sees them.
 */
export const currentSchemaVersion: Readonly<Record<ContextEventType, number>> = Object.freeze({
  ContextCreated: 1,
  // v1: one free-text `alternative`, no `made_by` (context.legacy.v1.DecisionAdded).
  DecisionAdded: 2,
  DecisionSuperseded: 1,
  SubtaskAdded: 1,
  // v1: free-text status, no assignee (context.legacy.v1.SubtaskUpdated).
  SubtaskUpdated: 2,
  SubtaskDependencyAdded: 1,
  ContextArchived: 1,
  EventsSetAside: 1,
});
