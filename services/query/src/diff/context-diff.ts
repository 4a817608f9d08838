import { create, equals } from "@bufbuild/protobuf";
import { type ContextState, toContextMessage } from "@ctx/domain";
import {
  type Decision,
  DecisionStatus,
  type Subtask,
  type SubtaskChange,
  SubtaskChangeSchema,
  SubtaskSchema,
} from "@ctx/proto";

/** What changed in a story's context between two states of it. */
export interface ContextDiff {
  /** Decisions the later state has and the earlier did not, as they are in the later state. */
  readonly decisionsAdded: Decision[];
  /** Decisions superseded in the later state but not in the earlier (added ones included). */
  readonly decisionsSuperseded: Decision[];
  readonly subtasksAdded: Subtask[];
  /** Subtasks in both states that differ (status, assignee, dependencies, title). */
  readonly subtasksChanged: SubtaskChange[];
  /** Title, description or status of the story differ. */
  readonly storyChanged: boolean;
}

/** Compares two states of one story, in the creation order of the later one. */
export function diffContexts(before: ContextState, after: ContextState): ContextDiff {
  const was = toContextMessage(before);
  const now = toContextMessage(after);
  const decisionsBefore = new Map(was.decisions.map((d) => [d.decisionId, d]));
  const subtasksBefore = new Map(was.subtasks.map((s) => [s.subtaskId, s]));
  const subtasksChanged: SubtaskChange[] = [];
  for (const subtask of now.subtasks) {
    const old = subtasksBefore.get(subtask.subtaskId);
    if (old !== undefined && !equals(SubtaskSchema, old, subtask)) {
      subtasksChanged.push(
        create(SubtaskChangeSchema, { subtaskId: subtask.subtaskId, before: old, after: subtask }),
      );
    }
  }
  return {
    decisionsAdded: now.decisions.filter((d) => !decisionsBefore.has(d.decisionId)),
    decisionsSuperseded: now.decisions.filter(
      (d) =>
        d.status === DecisionStatus.SUPERSEDED &&
        decisionsBefore.get(d.decisionId)?.status !== DecisionStatus.SUPERSEDED,
    ),
    subtasksAdded: now.subtasks.filter((s) => !subtasksBefore.has(s.subtaskId)),
    subtasksChanged,
    storyChanged:
      was.title !== now.title || was.description !== now.description || was.status !== now.status,
  };
}
