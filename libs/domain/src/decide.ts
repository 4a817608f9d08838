import { create } from "@bufbuild/protobuf";
import {
  ContextArchivedSchema,
  ContextCreatedSchema,
  DecisionAddedSchema,
  DecisionStatus,
  DecisionSupersededSchema,
  SubtaskAddedSchema,
  SubtaskDependencyAddedSchema,
  SubtaskStatus,
  SubtaskUpdatedSchema,
} from "@ctx/proto";
import type {
  AddDecision,
  AddSubtask,
  AddSubtaskDependency,
  ArchiveContext,
  Command,
  CreateContext,
  SupersedeDecision,
  UpdateSubtask,
} from "./command.ts";
import type { ContextEventData } from "./context-event.ts";
import {
  ContextLifecycle,
  type ContextState,
  type DecisionState,
  type SubtaskState,
} from "./context-state.ts";
import {
  CommandLimit,
  CommandTooLargeError,
  DomainRule,
  EntityAlreadyExistsError,
  EntityNotFoundError,
  RuleViolationError,
  StoryAlreadyExistsError,
  StoryLimitError,
  StoryNotFoundError,
} from "./errors.ts";
import { evolve } from "./evolve.ts";
import { eventPayloadSize, measureChange, type StoryLimits, type StoryMeasure } from "./limits.ts";
import { streamVersion } from "./stream-version.ts";

type Events = readonly ContextEventData[];

/**
 * Decides what a command means for a story: the events to append, or a {@link DomainError} saying
 * which rule it breaks. Pure, so the command service can retry it on a fresh state after a version
 * conflict, and tests need no store.
 *
 * Returns `[]` when the command is valid but changes nothing (an UpdateSubtask to the current
 * values), so a retried command does not grow the history.
 *
 * @throws DomainError (one of its subclasses) when the state refuses the command.
 */
