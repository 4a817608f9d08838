import {
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  StoreCompression,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { StreamConfigurationError } from "./errors.ts";
import { type EventStreamNames, provisionDerivedStream, streamInfoIfAny } from "./event-stream.ts";

/**
 * Where the command service keeps its snapshots of the stories it decides on, beside an event
 * stream: `<stream>_COMMAND_SNAPSHOTS`, subjects `<prefix>_command_snapshots.{story}.…` (one
 * message per subject, the newest). Named after the event stream, as its checkpoint stream is, so
 * every event stream has its own and no setting can pair one with another stream's snapshots.
 */
export interface CommandSnapshotNames {
  readonly stream: string;
  readonly subjectPrefix: string;
}

export function commandSnapshotNames(events: EventStreamNames): CommandSnapshotNames {
  return {
    stream: `${events.stream}_COMMAND_SNAPSHOTS`,
    subjectPrefix: `${events.subjectPrefix}_command_snapshots`,
  };
}

function desiredConfig(
  names: CommandSnapshotNames,
  replicas: number,
): Partial<StreamConfig> & { name: string } {
  return {
    name: names.stream,
    description:
      "The command service's snapshots of story states and command ids: a cache of the event stream",
    subjects: [`${names.subjectPrefix}.>`],
    storage: StorageType.File,
    compression: StoreCompression.S2,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    // Each subject holds what its writer last wrote: a story's newest snapshot, each command page.
    max_msgs_per_subject: 1,
    // A snapshot and the page of recent command ids it relies on are written together or not at all.
    allow_atomic: true,
    // Loads are direct gets (last by subject), which any replica answers.
    allow_direct: true,
    // Derived data: it may be purged (e.g. after the event stream was restored) and is rewritten.
    deny_delete: false,
    deny_purge: false,
    max_age: 0,
    max_msgs: -1,
    max_bytes: -1,
  };
}

/**
 * Checks that the command snapshot stream exists, keeps one message per subject, takes atomic
 * batches and serves direct gets (as `ctx provision` makes it), without changing it: what the
 * command service does at start, with a NATS user that may not create streams.
 */
export async function checkCommandSnapshotStream(
  jsm: JetStreamManager,
  names: CommandSnapshotNames,
): Promise<StreamInfo> {
  const existing = await streamInfoIfAny(jsm, names.stream);
  if (!existing) throw new StreamConfigurationError(`stream ${names.stream} does not exist`);
  const { config } = existing;
  const wrong = [
    config.allow_direct ? undefined : "does not allow direct gets",
    config.allow_atomic ? undefined : "does not allow atomic batches",
    config.max_msgs_per_subject === 1 ? undefined : "keeps more than one message per subject",
  ].filter((w) => w !== undefined);
  if (wrong.length > 0) {
    throw new StreamConfigurationError(
      `stream ${names.stream} ${wrong.join(", ")}: run ctx provision`,
    );
  }
  return existing;
}

/**
 * Creates the command snapshot stream, or brings an existing one to the settings. Idempotent: run
 * by `ctx provision` (the command service only checks it, see checkCommandSnapshotStream).
 */
export async function provisionCommandSnapshotStream(
  jsm: JetStreamManager,
  names: CommandSnapshotNames,
  replicas = 1,
): Promise<StreamInfo> {
  return provisionDerivedStream(
    jsm,
    desiredConfig(names, replicas),
    ["num_replicas", "max_msgs_per_subject", "allow_atomic", "allow_direct", "subjects"],
    "command snapshots are rewritten from the events",
  );
}
