import type { DecisionStatus, SubtaskStatus } from "@ctx/proto";
import type { StoryId } from "./story-id.ts";
import { type StreamVersion, streamVersion } from "./stream-version.ts";

/**
 * Where a story's context is in its life. `Absent` is a state of its own (not "no state") so that
 * `decide` can tell "create it" from "it does not exist" without a separate lookup.
 */
export const ContextLifecycle = {
  Absent: "absent",
  Open: "open",
  Archived: "archived",
} as const;
export type ContextLifecycle = (typeof ContextLifecycle)[keyof typeof ContextLifecycle];

/** A decision as it stands after every event so far. */
export interface DecisionState {
  readonly decisionId: string;
  readonly title: string;
  readonly rationale: string;
  readonly madeBy: string;
  readonly alternatives: readonly string[];
  readonly status: DecisionStatus;
  readonly affectsSubtaskIds: readonly string[];
  /** The decision that replaced this one; `""` while it is active. */
  readonly supersededByDecisionId: string;
}

/** A subtask as it stands after every event so far. */
export interface SubtaskState {
  readonly subtaskId: string;
  readonly title: string;
  readonly status: SubtaskStatus;
  /** `""` when unassigned. */
  readonly assignee: string;
  /** Subtasks this one depends on, in the order the dependencies were added. */
  readonly dependsOn: readonly string[];
}

/**
 * The whole context of one story, folded from its events. The command side decides against it and
 * the query side answers from it, so both see the same rules applied the same way.
 *
 * The maps keep insertion order, which is the order of creation: lists built from them are stable
 * across replays, snapshots and read models.
 */
export interface ContextState {
  readonly storyId: StoryId;
  readonly lifecycle: ContextLifecycle;
  readonly title: string;
  readonly description: string;
  /** Version of the last event folded in; 0 when none. */
  readonly version: StreamVersion;
  /** `occurredAt` of the last event folded in; undefined when none. */
  readonly updatedAt: Date | undefined;
  readonly decisions: ReadonlyMap<string, DecisionState>;
  readonly subtasks: ReadonlyMap<string, SubtaskState>;
}

const noDecisions: ReadonlyMap<string, DecisionState> = new Map();
const noSubtasks: ReadonlyMap<string, SubtaskState> = new Map();

/** The state of a story before its first event: the seed of every fold. */
export function initialState(storyId: StoryId): ContextState {
  return {
    storyId,
    lifecycle: ContextLifecycle.Absent,
    title: "",
    description: "",
    version: streamVersion(0),
    updatedAt: undefined,
    decisions: noDecisions,
    subtasks: noSubtasks,
  };
}
