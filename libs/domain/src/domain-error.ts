import type { StoryId } from "./story-id.ts";

/**
 * The stable ids of the rules behind a {@link RuleViolationError}. Clients may branch on them, so
 * an id never changes meaning; new rules get new ids.
 */
export const DomainRule = {
  /** The story is archived and accepts no further changes. */
  StoryArchived: "story_archived",
  /** A command names a decision or subtask (other than its target) that does not exist. */
  UnknownReference: "unknown_reference",
  /** A command names the same subtask twice where each may appear once. */
  DuplicateReference: "duplicate_reference",
  /** A subtask dependency would make the dependency graph cyclic. */
  DependencyCycle: "dependency_cycle",
  /** A superseded decision cannot supersede or be superseded. */
  DecisionNotActive: "decision_not_active",
  /** The subtask status change is not one of the allowed transitions. */
  InvalidStatusTransition: "invalid_status_transition",
  /** A subtask can be DONE only when every subtask it depends on is DONE. */
  DependenciesNotDone: "dependencies_not_done",
  /** A decision or subtask refers to itself. */
  SelfReference: "self_reference",
  /** The subtask already has this dependency. */
  DuplicateDependency: "duplicate_dependency",
} as const;
export type DomainRule = (typeof DomainRule)[keyof typeof DomainRule];

/** The kinds of entity inside a story. */
export type EntityKind = "decision" | "subtask";

/**
 * Base of every error `decide` throws: a command that the story's current state refuses. Never an
 * infrastructure fault, so retrying the same command against the same state fails the same way.
 * The RPC edge maps each subclass to one gRPC code.
 */
export class DomainError extends Error {
  override readonly name: string = "DomainError";
  readonly storyId: StoryId;

  constructor(storyId: StoryId, message: string, options?: ErrorOptions) {
    super(message, options);
    this.storyId = storyId;
  }
}

/** A command other than CreateContext on a story that does not exist (gRPC NOT_FOUND). */
export class StoryNotFoundError extends DomainError {
  override readonly name = "StoryNotFoundError";

  constructor(storyId: StoryId, options?: ErrorOptions) {
    super(storyId, `story "${storyId}" does not exist`, options);
  }
}

/** CreateContext on a story that exists, archived or not (gRPC ALREADY_EXISTS). */
export class StoryAlreadyExistsError extends DomainError {
  override readonly name = "StoryAlreadyExistsError";

  constructor(storyId: StoryId, options?: ErrorOptions) {
    super(storyId, `story "${storyId}" already exists`, options);
  }
}

/** The decision or subtask a command targets does not exist in the story (gRPC NOT_FOUND). */
export class EntityNotFoundError extends DomainError {
  override readonly name = "EntityNotFoundError";
  readonly entity: EntityKind;
  readonly id: string;

  constructor(storyId: StoryId, entity: EntityKind, id: string, options?: ErrorOptions) {
    super(storyId, `${entity} "${id}" does not exist in story "${storyId}"`, options);
    this.entity = entity;
    this.id = id;
  }
}

/** A decision or subtask id is already taken in the story (gRPC ALREADY_EXISTS). */
export class EntityAlreadyExistsError extends DomainError {
  override readonly name = "EntityAlreadyExistsError";
  readonly entity: EntityKind;
  readonly id: string;

  constructor(storyId: StoryId, entity: EntityKind, id: string, options?: ErrorOptions) {
    super(storyId, `${entity} "${id}" already exists in story "${storyId}"`, options);
    this.entity = entity;
    this.id = id;
  }
}

/** Any other invariant the command would break; `rule` says which (gRPC FAILED_PRECONDITION). */
export class RuleViolationError extends DomainError {
  override readonly name = "RuleViolationError";
  readonly rule: DomainRule;

  constructor(storyId: StoryId, rule: DomainRule, message: string, options?: ErrorOptions) {
    super(storyId, message, options);
    this.rule = rule;
  }
}

export function isDomainError(e: unknown): e is DomainError {
  return e instanceof DomainError;
}

export function isStoryNotFoundError(e: unknown): e is StoryNotFoundError {
  return e instanceof StoryNotFoundError;
}

export function isStoryAlreadyExistsError(e: unknown): e is StoryAlreadyExistsError {
  return e instanceof StoryAlreadyExistsError;
}

export function isEntityNotFoundError(e: unknown): e is EntityNotFoundError {
  return e instanceof EntityNotFoundError;
}

export function isEntityAlreadyExistsError(e: unknown): e is EntityAlreadyExistsError {
  return e instanceof EntityAlreadyExistsError;
}

export function isRuleViolationError(e: unknown): e is RuleViolationError {
  return e instanceof RuleViolationError;
}
