// Temporal reads: a story at any version or time, from the nearest snapshot and the events after it.

export {
  isSnapshotStoreError,
  isSnapshotStoreUnavailableError,
  SnapshotStoreError,
  SnapshotStoreUnavailableError,
} from "./errors.ts";
// For tools and tests that look at stored snapshots themselves.
export type { LoadedSnapshot, StoredCopy } from "./snapshot-codec.ts";
export {
  currentSegmentSchemaVersion,
  currentSnapshotSchemaVersion,
  decodeSegment,
  decodeSnapshot,
  loadSnapshot,
  toSegment,
  toSnapshot,
} from "./snapshot-codec.ts";
export type { SnapshotStore, SnapshotStoreOptions } from "./snapshot-store.ts";
export { createSnapshotStore } from "./snapshot-store.ts";
export type { SnapshotStreamNames, SnapshotStreamSettings } from "./snapshot-stream.ts";
export {
  checkSnapshotStream,
  defaultSnapshotStreamNames,
  defaultSnapshotStreamSettings,
  provisionSnapshotStream,
  segmentSubject,
  timelineSubject,
  versionSubject,
} from "./snapshot-stream.ts";
export type { Snapshotter, SnapshotterOptions } from "./snapshotter.ts";
export { createSnapshotter } from "./snapshotter.ts";
export type {
  EventPosition,
  EventRange,
  PointInTime,
  TemporalReader,
  TemporalReaderOptions,
  TemporalReadOptions,
} from "./temporal-reader.ts";
export { createTemporalReader } from "./temporal-reader.ts";