export function decide(command: Command, state: ContextState): Events {
  switch (command.type) {
    case "CreateContext":
      return createContext(command, state);
    case "AddDecision":
      return addDecision(command, requireOpen(command, state));
    case "SupersedeDecision":
      return supersedeDecision(command, requireOpen(command, state));
    case "AddSubtask":
      return addSubtask(command, requireOpen(command, state));
    case "UpdateSubtask":
      return updateSubtask(command, requireOpen(command, state));
    case "AddSubtaskDependency":
      return addSubtaskDependency(command, requireOpen(command, state));
    case "ArchiveContext":
      requireOpen(command, state);
      return archiveContext(command);
    default: {
      const unknown: never = command;
      throw new TypeError(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * Decides several commands as one change: each is decided against the state that includes the
 * events of the commands before it, and the events of all of them are returned together, for one
 * atomic append. All or nothing: the first refused command throws and nothing is returned.
 *
 * The events are applied with provisional versions (after `state.version`) and times
 * (`state.updatedAt`); the store assigns the real ones when it appends.
 *
 * @throws DomainError from the first command the state refuses.
 */
export function decideAll(commands: readonly Command[], state: ContextState): Events {
  const all: ContextEventData[] = [];
  const occurredAt = state.updatedAt ?? new Date(0);
  let current = state;
  const last = commands.length - 1;
  for (let i = 0; i <= last; i++) {
    const events = decide(commands[i] as Command, current);
    all.push(...events);
    // The last command's events need not be applied: nothing is decided after them.
    if (i === last) break;
    for (const data of events) {
      current = evolve(current, { version: streamVersion(current.version + 1), occurredAt, data });
    }
  }
  return all;
}

/** A story as its limits see it: its state, and the measures (`measureStory`) it does not keep. */
export interface MeasuredStory {
  readonly state: ContextState;
  readonly measure: StoryMeasure;
}

/** What `decideWithin` decided: the events, and the story once they are applied. */
export interface Decided extends MeasuredStory {
  readonly events: Events;
}

/**
 * `decideAll` within limits: decides the commands as one change, and refuses it when the command
 * is too large by itself (more changes than `limits.changesPerCommand`, or an event larger than
 * `limits.eventBytes`: CommandTooLargeError) or when it would grow the story past a limit
 * (StoryLimitError). Only growth is refused: a story already past a limit (written before the
 * limit, or under a higher one) still takes every command that does not grow what is over.
 *
 * Returns the events and the story after them. Its state has the events applied with provisional
 * versions (after `state.version`: the ones the store assigns when the append goes through) and
 * time (`state.updatedAt`); everything else in it is what applying the stored events gives.
 *
 * @throws DomainError from the first command the state refuses, or for a limit.
 */
export function decideWithin(
  commands: readonly Command[],
  story: MeasuredStory,
  limits: StoryLimits,
): Decided {
  const { state } = story;
  if (commands.length > limits.changesPerCommand) {
    throw new CommandTooLargeError(
      state.storyId,
      CommandLimit.Changes,
      commands.length,
      limits.changesPerCommand,
    );
  }
  const events: ContextEventData[] = [];
  const occurredAt = state.updatedAt ?? new Date(0);
  let current = state;
  for (let i = 0; i < commands.length; i++) {
    const command = commands[i] as Command;
    for (const data of decide(command, current)) {
      const size = eventPayloadSize(data);
      if (size > limits.eventBytes) {
        throw new CommandTooLargeError(
          state.storyId,
          CommandLimit.EventBytes,
          size,
          limits.eventBytes,
          {
            index: i,
            type: command.type,
          },
        );
      }
      current = evolve(current, { version: streamVersion(current.version + 1), occurredAt, data });
      events.push(data);
    }
  }
  const measure = measureChange(state, current, events, story.measure);
  const grows = (rule: DomainRule, what: string, before: number, after: number, limit: number) => {
    if (after > limit && after > before) {
      throw new StoryLimitError(state.storyId, rule, what, after, limit);
    }
  };
  grows(
    DomainRule.TooManyDecisions,
    "decisions",
    state.decisions.size,
    current.decisions.size,
    limits.decisions,
  );
  grows(
    DomainRule.TooManySubtasks,
    "subtasks",
    state.subtasks.size,
    current.subtasks.size,
    limits.subtasks,
  );
  grows(
    DomainRule.TooManyDependencies,
    "subtask dependencies",
    story.measure.dependencies,
    measure.dependencies,
    limits.dependencies,
  );
  grows(
    DomainRule.StoryTooLarge,
    "bytes of encoded context",
    story.measure.bytes,
    measure.bytes,
    limits.contextBytes,
  );
  return { events, state: current, measure };
}

function createContext(command: CreateContext, state: ContextState): Events {
  if (state.lifecycle !== ContextLifecycle.Absent) {
    throw new StoryAlreadyExistsError(state.storyId);
  }
  return [
    {
      case: "contextCreated",
      value: create(ContextCreatedSchema, {
        title: command.title,
        description: command.description,
      }),
    },
  ];
}

function addDecision(command: AddDecision, state: ContextState): Events {
  const { decisionId } = command;
  if (state.decisions.has(decisionId)) {
    throw new EntityAlreadyExistsError(state.storyId, "decision", decisionId);
  }
  const seen = new Set<string>();
  for (const subtaskId of command.affectsSubtaskIds) {
    if (seen.has(subtaskId)) {
      throw new RuleViolationError(
        state.storyId,
        DomainRule.DuplicateReference,
        `decision "${decisionId}" lists subtask "${subtaskId}" more than once`,
      );
    }
    seen.add(subtaskId);
    if (!state.subtasks.has(subtaskId)) {
      throw new RuleViolationError(
        state.storyId,
        DomainRule.UnknownReference,
        `decision "${decisionId}" cannot affect subtask "${subtaskId}": it does not exist in story "${state.storyId}"`,
      );
    }
  }
  return [
    {
      case: "decisionAdded",
      value: create(DecisionAddedSchema, {
        decisionId,
        title: command.title,
        rationale: command.rationale,
        madeBy: command.madeBy,
        alternatives: [...command.alternatives],
        affectsSubtaskIds: [...command.affectsSubtaskIds],
      }),
    },
  ];
}

function supersedeDecision(command: SupersedeDecision, state: ContextState): Events {
  const { decisionId, supersededByDecisionId: byId } = command;
  const decision = state.decisions.get(decisionId);
  if (decision === undefined) {
    throw new EntityNotFoundError(state.storyId, "decision", decisionId);
  }
  if (byId === decisionId) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.SelfReference,
      `decision "${decisionId}" cannot be superseded by itself`,
    );
  }
  const by = state.decisions.get(byId);
  if (by === undefined) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.UnknownReference,
      `decision "${decisionId}" cannot be superseded by decision "${byId}": it does not exist in story "${state.storyId}"`,
    );
  }
  if (!isActive(decision)) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.DecisionNotActive,
      `decision "${decisionId}" cannot be superseded: it is already superseded by "${decision.supersededByDecisionId}"`,
    );
  }
  if (!isActive(by)) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.DecisionNotActive,
      `decision "${decisionId}" cannot be superseded by "${byId}": "${byId}" is itself superseded by "${by.supersededByDecisionId}"`,
    );
  }
  return [
    {
      case: "decisionSuperseded",
      value: create(DecisionSupersededSchema, { decisionId, supersededByDecisionId: byId }),
    },
  ];
}

