import { create } from "@bufbuild/protobuf";
import {
  type Context,
  ContextSchema,
  ContextStatus,
  type Decision,
  DecisionSchema,
  type Subtask,
  SubtaskSchema,
} from "@ctx/proto";
import {
  ContextLifecycle,
  type ContextState,
  type DecisionState,
  type SubtaskState,
} from "./context-state.ts";
import { storyId } from "./story-id.ts";
import type { StreamVersion } from "./stream-version.ts";

/**
 * The proto `Context` of a state, decisions and subtasks in creation order: what the query service
 * answers and what a snapshot stores. Shares no arrays with the state, so the message may be
 * changed freely.
 */
export function toContextMessage(state: ContextState): Context {
  return create(ContextSchema, {
    storyId: state.storyId,
    title: state.title,
    description: state.description,
    status: contextStatusOf(state.lifecycle),
    decisions: Array.from(state.decisions.values(), (d) =>
      create(DecisionSchema, {
        decisionId: d.decisionId,
        title: d.title,
        rationale: d.rationale,
        madeBy: d.madeBy,
        alternatives: [...d.alternatives],
        status: d.status,
        affectsSubtaskIds: [...d.affectsSubtaskIds],
        supersededByDecisionId: d.supersededByDecisionId,
      }),
    ),
    subtasks: Array.from(state.subtasks.values(), (s) =>
      create(SubtaskSchema, {
        subtaskId: s.subtaskId,
        title: s.title,
        status: s.status,
        assignee: s.assignee,
        dependsOn: [...s.dependsOn],
      }),
    ),
  });
}

/**
 * The state a `Context` message describes, for loading a snapshot: the message does not carry the
 * version and time of the last event, so the snapshot stores them beside it.
 * `fromContextMessage(toContextMessage(s), s.version, s.updatedAt)` equals `s`.
 *
 * @throws RangeError when the message has an invalid story id or a context status this code does
 *   not know (a snapshot written by newer code: rebuild from events instead).
 */
export function fromContextMessage(
  message: Context,
  version: StreamVersion,
  updatedAt: Date | undefined,
): ContextState {
  return {
    storyId: storyId(message.storyId),
    lifecycle: lifecycleOf(message.status),
    title: message.title,
    description: message.description,
    version,
    updatedAt,
    decisions: new Map(message.decisions.map((d) => [d.decisionId, decisionStateOf(d)])),
    subtasks: new Map(message.subtasks.map((s) => [s.subtaskId, subtaskStateOf(s)])),
  };
}

function decisionStateOf(d: Decision): DecisionState {
  return {
    decisionId: d.decisionId,
    title: d.title,
    rationale: d.rationale,
    madeBy: d.madeBy,
    alternatives: [...d.alternatives],
    status: d.status,
    affectsSubtaskIds: [...d.affectsSubtaskIds],
    supersededByDecisionId: d.supersededByDecisionId,
  };
}

function subtaskStateOf(s: Subtask): SubtaskState {
  return {
    subtaskId: s.subtaskId,
    title: s.title,
    status: s.status,
    assignee: s.assignee,
    dependsOn: [...s.dependsOn],
  };
}

function contextStatusOf(lifecycle: ContextLifecycle): ContextStatus {
  switch (lifecycle) {
    case ContextLifecycle.Absent:
      return ContextStatus.UNSPECIFIED;
    case ContextLifecycle.Open:
      return ContextStatus.OPEN;
    case ContextLifecycle.Archived:
      return ContextStatus.ARCHIVED;
    default: {
      const unknown: never = lifecycle;
      throw new TypeError(`unknown lifecycle ${JSON.stringify(unknown)}`);
    }
  }
}

function lifecycleOf(status: ContextStatus): ContextLifecycle {
  switch (status) {
    case ContextStatus.UNSPECIFIED:
      return ContextLifecycle.Absent;
    case ContextStatus.OPEN:
      return ContextLifecycle.Open;
    case ContextStatus.ARCHIVED:
      return ContextLifecycle.Archived;
    default: {
      const unknown: never = status;
      throw new RangeError(`unknown context status ${unknown}`);
    }
  }
}
