import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { untilAborted } from "@ctx/config";
import { evolveAll, initialState, type StoryId } from "@ctx/domain";
import { currentEnvelope, type EventStore } from "@ctx/event-store";
import {
  type ContextPoint,
  type DiffContextRequest,
  type DiffContextResponse,
  DiffContextResponseSchema,
} from "@ctx/proto";
import type { PointInTime, TemporalReader } from "@ctx/snapshots";
import { InvalidQueryError, UnknownStoryError, VersionOutOfRangeError } from "../errors.ts";
import { diffContexts } from "./context-diff.ts";

/**
 * What changed in a story between two points (times or versions), with the events in between.
 * The earlier state is read like any temporal query; the later one is the earlier state plus the
 * events after it, read once and returned with the diff.
 */
export async function diffContext(
  reader: TemporalReader,
  store: EventStore,
  storyId: StoryId,
  request: DiffContextRequest,
  signal: AbortSignal,
): Promise<DiffContextResponse> {
  const from = pointOf(request.from, "from");
  const to = pointOf(request.to, "to");
  const head = await untilAborted(store.head(storyId), signal);
  if (head === undefined) throw new UnknownStoryError(storyId);
  for (const p of [from, to]) {
    if (p.kind === "version" && p.version > head.version) {
      throw new VersionOutOfRangeError(storyId, p.version, head.version);
    }
  }
  if (from.kind === "time" && to.kind === "time" && to.time < from.time) {
    throw new InvalidQueryError("to", "to is earlier than from");
  }
  if (from.kind === "version" && to.kind === "version" && to.version < from.version) {
    throw new InvalidQueryError("to", "to is an earlier version than from");
  }

  const start: PointInTime =
    from.kind === "time"
      ? await reader.atTime(storyId, from.time, { signal })
      : from.version === 0
        ? {
            state: initialState(storyId),
            sequence: 0,
            snapshotVersion: 0,
            eventsFolded: 0,
            events: [],
            eventsFrom: "stream",
          }
        : await reader.atVersion(storyId, from.version, { signal });
  if (to.kind === "version" && to.version < start.state.version) {
    throw new InvalidQueryError("to", "to is before from");
  }
  // A time before the last event of `from` lies before `from` (events are stamped in order).
  const startedAt = start.state.updatedAt?.getTime() ?? Number.NEGATIVE_INFINITY;
  if (to.kind === "time" && to.time.getTime() < startedAt) {
    throw new InvalidQueryError("to", "to is before from");
  }
  const events = await reader.events(
    storyId,
    {
      fromVersion: start.state.version + 1,
      ...(to.kind === "version" ? { toVersion: to.version } : { untilTime: to.time }),
      ...(start.sequence > 0
        ? { after: { sequence: start.sequence, version: start.state.version } }
        : {}),
    },
    { signal },
  );
  const end = evolveAll(start.state, events);
  if (end.version === 0) {
    throw new UnknownStoryError(storyId, `story ${storyId} did not exist yet at the "to" point`);
  }
  return create(DiffContextResponseSchema, {
    fromVersion: start.state.version,
    toVersion: end.version,
    ...diffContexts(start.state, end),
    events: events.filter((e) => e.data.case !== undefined).map(currentEnvelope),
  });
}

type Point =
  | { readonly kind: "time"; readonly time: Date }
  | { readonly kind: "version"; readonly version: number };

function pointOf(point: ContextPoint | undefined, field: string): Point {
  const p = point?.point;
  switch (p?.case) {
    case "time":
      return { kind: "time", time: timestampDate(p.value) };
    case "version":
      return { kind: "version", version: p.value };
    default:
      // Request validation requires both points; this is only reached by a bypassing caller.
      throw new InvalidQueryError(field, `${field} needs a time or a version`);
  }
}
