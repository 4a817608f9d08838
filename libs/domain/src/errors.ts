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
  /** The story would hold more decisions than it may (StoryLimits.decisions). */
  TooManyDecisions: "too_many_decisions",
  /** The story would hold more subtasks than it may (StoryLimits.subtasks). */
  TooManySubtasks: "too_many_subtasks",
  /** The story would hold more subtask dependencies than it may (StoryLimits.dependencies). */
  TooManyDependencies: "too_many_dependencies",
  /** The story's encoded context would be larger than it may be (StoryLimits.contextBytes). */
  StoryTooLarge: "story_too_large",
} as const;
export type DomainRule = (typeof DomainRule)[keyof typeof DomainRule];

/** The kinds of entity inside a story. */
export type EntityKind = "decision" | "subtask";

/**
 * Base of every error `decide` throws: a command that the story's current state, or the limits on
 * commands and stories, refuse. Never an infrastructure fault, so retrying the same command against
 * the same state fails the same way. The RPC edge maps each subclass to one gRPC code.
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
  override readonly name: string = "RuleViolationError";
  readonly rule: DomainRule;

  constructor(storyId: StoryId, rule: DomainRule, message: string, options?: ErrorOptions) {
    super(storyId, message, options);
    this.rule = rule;
  }
}

/**
 * The story would grow past one of its limits (`StoryLimits`): more decisions, subtasks or
 * dependencies than it may hold, or a larger encoded context (gRPC FAILED_PRECONDITION, with the
 * rule id). Retrying never helps: nothing in a story can be removed, so it stays full; only a
 * command that does not grow what is full goes through.
 */
export class StoryLimitError extends RuleViolationError {
  override readonly name = "StoryLimitError";
  /** The most the story may hold. */
  readonly limit: number;
  /** What the story would hold after the command. */
  readonly value: number;

  constructor(
    storyId: StoryId,
    rule: DomainRule,
    what: string,
    value: number,
    limit: number,
    options?: ErrorOptions,
  ) {
    super(
      storyId,
      rule,
      `story "${storyId}" would hold ${value} ${what}; a story may hold at most ${limit}`,
      options,
    );
    this.limit = limit;
    this.value = value;
  }
}

/** Which limit on a single command a {@link CommandTooLargeError} is about. */
export const CommandLimit = {
  /** More changes than one command may carry (StoryLimits.changesPerCommand). */
  Changes: "changes_per_command",
  /** An event larger than one event may be (StoryLimits.eventBytes). */
  EventBytes: "event_bytes",
} as const;
export type CommandLimit = (typeof CommandLimit)[keyof typeof CommandLimit];

/**
 * A command too large by itself, whatever the story holds: too many changes, or a change whose
 * event would be too large (gRPC INVALID_ARGUMENT). The same command fails the same way on every
 * story; it must be split or shortened.
 */
export class CommandTooLargeError extends DomainError {
  override readonly name = "CommandTooLargeError";
  readonly limit: CommandLimit;
  /** The limit's value. */
  readonly max: number;
  /** What the command has: its number of changes, or the bytes of the event. */
  readonly value: number;
  /** The change (0-based) whose event is too large; undefined for the number of changes. */
  readonly change: number | undefined;

  constructor(
    storyId: StoryId,
    limit: CommandLimit,
    value: number,
    max: number,
    change?: { readonly index: number; readonly type: string },
    options?: ErrorOptions,
  ) {
    super(
      storyId,
      change === undefined
        ? `a command may carry at most ${max} changes, not ${value}`
        : `change ${change.index} (${change.type}) would be an event of ${value} bytes; an event may have at most ${max}`,
      options,
    );
    this.limit = limit;
    this.max = max;
    this.value = value;
    this.change = change?.index;
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

export function isStoryLimitError(e: unknown): e is StoryLimitError {
  return e instanceof StoryLimitError;
}

export function isCommandTooLargeError(e: unknown): e is CommandTooLargeError {
  return e instanceof CommandTooLargeError;
}
