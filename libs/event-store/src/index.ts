export type {
  EventUpcaster,
  EventUpcasterOptions,
  RecordedEvent,
  StoredEvent,
  StreamSequence,
} from "./codec.ts";
export {
  contextEventUpcaster,
  createEventUpcaster,
  currentEnvelope,
  decodeEvent,
  decodeStoredEvent,
  followsOn,
  streamSequence,
} from "./codec.ts";
// For sibling libs that make batched direct gets of their own (snapshot lookups).
export { batchExtent, collectDirectBatch, directGet } from "./direct-batch.ts";
export {
  ConcurrencyError,
  CorruptEventError,
  EventStoreError,
  EventStoreUnavailableError,
  isConcurrencyError,
  isCorruptEventError,
  isEventStoreError,
  isEventStoreUnavailableError,
  isStoryNotFoundError,
  isUnreadableEventError,
  StoryNotFoundError,
  UnreadableEventError,
} from "./errors.ts";
export type {
  AppendMetadata,
  AppendResult,
  EventStore,
  EventStoreOptions,
  NewEvent,
  ReadAllOptions,
  ReadOptions,
  StoryHead,
} from "./event-store.ts";
export { createEventStore, ExpectedVersion } from "./event-store.ts";
export type { EventStreamNames, EventStreamSettings } from "./event-stream.ts";
export {
  defaultEventStreamNames,
  defaultEventStreamSettings,
  eventSubject,
  parseStoredSubject,
  partitionCountOf,
  partitionSubjects,
  provisionEventStream,
  storyPartition,
  storySubjects,
  storySubjectsInPartition,
} from "./event-stream.ts";
export type { ChainVerdict } from "./hash-chain.ts";
export { equalBytes, eventHash, verifyChain } from "./hash-chain.ts";
export {
  contextUpcasters,
  decisionAddedV1,
  legacyPayloadSchemas,
  subtaskStatusOfV1,
  subtaskUpdatedV1,
} from "./upcasting/context-upcasters.ts";
