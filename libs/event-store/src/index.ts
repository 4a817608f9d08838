export type {
  EventUpcaster,
  EventUpcasterOptions,
  MessageOrigin,
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
  originStory,
  streamSequence,
} from "./codec.ts";
// For sibling libs that make batched direct gets of their own (snapshot lookups).
export { batchExtent, collectDirectBatch, directGet } from "./direct-batch.ts";
export type { EventReadProblem } from "./errors.ts";
export {
  AppendFailedError,
  ConcurrencyError,
  CorruptEventError,
  EventMismatchError,
  EventReadError,
  EventStoreError,
  EventStoreUnavailableError,
  isAppendFailedError,
  isConcurrencyError,
  isCorruptEventError,
  isEventMismatchError,
  isEventReadError,
  isEventStoreError,
  isEventStoreUnavailableError,
  isNatsOutage,
  isSetAsideRefusedError,
  isStreamConfigurationError,
  isUnreadableEventError,
  SetAsideRefusedError,
  StreamConfigurationError,
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
  SetAsideRequest,
  SetAsideResult,
  StoryHead,
} from "./event-store.ts";
export { createEventStore, ExpectedVersion } from "./event-store.ts";
export type { EventStreamNames, EventStreamSettings } from "./event-stream.ts";
export {
  checkEventStream,
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
  streamInfoIfAny,
} from "./event-stream.ts";
export type { ChainItem, ChainVerdict } from "./hash-chain.ts";
export { equalBytes, eventHash, verifyChain } from "./hash-chain.ts";
export type { MessageVerdict } from "./set-aside.ts";
export {
  contextUpcasters,
  decisionAddedV1,
  legacyPayloadSchemas,
  subtaskStatusOfV1,
  subtaskUpdatedV1,
} from "./upcasting/context-upcasters.ts";
