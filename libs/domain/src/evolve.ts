import { DecisionStatus, SubtaskStatus } from "@ctx/proto";
import type { DomainEvent } from "./context-event.ts";
import {
  ContextLifecycle,
  type ContextState,
  type DecisionState,
  initialState,
  type SubtaskState,
} from "./context-state.ts";
import type { StoryId } from "./story-id.ts";
import { StoryMap } from "./story-map.ts";

/**
 * Applies one event to a state and returns the next state; `state` is left untouched.
 *
 * Events are facts: evolve never refuses one. An event that names an unknown decision or subtask
 * (which `decide` never produces, but an old or hand-repaired stream might hold) changes nothing but
 * the version, so replaying a story always succeeds. The map an event touches is not copied: the
 * next state's map is a StoryMap that shares the entries of this one's.
 */
export function evolve(state: ContextState, event: DomainEvent): ContextState {
  const draft = draftOf(state, false);
  apply(draft, event);
  return stateOf(draft);
}

/**
 * Folds a story's events, in version order, into its state: the same rules as `evolve`, in time
 * linear in the number of events (the maps are copied once, not per event), so 10,000-event stories
 * replay cheaply.
 */
export function fold(storyId: StoryId, events: Iterable<DomainEvent>): ContextState {
  return evolveAll(initialState(storyId), events);
}

/**
 * Applies events, in version order, to a state: `fold` resumed from a snapshot, for temporal
 * queries (nearest snapshot + the events after it). Equal to calling `evolve` once per event, but
 * copies each map at most once.
 */
export function evolveAll(state: ContextState, events: Iterable<DomainEvent>): ContextState {
  const draft = draftOf(state, true);
  for (const event of events) {
    apply(draft, event);
  }
  return stateOf(draft);
}

// A state being built. The maps of the state it started from are never changed: see put.
interface Draft {
  readonly storyId: StoryId;
  lifecycle: ContextLifecycle;
  title: string;
  description: string;
  version: ContextState["version"];
  updatedAt: Date | undefined;
  readonly decisions: MapDraft<DecisionState>;
  readonly subtasks: MapDraft<SubtaskState>;
}

/** One of the state's maps being built; `own` is the draft's own copy, once it has one. */
interface MapDraft<V> {
  map: ReadonlyMap<string, V>;
  own: Map<string, V> | undefined;
  /** Many events (evolveAll): copy the map once, then set in place. One event: extend a StoryMap. */
  readonly copyOnce: boolean;
}

function draftOf(state: ContextState, copyOnce: boolean): Draft {
  return {
    ...state,
    decisions: { map: state.decisions, own: undefined, copyOnce },
    subtasks: { map: state.subtasks, own: undefined, copyOnce },
  };
}

function stateOf(draft: Draft): ContextState {
  return {
    storyId: draft.storyId,
    lifecycle: draft.lifecycle,
    title: draft.title,
    description: draft.description,
    version: draft.version,
    updatedAt: draft.updatedAt,
    decisions: draft.decisions.map,
    subtasks: draft.subtasks.map,
  };
}

/** Sets `key` in a map being built (a present key keeps its place). */
function put<V>(draft: MapDraft<V>, key: string, value: V): void {
  if (!draft.copyOnce) {
    draft.map = StoryMap.of(draft.map).with(key, value);
    return;
  }
  if (draft.own === undefined) {
    draft.own = new Map(draft.map);
    draft.map = draft.own;
  }
  draft.own.set(key, value);
}

function apply(draft: Draft, event: DomainEvent): void {
  draft.version = event.version;
  draft.updatedAt = event.occurredAt;
  const { data } = event;
  switch (data.case) {
    case "contextCreated":
      draft.lifecycle = ContextLifecycle.Open;
      draft.title = data.value.title;
      draft.description = data.value.description;
      return;
    case "decisionAdded": {
      const added = data.value;
      // Map.set on a present key keeps its position: a repeated id would not reorder the story.
      put(draft.decisions, added.decisionId, {
        decisionId: added.decisionId,
        title: added.title,
        rationale: added.rationale,
        madeBy: added.madeBy,
        alternatives: [...added.alternatives],
        status: DecisionStatus.ACTIVE,
        affectsSubtaskIds: [...added.affectsSubtaskIds],
        supersededByDecisionId: "",
      });
      return;
    }
    case "decisionSuperseded": {
      const { decisionId, supersededByDecisionId } = data.value;
      const decision = draft.decisions.map.get(decisionId);
      if (decision !== undefined) {
        put(draft.decisions, decisionId, {
          ...decision,
          status: DecisionStatus.SUPERSEDED,
          supersededByDecisionId,
        });
      }
      return;
    }
    case "subtaskAdded": {
      const added = data.value;
      put(draft.subtasks, added.subtaskId, {
        subtaskId: added.subtaskId,
        title: added.title,
        status: SubtaskStatus.TODO,
        assignee: "",
        dependsOn: [...added.dependsOn],
      });
      return;
    }
    case "subtaskUpdated": {
      const { subtaskId, status, assignee } = data.value;
      const subtask = draft.subtasks.map.get(subtaskId);
      if (subtask !== undefined) {
        put(draft.subtasks, subtaskId, { ...subtask, status, assignee });
      }
      return;
    }
    case "subtaskDependencyAdded": {
      const { subtaskId, dependsOnSubtaskId } = data.value;
      const subtask = draft.subtasks.map.get(subtaskId);
      if (subtask !== undefined && !subtask.dependsOn.includes(dependsOnSubtaskId)) {
        put(draft.subtasks, subtaskId, {
          ...subtask,
          dependsOn: [...subtask.dependsOn, dependsOnSubtaskId],
        });
      }
      return;
    }
    case "contextArchived":
      draft.lifecycle = ContextLifecycle.Archived;
      return;
    case "eventsSetAside":
      // A record of messages an operator set aside; what they were is not part of the state.
      return;
    case undefined:
      // A stored event its upcaster drops: its version counts, it changes nothing else.
      return;
    default:
      // A payload case this code does not know yet: the version still counts, the content is skipped.
      data satisfies never;
      return;
  }
}
