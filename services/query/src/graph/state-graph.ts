import type { ContextState, SubtaskState } from "@ctx/domain";
import { SubtaskStatus } from "@ctx/proto";
import type { RelatedSubtask } from "@ctx/read-model-neo4j";

// The graph questions answered from a folded story, for when the graph read model cannot be
// trusted with the story (stale, or without it yet). Same answers as the Cypher of
// @ctx/read-model-neo4j's graph reader: shortest depths by breadth-first search, ordered by depth,
// then by creation (the order of the state's maps); a spec compares the two on one story.

/**
 * The subtasks a decision affects (depth 1), and transitively every subtask depending on one of
 * them (+1 per dependency); undefined when the story has no such decision.
 */
export function affectedSubtasks(
  state: ContextState,
  decisionId: string,
): RelatedSubtask[] | undefined {
  const decision = state.decisions.get(decisionId);
  if (decision === undefined) return undefined;
  const dependents = new Map<string, string[]>();
  for (const subtask of state.subtasks.values()) {
    for (const on of subtask.dependsOn) {
      const list = dependents.get(on) ?? [];
      list.push(subtask.subtaskId);
      dependents.set(on, list);
    }
  }
  return reach(
    state,
    decision.affectsSubtaskIds,
    (id) => dependents.get(id) ?? [],
    () => true,
  );
}

/**
 * The subtasks a subtask depends on, directly (depth 1) or transitively, that are not DONE;
 * undefined when the story has no such subtask.
 */
export function blockingSubtasks(
  state: ContextState,
  subtaskId: string,
): RelatedSubtask[] | undefined {
  const subtask = state.subtasks.get(subtaskId);
  if (subtask === undefined) return undefined;
  return reach(
    state,
    subtask.dependsOn,
    (id) => state.subtasks.get(id)?.dependsOn ?? [],
    (t) => t.status !== SubtaskStatus.DONE && t.subtaskId !== subtaskId,
  );
}

/**
 * Breadth-first from `first` (depth 1) along `next`: every subtask reached once, at its shortest
 * depth; those `keep` accepts, by depth, then creation.
 */
function reach(
  state: ContextState,
  first: readonly string[],
  next: (subtaskId: string) => readonly string[],
  keep: (subtask: SubtaskState) => boolean,
): RelatedSubtask[] {
  const depthOf = new Map<string, number>();
  let frontier = first.filter((id) => state.subtasks.has(id));
  for (const id of frontier) depthOf.set(id, 1);
  for (let depth = 2; frontier.length > 0; depth++) {
    const following: string[] = [];
    for (const id of frontier) {
      for (const n of next(id)) {
        if (depthOf.has(n) || !state.subtasks.has(n)) continue;
        depthOf.set(n, depth);
        following.push(n);
      }
    }
    frontier = following;
  }
  const position = new Map([...state.subtasks.keys()].map((id, i) => [id, i]));
  const reached: (RelatedSubtask & { readonly position: number })[] = [];
  for (const [id, depth] of depthOf) {
    const subtask = state.subtasks.get(id);
    if (subtask === undefined || !keep(subtask)) continue;
    reached.push({
      subtaskId: id,
      title: subtask.title,
      status: subtask.status,
      depth,
      position: position.get(id) ?? 0,
    });
  }
  reached.sort((a, b) => a.depth - b.depth || a.position - b.position);
  return reached.map(({ position: _, ...r }) => r);
}
