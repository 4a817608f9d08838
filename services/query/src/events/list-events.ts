import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { untilAborted } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import { currentEnvelope, type EventStore } from "@ctx/event-store";
import type { ListEventsRequest, ListEventsResponse } from "@ctx/proto";
import { ListEventsResponseSchema } from "@ctx/proto";
import type { TemporalReader } from "@ctx/snapshots";
import { UnknownStoryError } from "../errors.ts";
import { decodePageToken, encodePageToken } from "./page-token.ts";

export const defaultPageSize = 100;

/**
 * One page of a story's events, upcast (envelopes in their current shape; events an upcaster drops
 * are left out). Pages are version ranges: the token
 * names the next page's first version and where the event before it sits in the stream, so paging
 * through a long story reads each event once.
 */
export async function listEvents(
  reader: TemporalReader,
  store: EventStore,
  storyId: StoryId,
  request: ListEventsRequest,
  signal: AbortSignal,
): Promise<ListEventsResponse> {
  const pageSize = request.pageSize === 0 ? defaultPageSize : request.pageSize;
  const token = request.pageToken === "" ? undefined : decodePageToken(request.pageToken);
  const fromVersion = token?.nextVersion ?? Math.max(1, request.fromVersion);
  const until = request.until;
  const lastWanted = until.case === "toVersion" ? until.value : Number.POSITIVE_INFINITY;
  // One event more than a page: whether it exists says whether another page follows.
  const events = await reader.events(
    storyId,
    {
      fromVersion,
      toVersion: Math.min(lastWanted, fromVersion + pageSize),
      ...(until.case === "untilTime" ? { untilTime: timestampDate(until.value) } : {}),
      ...(token ? { after: token.after } : {}),
    },
    { signal },
  );
  const page = events.slice(0, pageSize);
  // A page never ends inside the parts of one split stored event.
  while (page.length > 1 && events[page.length]?.version === page[page.length - 1]?.version) {
    page.pop();
  }
  const last = page[page.length - 1];
  if (last === undefined && (await untilAborted(store.head(storyId), signal)) === undefined) {
    throw new UnknownStoryError(storyId);
  }
  return create(ListEventsResponseSchema, {
    events: page.filter((e) => e.data.case !== undefined).map(currentEnvelope),
    nextPageToken:
      events.length > pageSize && last !== undefined
        ? encodePageToken({
            nextVersion: last.version + 1,
            after: { sequence: last.sequence, version: last.version },
          })
        : "",
  });
}