function addSubtask(command: AddSubtask, state: ContextState): Events {
  const { subtaskId } = command;
  if (state.subtasks.has(subtaskId)) {
    throw new EntityAlreadyExistsError(state.storyId, "subtask", subtaskId);
  }
  const seen = new Set<string>();
  for (const dependency of command.dependsOn) {
    if (dependency === subtaskId) {
      throw new RuleViolationError(
        state.storyId,
        DomainRule.SelfReference,
        `subtask "${subtaskId}" cannot depend on itself`,
      );
    }
    if (seen.has(dependency)) {
      throw new RuleViolationError(
        state.storyId,
        DomainRule.DuplicateDependency,
        `subtask "${subtaskId}" lists dependency "${dependency}" more than once`,
      );
    }
    seen.add(dependency);
    if (!state.subtasks.has(dependency)) {
      throw new RuleViolationError(
        state.storyId,
        DomainRule.UnknownReference,
        `subtask "${subtaskId}" cannot depend on subtask "${dependency}": it does not exist in story "${state.storyId}"`,
      );
    }
  }
  // No cycle is possible: nothing depends on a subtask that does not exist yet.
  return [
    {
      case: "subtaskAdded",
      value: create(SubtaskAddedSchema, {
        subtaskId,
        title: command.title,
        dependsOn: [...command.dependsOn],
      }),
    },
  ];
}

// The allowed status changes; staying in the same status is not a transition and always allowed.
const allowedTransitions: ReadonlyMap<SubtaskStatus, readonly SubtaskStatus[]> = new Map([
  [SubtaskStatus.TODO, [SubtaskStatus.IN_PROGRESS, SubtaskStatus.BLOCKED]],
  [SubtaskStatus.IN_PROGRESS, [SubtaskStatus.TODO, SubtaskStatus.BLOCKED, SubtaskStatus.DONE]],
  [SubtaskStatus.BLOCKED, [SubtaskStatus.TODO, SubtaskStatus.IN_PROGRESS]],
  [SubtaskStatus.DONE, [SubtaskStatus.IN_PROGRESS]],
]);

function updateSubtask(command: UpdateSubtask, state: ContextState): Events {
  const { subtaskId } = command;
  const subtask = state.subtasks.get(subtaskId);
  if (subtask === undefined) {
    throw new EntityNotFoundError(state.storyId, "subtask", subtaskId);
  }
  const status =
    command.status === undefined || command.status === SubtaskStatus.UNSPECIFIED
      ? subtask.status
      : command.status;
  const assignee = command.assignee ?? subtask.assignee;
  if (status === subtask.status && assignee === subtask.assignee) {
    return [];
  }
  if (status !== subtask.status) {
    const allowed = allowedTransitions.get(subtask.status) ?? [];
    if (!allowed.includes(status)) {
      const options = allowed.length === 0 ? "none" : allowed.map(statusName).join(", ");
      throw new RuleViolationError(
        state.storyId,
        DomainRule.InvalidStatusTransition,
        `subtask "${subtaskId}" cannot move from ${statusName(subtask.status)} to ${statusName(status)} (allowed from ${statusName(subtask.status)}: ${options})`,
      );
    }
    if (status === SubtaskStatus.DONE) {
      requireDependenciesDone(subtask, state);
    }
  }
  return [
    {
      case: "subtaskUpdated",
      value: create(SubtaskUpdatedSchema, { subtaskId, status, assignee }),
    },
  ];
}

