import { type ContextEventData, fold, type StoryId, toContextMessage } from "@ctx/domain";
import type { EventStore } from "@ctx/event-store";
import type { Projection } from "@ctx/projector";
import { expect } from "vitest";

/**
 * Versions `from` … `from + count - 1` of a load-test story: created at version 1, then subtasks
 * (each depending on the one added three versions earlier) and updates of them, so every batch
 * touches nodes, properties and relationships.
 */
export function loadEvents(
  story: StoryId,
  from: number,
  count: number,
): { readonly data: ContextEventData }[] {
  return Array.from({ length: count }, (_, i) => {
    const version = from + i;
    const data: ContextEventData =
      version === 1
        ? {
            case: "contextCreated",
            value: {
              $typeName: "context.v1.ContextCreated",
              title: `story ${story}`,
              description: "",
            },
          }
        : version % 3 === 0
          ? {
              case: "subtaskUpdated",
              value: {
                $typeName: "context.v1.SubtaskUpdated",
                subtaskId: `t${version - 1}`,
                status: 2,
                assignee: `dev${version % 7}`,
              },
            }
          : {
              case: "subtaskAdded",
              value: {
                $typeName: "context.v1.SubtaskAdded",
                subtaskId: `t${version}`,
                title: `task ${version}`,
                dependsOn: version > 4 ? [`t${version - 3}`] : [],
              },
            };
    return { data };
  });
}

/** Every story of the model's active generation is exactly the fold of its events in the stream. */
export async function expectModelEqualsFold(
  projection: Projection,
  store: EventStore,
  ids: readonly StoryId[],
): Promise<void> {
  const generation = await projection.activeGeneration();
  for (const id of ids) {
    const read = await projection.readContext(generation, id);
    const history = await store.read(id);
    expect(read?.version, `${projection.name} ${id}`).toBe(history.length);
    expect(read?.stale, `${projection.name} ${id}`).toBe(false);
    expect(read?.context, `${projection.name} ${id}`).toEqual(toContextMessage(fold(id, history)));
  }
}
