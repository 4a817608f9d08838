export type { ChainBreak } from "./chain-audit.ts";
export { ChainAuditor } from "./chain-audit.ts";
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
export type { RecordedEvent, StoredEvent } from "./codec.ts";
export {
  currentEnvelope,
  decodeEvent,
  decodeStoredEvent,
  followsOn,
  streamSequence,
} from "./codec.ts";
// For the command service (its snapshots) and `ctx provision`: a stream beside the event stream.
export type { CommandSnapshotNames } from "./command-snapshot-stream.ts";
export {
  checkCommandSnapshotStream,
  commandSnapshotNames,
  provisionCommandSnapshotStream,
} from "./command-snapshot-stream.ts";
export {
  ConcurrencyError,
  CorruptEventError,
  EventMismatchError,
  EventStoreUnavailableError,
  isConcurrencyError,
  isEventReadError,
  isEventStoreUnavailableError,
  isNatsOutage,
  isStreamBackupError,
  isUnreadableEventError,
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
export type { AppendResult, EventStore, NewEvent, ReadOptions } from "./event-store.ts";
export { createEventStore, ExpectedVersion } from "./event-store.ts";
export type { EventStreamNames, EventStreamSettings } from "./event-stream.ts";
export {
  checkEventStream,
  defaultEventStreamNames,
  defaultEventStreamSettings,
  eventSubject,
  parseStoredSubject,
  partitionSubjects,
  provisionEventStream,
  storyPartition,
  storySubjects,
  storySubjectsInPartition,
  streamInfoIfAny,
} from "./event-stream.ts";
export { equalBytes, eventHash, storedEnvelopeBytes, verifyChain } from "./hash-chain.ts";
export type { MessageVerdict, StoredMessage } from "./set-aside.ts";
// For operators (ctx streams backup / restore) and the backup bench: JetStream's snapshot API.
export type { BackupManifest, BackupProgress, VerifiedBackup } from "./stream-backup.ts";
export { backupStreams, openBackup, restoreBackup } from "./stream-backup.ts";
export { restoreStream, snapshotStream } from "./stream-snapshot.ts";
