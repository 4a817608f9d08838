// The decider of a story's context: what a command means, and what the story is after its events.
export type { Command } from "./command.ts";
// For sibling libs (event store, upcasters, snapshots): the event vocabulary and the proto mapping.
export type { ContextEventData, DomainEvent, DroppedEventData } from "./context-event.ts";
export {
  ContextEventType,
  currentSchemaVersion,
  eventTypeOf,
  payloadCaseOf,
} from "./context-event.ts";
export type { EncodedContext, EncodedEntries } from "./context-message.ts";
export { encodeContextState, fromContextMessage, toContextMessage } from "./context-message.ts";
export type { ContextState, DecisionState, SubtaskState } from "./context-state.ts";
export { ContextLifecycle, initialState } from "./context-state.ts";
export type { Decided, MeasuredStory } from "./decide.ts";
export { decide, decideAll, decideWithin } from "./decide.ts";
export type { EntityKind } from "./errors.ts";
export {
  CommandLimit,
  CommandTooLargeError,
  DomainError,
  DomainRule,
  EntityAlreadyExistsError,
  EntityNotFoundError,
  isCommandTooLargeError,
  isDomainError,
  isEntityAlreadyExistsError,
  isEntityNotFoundError,
  isRuleViolationError,
  isStoryAlreadyExistsError,
  isStoryLimitError,
  isStoryNotFoundError,
  RuleViolationError,
  StoryAlreadyExistsError,
  StoryLimitError,
  StoryNotFoundError,
} from "./errors.ts";
export { evolve, evolveAll, fold } from "./evolve.ts";
export type { StoryLimits, StoryMeasure } from "./limits.ts";
export {
  defaultStoryLimits,
  eventPayloadSize,
  measureChange,
  measureStory,
} from "./limits.ts";
export type { StoryId } from "./story-id.ts";
export { storyId } from "./story-id.ts";
export { StoryMap } from "./story-map.ts";
export type { StreamVersion } from "./stream-version.ts";
export { streamVersion } from "./stream-version.ts";
