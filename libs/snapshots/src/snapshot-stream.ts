import {
  provisionDerivedStream,
  StreamConfigurationError,
  streamInfoIfAny,
} from "@ctx/event-store";
import {
  type JetStreamManager,
  StorageType,
  StoreCompression,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

/**
 * Where snapshots live. Each snapshot is stored twice: on `{prefix}.{story}.v{version}` (one message
 * per subject, for lookups by version) and on `{prefix}.{story}.at` (the story's snapshot history in
 * the order they were stored, for lookups by time). Beside them, `{prefix}.{story}.s{version}` holds
 * the segment of events that follow the snapshot at that version (0: the story's first events).
 */
export interface SnapshotStreamNames {
  readonly stream: string;
  readonly subjectPrefix: string;
}

export interface SnapshotStreamSettings extends SnapshotStreamNames {
  /** JetStream replicas: 1 locally, 3 in a cluster. */
  readonly replicas: number;
  /** How long JetStream remembers Nats-Msg-Ids to drop a snapshot written twice. */
  readonly duplicateWindowMs: number;
}

export const defaultSnapshotStreamNames: SnapshotStreamNames = {
  stream: "CONTEXT_SNAPSHOTS",
  subjectPrefix: "context.snapshots",
};

export const defaultSnapshotStreamSettings: SnapshotStreamSettings = {
  ...defaultSnapshotStreamNames,
  replicas: 1,
  duplicateWindowMs: 2 * 60_000,
};

/** The subject holding a story's snapshot at one version (at most one message). */
export function versionSubject(names: SnapshotStreamNames, storyId: string, version: number) {
  return `${names.subjectPrefix}.${storyId}.v${version}`;
}

/** The subject holding the segment of a story's events after `afterVersion` (at most one message). */
export function segmentSubject(names: SnapshotStreamNames, storyId: string, afterVersion: number) {
  return `${names.subjectPrefix}.${storyId}.s${afterVersion}`;
}

/** The subject holding every snapshot of a story, in the order they were stored. */
export function timelineSubject(names: SnapshotStreamNames, storyId: string) {
  return `${names.subjectPrefix}.${storyId}.at`;
}

function desiredConfig(settings: SnapshotStreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: settings.stream,
    description: "Snapshots of story states: a cache of CONTEXT_EVENTS for temporal queries",
    subjects: [`${settings.subjectPrefix}.*.*`],
    storage: StorageType.File,
    compression: StoreCompression.S2,
    num_replicas: settings.replicas,
    duplicate_window: nanos(settings.duplicateWindowMs),
    // Lookups are direct gets (last by subject, multi-last up to a time): no consumer per query.
    allow_direct: true,
    // Snapshots are derived data: they may be purged (e.g. after a schema change) and rewritten.
    deny_delete: false,
    deny_purge: false,
    max_age: 0,
    max_msgs: -1,
    max_bytes: -1,
  };
}

/**
 * Checks that the snapshot stream exists and serves direct gets (as `ctx provision` makes it), without
 * changing it: what the query service does at start with a NATS user that may not create streams.
 */
export async function checkSnapshotStream(
  jsm: JetStreamManager,
  names: SnapshotStreamNames = defaultSnapshotStreamNames,
): Promise<StreamInfo> {
  const existing = await streamInfoIfAny(jsm, names.stream);
  if (!existing) throw new StreamConfigurationError(`stream ${names.stream} does not exist`);
  if (!existing.config.allow_direct) {
    throw new StreamConfigurationError(`stream ${names.stream} does not allow direct gets`);
  }
  return existing;
}

/**
 * Creates the snapshot stream, or brings an existing one to the given settings. Idempotent: run by
 * `ctx provision` (the query service only checks the stream, see checkSnapshotStream).
 */
export async function provisionSnapshotStream(
  jsm: JetStreamManager,
  settings: SnapshotStreamSettings = defaultSnapshotStreamSettings,
): Promise<StreamInfo> {
  return provisionDerivedStream(
    jsm,
    desiredConfig(settings),
    ["num_replicas", "duplicate_window", "compression", "allow_direct", "subjects"],
    "snapshots are rebuilt from the events",
  );
}
