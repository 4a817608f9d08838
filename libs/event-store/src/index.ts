export type { AuditedMessage, ChainBreak, ChainBreakKind } from "./chain-audit.ts";
export { ChainAuditor } from "./chain-audit.ts";
export type {
  CheckpointKey,
  CheckpointNames,
  StoredCheckpoint,
  StreamHashState,
} from "./checkpoints.ts";
export {
  CheckpointAuditor,
  checkpointMessages,
  checkpointNames,
  checkpointSignature,
  checkpointState,
  ensureCheckpointStream,
  ensureRecordStream,
  lastCheckpoint,
  publishCheckpoint,
  readCheckpoints,
  StreamHasher,
  signCheckpoint,
} from "./checkpoints.ts";
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
  isEnvelopeV2,
  originStory,
  streamSequence,
} from "./codec.ts";
// For the command service (its snapshots) and `ctx provision`: a stream beside the event stream.
export type { CommandSnapshotNames } from "./command-snapshot-stream.ts";
export {
  checkCommandSnapshotStream,
  commandSnapshotNames,
  provisionCommandSnapshotStream,
} from "./command-snapshot-stream.ts";
// The store's errors, each with its guard (errors cross package copies: guards, not instanceof).
export type { EventReadError, EventReadProblem, StreamBackupProblem } from "./errors.ts";
export {
  AppendFailedError,
  ConcurrencyError,
  CorruptEventError,
  EventMismatchError,
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
  isStreamBackupError,
  isStreamConfigurationError,
  isUnreadableEventError,
  SetAsideRefusedError,
  StreamBackupError,
  StreamConfigurationError,
  UnreadableEventError,
} from "./errors.ts";
export type { SigningKey } from "./event-signing.ts";
export {
  checkEventSignature,
  KeyFileError,
  loadKeyFolder,
  SIGNATURE_HEADER,
  signingKeyFromConfig,
} from "./event-signing.ts";
// The EventStore interface and every type its methods and createEventStore take or give.
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
  StoryMessagesOptions,
} from "./event-store.ts";
export { createEventStore, ExpectedVersion } from "./event-store.ts";
export type { EventStreamNames, EventStreamSettings } from "./event-stream.ts";
export {
  checkEventStream,
  defaultEventStreamNames,
  defaultEventStreamSettings,
  eventSubject,
  parseStoredSubject,
  partitionSubjects,
  provisionDerivedStream,
  provisionEventStream,
  storyPartition,
  storySubjects,
  storySubjectsInPartition,
  streamInfoIfAny,
} from "./event-stream.ts";
export type { ChainItem, ChainVerdict } from "./hash-chain.ts";
export { equalBytes, eventHash, storedEnvelopeBytes, verifyChain } from "./hash-chain.ts";
export type { MessageVerdict, StoredMessage } from "./set-aside.ts";
// For operators (ctx streams backup / restore) and the backup bench: JetStream's snapshot API.
export type {
  BackedUpStream,
  BackupManifest,
  BackupOptions,
  BackupProgress,
  RestoreBackupOptions,
  RestoredStream,
  VerifiedBackup,
} from "./stream-backup.ts";
export { backupStreams, openBackup, restoreBackup } from "./stream-backup.ts";
export type {
  RestoreOptions,
  RestoreProgress,
  SnapshotOptions,
  SnapshotProgress,
  StreamSnapshotMeta,
} from "./stream-snapshot.ts";
export { restoreStream, snapshotStream } from "./stream-snapshot.ts";
