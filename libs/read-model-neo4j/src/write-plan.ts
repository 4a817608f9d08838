import { ContextLifecycle, type ContextState } from "@ctx/domain";
import { followsOn } from "@ctx/event-store";
import type { StoryEvents } from "@ctx/projector";
import {
  ContextStatus,
  ContextStatusSchema,
  DecisionStatus,
  DecisionStatusSchema,
  SubtaskStatus,
  SubtaskStatusSchema,
} from "@ctx/proto";
import type { GenerationKeys } from "./graph-keys.ts";
import { enumName } from "./graph-values.ts";

// A batch is written as a handful of UNWIND queries, one per kind of row, whatever the number of
// stories, events and event types. The events of each story are first folded here, in order, into
// what each touched node must look like afterwards: a node the batch (re)creates gets its whole
// content (a "full" row); a node it only changes gets a patch that is applied only if the node
// exists, exactly as `evolve` ignores an event about an unknown decision or subtask. So the order
// within a story is kept without one query per event or per "round" of events.

/** A story's node after the batch; `expected` is the version guard. */
export interface StoryRow {
  readonly key: string;
  readonly id: string;
  readonly expected: number;
  readonly version: number;
  /** Epoch milliseconds of the last event; null when the story has none. */
  readonly updatedAt: number | null;
  /** Only the properties the batch set (title, description, status). */
  readonly props: Readonly<Record<string, string>>;
}

/**
 * A subtask the batch (re)creates, with its whole content. Its DEPENDS_ON relationships are
 * rewritten to `dependsOnKeys` (the targets that exist).
 */
export interface SubtaskRow {
  readonly key: string;
  readonly storyKey: string;
  readonly storyId: string;
  readonly id: string;
  /** Creation order; kept when the node already exists (a re-added id keeps its place). */
  readonly position: number;
  readonly title: string;
  readonly status: string;
  readonly assignee: string;
  readonly dependsOn: readonly string[];
  readonly dependsOnKeys: readonly string[];
}

/** Changes to a subtask the batch did not create: applied only if it exists. */
export interface SubtaskPatchRow {
  readonly key: string;
  /** Null: not updated. Status and assignee are always updated together. */
  readonly status: string | null;
  readonly assignee: string | null;
  /** Dependencies to append, in order, each unless already there. */
  readonly addDependsOn: readonly string[];
  readonly addDependsOnKeys: readonly string[];
}

/**
 * A decision the batch (re)creates. Its AFFECTS relationships are rewritten to `affectsKeys`, and
 * whatever SUPERSEDES it is forgotten (a SupersessionRow follows when it is superseded).
 */
export interface DecisionRow {
  readonly key: string;
  readonly storyKey: string;
  readonly storyId: string;
  readonly id: string;
  readonly position: number;
  readonly title: string;
  readonly rationale: string;
  readonly madeBy: string;
  readonly alternatives: readonly string[];
  readonly status: string;
  readonly affects: readonly string[];
  readonly affectsKeys: readonly string[];
  readonly supersededBy: string;
}

/** A supersession of a decision the batch did not create: applied only if it exists. */
export interface DecisionPatchRow {
  readonly key: string;
  readonly supersededBy: string;
}

/** `by` SUPERSEDES `key`: written after every decision of the batch, so both exist. */
export interface SupersessionRow {
  readonly key: string;
  readonly by: string;
}

/** Every row a write needs, by kind: one UNWIND query each. */
export interface WritePlan {
  readonly stories: readonly StoryRow[];
  readonly subtasks: readonly SubtaskRow[];
  readonly subtaskPatches: readonly SubtaskPatchRow[];
  readonly decisions: readonly DecisionRow[];
  readonly decisionPatches: readonly DecisionPatchRow[];
  readonly supersessions: readonly SupersessionRow[];
}

const status = {
  open: enumName(ContextStatusSchema, ContextStatus.OPEN),
  archived: enumName(ContextStatusSchema, ContextStatus.ARCHIVED),
  absent: enumName(ContextStatusSchema, ContextStatus.UNSPECIFIED),
  active: enumName(DecisionStatusSchema, DecisionStatus.ACTIVE),
  superseded: enumName(DecisionStatusSchema, DecisionStatus.SUPERSEDED),
  todo: enumName(SubtaskStatusSchema, SubtaskStatus.TODO),
} as const;

// What the fold of a story's events leaves of one subtask or decision; keys of targets come last.
type Subtask =
  | { readonly kind: "full"; row: Mutable<Omit<SubtaskRow, "dependsOnKeys">> }
  | { readonly kind: "patch"; row: Mutable<Omit<SubtaskPatchRow, "addDependsOnKeys">> };
