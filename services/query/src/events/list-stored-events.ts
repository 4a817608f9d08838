import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { untilAborted } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import type { EventStore, StoredMessage } from "@ctx/event-store";
import {
  type ListStoredEventsRequest,
  type ListStoredEventsResponse,
  ListStoredEventsResponseSchema,
  type StoredEventMessage,
  StoredEventMessageSchema,
} from "@ctx/proto";
import { UnknownStoryError } from "../errors.ts";
import { defaultPageSize } from "./list-events.ts";

/** About this many bytes of messages per page at most (at least one message). */
export const storedPageBytes = 1024 * 1024;

/**
 * One page of a story's messages exactly as stored (ListStoredEvents): bytes, subject, stream
 * sequence and time, nothing decoded. Pages are stream positions: a page ends after `page_size`
 * messages or about 1 MiB, and names the sequence the next one starts after.
 */
export async function listStoredEvents(
  store: EventStore,
  storyId: StoryId,
  request: ListStoredEventsRequest,
  signal: AbortSignal,
): Promise<ListStoredEventsResponse> {
  const pageSize = request.pageSize === 0 ? defaultPageSize : request.pageSize;
  const afterSequence = Number(request.afterSequence);
  // A message more than a page, or past its byte budget: whether there is one says whether
  // another page follows.
  const read = await untilAborted(
    store.storyMessages(storyId, { afterSequence, limit: pageSize + 1, maxBytes: storedPageBytes }),
    signal,
  );
  if (read.length === 0 && afterSequence === 0) throw new UnknownStoryError(storyId);
  return create(ListStoredEventsResponseSchema, pageOfStored(read, pageSize));
}

/**
 * A page of stored messages from a read of up to `pageSize + 1` (the extra one says that another
 * page follows): at most `pageSize` messages and about storedPageBytes (at least one message).
 */
export function pageOfStored(
  read: readonly StoredMessage[],
  pageSize: number,
): { messages: StoredEventMessage[]; nextAfterSequence: bigint } {
  const page: StoredMessage[] = [];
  let bytes = 0;
  for (const m of read) {
    bytes += m.data.length;
    if (page.length === pageSize || (page.length > 0 && bytes > storedPageBytes)) break;
    page.push(m);
  }
  const last = page[page.length - 1];
  const more = page.length < read.length;
  return {
    messages: page.map((m) =>
      create(StoredEventMessageSchema, {
        sequence: BigInt(m.seq),
        subject: m.subject,
        data: m.data,
        storedAt: timestampFromDate(m.time),
        signature: m.signature ?? "",
      }),
    ),
    nextAfterSequence: more && last !== undefined ? BigInt(last.seq) : 0n,
  };
}
