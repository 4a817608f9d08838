import type { SubtaskStatus } from "@ctx/proto";

/**
 * A request to change a story's context, as plain data. Commands carry no story id and no expected
 * version: those belong to the caller, who loads the state the command is decided against.
 *
 * Field shapes (non-empty ids, lengths, patterns) are checked by request validation before a command
 * is built; `decide` checks only what needs the state.
 */
export type Command =
  | CreateContext
  | AddDecision
  | SupersedeDecision
  | AddSubtask
  | UpdateSubtask
  | AddSubtaskDependency
  | ArchiveContext;

/** Opens the story's context. */
export interface CreateContext {
  readonly type: "CreateContext";
  readonly title: string;
  readonly description: string;
}

/** Records a decision; every subtask it affects must exist. */
export interface AddDecision {
  readonly type: "AddDecision";
  readonly decisionId: string;
  readonly title: string;
  readonly rationale: string;
  readonly madeBy: string;
  readonly alternatives: readonly string[];
  readonly affectsSubtaskIds: readonly string[];
}

/** Replaces an active decision by another active decision of the same story. */
export interface SupersedeDecision {
  readonly type: "SupersedeDecision";
  readonly decisionId: string;
  readonly supersededByDecisionId: string;
}

/** Adds a subtask in status TODO; every subtask it depends on must exist. */
export interface AddSubtask {
  readonly type: "AddSubtask";
  readonly subtaskId: string;
  readonly title: string;
  readonly dependsOn: readonly string[];
}

/** Changes a subtask's status and/or assignee. */
export interface UpdateSubtask {
  readonly type: "UpdateSubtask";
  readonly subtaskId: string;
  /** Absent or UNSPECIFIED: unchanged. */
  readonly status?: SubtaskStatus;
  /** Absent: unchanged; `""`: unassign. */
  readonly assignee?: string;
}

/** Makes a subtask depend on another subtask of the story, unless that would close a cycle. */
export interface AddSubtaskDependency {
  readonly type: "AddSubtaskDependency";
  readonly subtaskId: string;
  readonly dependsOnSubtaskId: string;
}

/** Archives the story: no further changes are accepted. */
export interface ArchiveContext {
  readonly type: "ArchiveContext";
  readonly reason: string;
}