type Decision =
  | { readonly kind: "full"; row: Mutable<Omit<DecisionRow, "affectsKeys">> }
  | { readonly kind: "patch"; row: Mutable<DecisionPatchRow> };
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The rows that write the events of a batch: for every story, the result of its events applied in
 * order with the same rules as `evolve`.
 *
 * @throws RangeError when a story appears twice, or its events are not its versions
 *   `expectedVersion + 1, + 2, …` (the runtime's promise; writing them anyway would corrupt the model).
 */
export function planEvents(keys: GenerationKeys, batch: readonly StoryEvents[]): WritePlan {
  const plan = emptyPlan();
  const seen = new Set<string>();
  for (const story of batch) {
    if (seen.has(story.storyId)) {
      throw new RangeError(`story ${story.storyId} appears twice in one batch`);
    }
    seen.add(story.storyId);
    planStory(keys, story, plan);
  }
  // Stories are locked in key order, so two transactions never wait for each other in a circle.
  plan.stories.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return plan;
}

function planStory(keys: GenerationKeys, story: StoryEvents, plan: MutablePlan): void {
  const { storyId, expectedVersion, events } = story;
  const storyKey = keys.story(storyId);
  const props: Record<string, string> = {};
  const subtasks = new Map<string, Subtask>();
  const decisions = new Map<string, Decision>();
  let version: number = expectedVersion;
  let updatedAt: number | null = null;

  for (const event of events) {
    if (event.storyId !== storyId || !followsOn(version, event)) {
      throw new RangeError(
        `story ${storyId}: expected version ${version + 1}, got ${event.storyId} version ${event.version}`,
      );
    }
    version = event.version;
    updatedAt = event.occurredAt.getTime();
    const { data } = event;
    switch (data.case) {
      case "contextCreated":
        props.title = data.value.title;
        props.description = data.value.description;
        props.status = status.open;
        break;
      case "contextArchived":
        props.status = status.archived;
        break;
      case "eventsSetAside":
        // Messages an operator set aside: only the version counts (the projector rebuilds the
        // story from the stream when this event arrives).
        break;
      case "decisionAdded": {
        const added = data.value;
        const current = decisions.get(added.decisionId);
        decisions.set(added.decisionId, {
          kind: "full",
          row: {
            key: keys.entity(storyId, added.decisionId),
            storyKey,
            storyId,
            id: added.decisionId,
            position: current?.kind === "full" ? current.row.position : version,
            title: added.title,
            rationale: added.rationale,
            madeBy: added.madeBy,
            alternatives: [...added.alternatives],
            status: status.active,
            affects: [...added.affectsSubtaskIds],
            supersededBy: "",
          },
        });
        break;
      }
      case "decisionSuperseded": {
        const { decisionId, supersededByDecisionId } = data.value;
        const current = decisions.get(decisionId);
        if (current?.kind === "full") {
          current.row.status = status.superseded;
          current.row.supersededBy = supersededByDecisionId;
        } else if (current?.kind === "patch") {
          current.row.supersededBy = supersededByDecisionId;
        } else {
          decisions.set(decisionId, {
            kind: "patch",
            row: { key: keys.entity(storyId, decisionId), supersededBy: supersededByDecisionId },
          });
        }
        break;
      }
      case "subtaskAdded": {
        const added = data.value;
        const current = subtasks.get(added.subtaskId);
        subtasks.set(added.subtaskId, {
          kind: "full",
          row: {
            key: keys.entity(storyId, added.subtaskId),
            storyKey,
            storyId,
            id: added.subtaskId,
            position: current?.kind === "full" ? current.row.position : version,
            title: added.title,
            status: status.todo,
            assignee: "",
            dependsOn: [...added.dependsOn],
          },
        });
        break;
      }
      case "subtaskUpdated": {
        const { subtaskId, assignee } = data.value;
        const name = enumName(SubtaskStatusSchema, data.value.status);
        const current = subtasks.get(subtaskId);
        if (current === undefined) {
          subtasks.set(subtaskId, {
            kind: "patch",
            row: { key: keys.entity(storyId, subtaskId), status: name, assignee, addDependsOn: [] },
          });
        } else {
          current.row.status = name;
          current.row.assignee = assignee;
        }
        break;
      }
      case "subtaskDependencyAdded": {
        const { subtaskId, dependsOnSubtaskId: on } = data.value;
        const current = subtasks.get(subtaskId);
        if (current === undefined) {
          subtasks.set(subtaskId, {
            kind: "patch",
            row: {
              key: keys.entity(storyId, subtaskId),
              status: null,
              assignee: null,
              addDependsOn: [on],
            },
          });
        } else if (current.kind === "full") {
          if (!current.row.dependsOn.includes(on))
            current.row.dependsOn = [...current.row.dependsOn, on];
        } else if (!current.row.addDependsOn.includes(on)) {
          current.row.addDependsOn = [...current.row.addDependsOn, on];
        }
        break;
      }
      case undefined:
        // A stored event its upcaster drops: the version counts, nothing else changes.
        break;
      default:
        // A payload case this code does not know yet: the version still counts (as in evolve).
        data satisfies never;
    }
  }

  plan.stories.push({
    key: storyKey,
    id: storyId,
    expected: expectedVersion,
    version,
    updatedAt,
    props,
  });
  for (const subtask of subtasks.values()) addSubtask(keys, storyId, subtask, plan);
  for (const decision of decisions.values()) addDecision(keys, storyId, decision, plan);
}

/**
 * The rows that write a whole story state, for `replaceStory` (after its old nodes are deleted).
 * Positions follow the state's maps, which keep the order of creation.
 */
export function planReplacement(keys: GenerationKeys, state: ContextState): WritePlan {
  const plan = emptyPlan();
  const { storyId } = state;
  const storyKey = keys.story(storyId);
  plan.stories.push({
    key: storyKey,
    id: storyId,
    expected: 0,
    version: state.version,
    updatedAt: state.updatedAt?.getTime() ?? null,
    props: {
      title: state.title,
      description: state.description,
      status: lifecycleStatus(state.lifecycle),
    },
  });
  let position = 0;
  for (const s of state.subtasks.values()) {
    position += 1;
    const row = {
      key: keys.entity(storyId, s.subtaskId),
      storyKey,
      storyId,
      id: s.subtaskId,
      position,
      title: s.title,
      status: enumName(SubtaskStatusSchema, s.status),
      assignee: s.assignee,
      dependsOn: [...s.dependsOn],
    };
    addSubtask(keys, storyId, { kind: "full", row }, plan);
  }
  position = 0;
  for (const d of state.decisions.values()) {
    position += 1;
    const row = {
      key: keys.entity(storyId, d.decisionId),
      storyKey,
      storyId,
      id: d.decisionId,
      position,
      title: d.title,
      rationale: d.rationale,
      madeBy: d.madeBy,
      alternatives: [...d.alternatives],
      status: enumName(DecisionStatusSchema, d.status),
      affects: [...d.affectsSubtaskIds],
      supersededBy: d.supersededByDecisionId,
    };
    addDecision(keys, storyId, { kind: "full", row }, plan);
  }
  return plan;
}

function lifecycleStatus(lifecycle: ContextLifecycle): string {
  switch (lifecycle) {
    case ContextLifecycle.Absent:
      return status.absent;
    case ContextLifecycle.Open:
      return status.open;
    case ContextLifecycle.Archived:
      return status.archived;
    default: {
      const unknown: never = lifecycle;
      throw new TypeError(`unknown lifecycle ${JSON.stringify(unknown)}`);
    }
  }
}

type MutablePlan = { [K in keyof WritePlan]: Array<WritePlan[K][number]> };

function emptyPlan(): MutablePlan {
  return {
    stories: [],
    subtasks: [],
    subtaskPatches: [],
    decisions: [],
    decisionPatches: [],
    supersessions: [],
  };
}

function addSubtask(
  keys: GenerationKeys,
  storyId: StoryEvents["storyId"],
  subtask: Subtask,
  plan: MutablePlan,
): void {
  const target = (id: string) => keys.entity(storyId, id);
  if (subtask.kind === "full") {
    plan.subtasks.push({ ...subtask.row, dependsOnKeys: subtask.row.dependsOn.map(target) });
  } else {
    const addDependsOnKeys = subtask.row.addDependsOn.map(target);
    plan.subtaskPatches.push({ ...subtask.row, addDependsOnKeys });
  }
}

function addDecision(
  keys: GenerationKeys,
  storyId: StoryEvents["storyId"],
  decision: Decision,
  plan: MutablePlan,
): void {
  const target = (id: string) => keys.entity(storyId, id);
  const { row } = decision;
  if (decision.kind === "full") {
    plan.decisions.push({ ...decision.row, affectsKeys: decision.row.affects.map(target) });
  } else {
    plan.decisionPatches.push(decision.row);
  }
  if (row.supersededBy !== "") {
    plan.supersessions.push({ key: row.key, by: target(row.supersededBy) });
  }
}
