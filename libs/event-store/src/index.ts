export type { RecordedEvent, StreamSequence } from "./codec.ts";
export { decodeEvent, streamSequence } from "./codec.ts";
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
  StoryNotFoundError,
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
  partitionSubjects,
  provisionEventStream,
  storySubjects,
} from "./event-stream.ts";
export type { ChainVerdict } from "./hash-chain.ts";
export { eventHash, verifyChain } from "./hash-chain.ts";
