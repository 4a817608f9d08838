import {
  defaultEventStreamSettings,
  type EventStreamNames,
  storySubjects,
  storySubjectsInPartition,
} from "@ctx/event-store";

/**
 * The subjects of an append's story-wide expectation as the event store sends them, for the bench's
 * publishers that bypass it: the story's partition once it has events (the stream has the default
 * partition count), every partition for its first event.
 */
export function expectedSubjects(
  names: EventStreamNames,
  storyId: string,
  lastSequence: number,
): string {
  return lastSequence > 0
    ? storySubjectsInPartition(names, storyId, defaultEventStreamSettings.partitions)
    : storySubjects(names, storyId);
}
