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
  emptyStreamHash,
  ensureCheckpointStream,
  ensureRecordStream,
  lastCheckpoint,
  matchesCheckpoint,
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
export type { EventReadProblem, StreamBackupProblem } from "./errors.ts";
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
  eventSignature,
  eventSigner,
  KeyFileError,
  loadKeyFile,
  loadKeyFolder,
  SIGNATURE_HEADER,
  signingKeyFromConfig,
} from "./event-signing.ts";
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
  partitionCountOf,
  partitionSubjects,
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
export {
  backupFormat,
  backupStreams,
  endsInsideBatch,
  openBackup,
  restoreBackup,
} from "./stream-backup.ts";
export type {
  RestoreOptions,
  RestoreProgress,
  SnapshotOptions,
  SnapshotProgress,
  StreamSnapshotMeta,
} from "./stream-snapshot.ts";
export { restoreStream, snapshotStream } from "./stream-snapshot.ts";
export {
  contextUpcasters,
  decisionAddedV1,
  legacyPayloadSchemas,
  subtaskStatusOfV1,
  subtaskUpdatedV1,
} from "./upcasting/context-upcasters.ts";