function requireDependenciesDone(subtask: SubtaskState, state: ContextState): void {
  const pending: string[] = [];
  for (const id of subtask.dependsOn) {
    const dependency = state.subtasks.get(id);
    if (dependency?.status !== SubtaskStatus.DONE) {
      pending.push(
        dependency === undefined
          ? `"${id}" is unknown`
          : `"${id}" is ${statusName(dependency.status)}`,
      );
    }
  }
  if (pending.length > 0) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.DependenciesNotDone,
      `subtask "${subtask.subtaskId}" cannot be DONE before its dependencies: ${pending.join(", ")}`,
    );
  }
}

function addSubtaskDependency(command: AddSubtaskDependency, state: ContextState): Events {
  const { subtaskId, dependsOnSubtaskId: dependency } = command;
  const subtask = state.subtasks.get(subtaskId);
  if (subtask === undefined) {
    throw new EntityNotFoundError(state.storyId, "subtask", subtaskId);
  }
  if (dependency === subtaskId) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.SelfReference,
      `subtask "${subtaskId}" cannot depend on itself`,
    );
  }
  if (!state.subtasks.has(dependency)) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.UnknownReference,
      `subtask "${subtaskId}" cannot depend on subtask "${dependency}": it does not exist in story "${state.storyId}"`,
    );
  }
  if (subtask.dependsOn.includes(dependency)) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.DuplicateDependency,
      `subtask "${subtaskId}" already depends on "${dependency}"`,
    );
  }
  const path = dependencyPath(state.subtasks, dependency, subtaskId);
  if (path !== undefined) {
    throw new RuleViolationError(
      state.storyId,
      DomainRule.DependencyCycle,
      `subtask "${subtaskId}" cannot depend on "${dependency}": it would close the cycle ${[...path, dependency].join(" → ")}`,
    );
  }
  return [
    {
      case: "subtaskDependencyAdded",
      value: create(SubtaskDependencyAddedSchema, { subtaskId, dependsOnSubtaskId: dependency }),
    },
  ];
}

// The shortest chain of dependencies leading from `from` to `to` (both included), found breadth
// first in time linear in the size of the graph; undefined when `from` does not reach `to`.
function dependencyPath(
  subtasks: ReadonlyMap<string, SubtaskState>,
  from: string,
  to: string,
): readonly string[] | undefined {
  const reachedFrom = new Map<string, string>([[from, from]]);
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i] as string;
    if (node === to) {
      const path = [node];
      for (let step = node; step !== from; ) {
        step = reachedFrom.get(step) ?? from;
        path.push(step);
      }
      return path.reverse();
    }
    for (const next of subtasks.get(node)?.dependsOn ?? []) {
      if (!reachedFrom.has(next)) {
        reachedFrom.set(next, node);
        queue.push(next);
      }
    }
  }
  return undefined;
}

function archiveContext(command: ArchiveContext): Events {
  return [
    { case: "contextArchived", value: create(ContextArchivedSchema, { reason: command.reason }) },
  ];
}

// Every command but CreateContext needs a story that exists and is not archived.
function requireOpen(command: Exclude<Command, CreateContext>, state: ContextState): ContextState {
  switch (state.lifecycle) {
    case ContextLifecycle.Open:
      return state;
    case ContextLifecycle.Absent:
      throw new StoryNotFoundError(state.storyId);
    case ContextLifecycle.Archived:
      throw new RuleViolationError(
        state.storyId,
        DomainRule.StoryArchived,
        command.type === "ArchiveContext"
          ? `story "${state.storyId}" is already archived`
          : `cannot ${command.type}: story "${state.storyId}" is archived and accepts no further changes`,
      );
    default: {
      const unknown: never = state.lifecycle;
      throw new TypeError(`unknown lifecycle ${JSON.stringify(unknown)}`);
    }
  }
}

function isActive(decision: DecisionState): boolean {
  return decision.status === DecisionStatus.ACTIVE;
}

function statusName(status: SubtaskStatus): string {
  return SubtaskStatus[status] ?? String(status);
}
