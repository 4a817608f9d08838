import {
  type JetStreamManager,
  StorageType,
  StoreCompression,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { StreamConfigurationError } from "./errors.ts";

/**
 * Where events live: the stream and its subject prefix. Events are published to
 * `{prefix}.{story_id}.{event_type}`; the stream stores them as `{prefix}.{partition}.{story_id}.{event_type}`,
 * the partition token added by a subject transform, so consumers can split stories among replicas.
 */
export interface EventStreamNames {
  readonly stream: string;
  readonly subjectPrefix: string;
}

export interface EventStreamSettings extends EventStreamNames {
  /**
   * Number of story partitions (the token the stream adds to every subject). Fixed for the life of
   * the stream: changing it would move stories between partitions and break per-story order.
   */
  readonly partitions: number;
  /** JetStream replicas: 1 locally, 3 in Kubernetes. */
  readonly replicas: number;
  /** How long JetStream remembers Nats-Msg-Ids to drop a re-sent event. */
  readonly duplicateWindowMs: number;
}

export const defaultEventStreamNames: EventStreamNames = {
  stream: "CONTEXT_EVENTS",
  subjectPrefix: "context.events",
};

export const defaultEventStreamSettings: EventStreamSettings = {
  ...defaultEventStreamNames,
  partitions: 16,
  replicas: 1,
  duplicateWindowMs: 2 * 60_000,
};

/** Subject an event of a story is published to. */
export function eventSubject(names: EventStreamNames, storyId: string, eventType: string): string {
  return `${names.subjectPrefix}.${storyId}.${eventType}`;
}

/** Filter matching every stored event of one story, whatever its partition. */
export function storySubjects(names: EventStreamNames, storyId: string): string {
  return `${names.subjectPrefix}.*.${storyId}.>`;
}

/**
 * The partition the stream's subject transform puts a story in: FNV-1a (32 bits) of the story id's
 * bytes, modulo the partition count, as nats-server's `partition(n,1)` computes it.
 */
export function storyPartition(storyId: string, partitions: number): number {
  let hash = FNV_OFFSET;
  for (let i = 0; i < storyId.length; i++) {
    const code = storyId.charCodeAt(i);
    // Story ids are ASCII (see @ctx/domain's storyId), one byte per character; anything else
    // hashes its UTF-8 bytes, as the server does.
    if (code >= 0x80) return utf8.encode(storyId).reduce(fnv1a, FNV_OFFSET) % partitions;
    hash = fnv1a(hash, code);
  }
  return hash % partitions;
}

/** One byte into a 32-bit FNV-1a hash. */
const fnv1a = (hash: number, byte: number) => Math.imul(hash ^ byte, 0x01000193) >>> 0;
const FNV_OFFSET = 0x811c9dc5;
const utf8 = new TextEncoder();

/**
 * The same events as `storySubjects`, named by the story's partition: a literal subject up to the
 * last token, which the server matches against its subject index directly instead of across every
 * partition. Only as right as `partitions`: see the event store's append for how it is used.
 */
export function storySubjectsInPartition(
  names: EventStreamNames,
  storyId: string,
  partitions: number,
): string {
  return `${names.subjectPrefix}.${storyPartition(storyId, partitions)}.${storyId}.>`;
}

/** The partition count of a stream configured by `provisionEventStream`; undefined for any other. */
export function partitionCountOf(
  config: Pick<StreamConfig, "subject_transform">,
  subjectPrefix: string,
): number | undefined {
  const dest = config.subject_transform?.dest ?? "";
  const count = /\{\{partition\((\d+),1\)\}\}/.exec(dest)?.[1];
  if (count === undefined) return undefined;
  const expected = partitionTransform({ subjectPrefix, partitions: Number(count) });
  const same = config.subject_transform?.src === expected.src && dest === expected.dest;
  return same && Number(count) > 0 ? Number(count) : undefined;
}

/** Filter matching every stored event of one partition. */
export function partitionSubjects(names: EventStreamNames, partition: number): string {
  return `${names.subjectPrefix}.${partition}.>`;
}

/** The partition and story id of a stored event subject (`{prefix}.{partition}.{story}.{type}`). */
export function parseStoredSubject(
  names: EventStreamNames,
  subject: string,
): { readonly partition: number; readonly storyId: string; readonly eventType: string } {
  const [partition = "", storyId = "", eventType = ""] = subject
    .slice(names.subjectPrefix.length + 1)
    .split(".");
  return { partition: Number(partition), storyId, eventType };
}

function partitionTransform(settings: Pick<EventStreamSettings, "subjectPrefix" | "partitions">) {
  const p = settings.subjectPrefix;
  return {
    src: `${p}.*.*`,
    dest: `${p}.{{partition(${settings.partitions},1)}}.{{wildcard(1)}}.{{wildcard(2)}}`,
  };
}

function desiredConfig(settings: EventStreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: settings.stream,
    description: "Context events: the source of truth of the context service",
    subjects: [`${settings.subjectPrefix}.*.*`],
    subject_transform: partitionTransform(settings),
    storage: StorageType.File,
    compression: StoreCompression.S2,
    num_replicas: settings.replicas,
    duplicate_window: nanos(settings.duplicateWindowMs),
    // Story reads use batched direct gets; multi-event commands use atomic batch publish.
    allow_direct: true,
    allow_atomic: true,
    // Events are immutable facts: nobody deletes or purges them.
    deny_delete: true,
    deny_purge: true,
    max_age: 0,
    max_msgs: -1,
    max_bytes: -1,
  };
}

/**
 * Checks that the event stream exists as provisioned for these settings (`ctx provision`), without
 * changing it: what a service does at start, with a NATS user that may not create or update streams.
 *
 * @throws StreamConfigurationError saying what is missing or different
 */
export async function checkEventStream(
  jsm: JetStreamManager,
  settings: EventStreamSettings = defaultEventStreamSettings,
): Promise<StreamInfo> {
  const desired = desiredConfig(settings);
  const existing = await streamInfoIfAny(jsm, settings.stream);
  if (!existing) throw new StreamConfigurationError(`stream ${settings.stream} does not exist`);
  const different = differences(existing.config, desired);
  if (different.length > 0) {
    throw new StreamConfigurationError(
      `stream ${settings.stream} differs from its settings in ${different.join(", ")}`,
    );
  }
  return existing;
}

/** The stream's info, or undefined when there is no such stream. */
export async function streamInfoIfAny(
  jsm: JetStreamManager,
  stream: string,
): Promise<StreamInfo | undefined> {
  return jsm.streams.info(stream).catch((e: unknown) => {
    if (e instanceof Error && /stream not found/i.test(e.message)) return undefined;
    throw e;
  });
}

/**
 * Creates a stream that holds derived data (a cache the services rewrite from the events), or
 * brings an existing one to `desired` when it differs in one of `compared`. Its storage type
 * cannot change in place: a stream of the other type is refused, `rebuilt` saying why deleting it
 * is safe. Idempotent: what `ctx provision` runs for the snapshot streams.
 */
export async function provisionDerivedStream(
  jsm: JetStreamManager,
  desired: Partial<StreamConfig> & { name: string },
  compared: readonly (keyof StreamConfig)[],
  rebuilt: string,
): Promise<StreamInfo> {
  const existing = await streamInfoIfAny(jsm, desired.name);
  if (!existing) return jsm.streams.add(desired);
  const current = existing.config;
  if (current.storage !== desired.storage) {
    throw new StreamConfigurationError(
      `stream ${desired.name} uses ${current.storage} storage, not ${desired.storage}; delete it (${rebuilt})`,
    );
  }
  const same = compared.every(
    (key) => JSON.stringify(current[key]) === JSON.stringify(desired[key]),
  );
  if (same) return existing;
  return jsm.streams.update(desired.name, { ...current, ...desired });
}

/**
 * The settings the services rely on in which a stream differs from the desired one. Replicas,
 * compression and the duplicate window are the operator's (ctx provision) and not checked.
 */
function differences(current: StreamConfig, desired: ReturnType<typeof desiredConfig>): string[] {
  const keys = ["allow_direct", "allow_atomic", "deny_delete", "deny_purge"] as const;
  const different: string[] = keys.filter((k) => current[k] !== desired[k]);
  if (current.subject_transform?.dest !== desired.subject_transform?.dest) {
    different.push("subject_transform (partitions)");
  }
  if (JSON.stringify(current.subjects) !== JSON.stringify(desired.subjects)) {
    different.push("subjects");
  }
  return different;
}

/**
 * Creates the event stream, or brings an existing one to the given settings. Idempotent: run by
 * `ctx provision` (the operator; the services only check the stream, see checkEventStream).
 * Storage type cannot change on a live stream; that is an error.
 */
export async function provisionEventStream(
  jsm: JetStreamManager,
  settings: EventStreamSettings = defaultEventStreamSettings,
): Promise<StreamInfo> {
  const desired = desiredConfig(settings);
  const existing = await streamInfoIfAny(jsm, settings.stream);
  if (!existing) return jsm.streams.add(desired);
  if (existing.config.storage !== desired.storage) {
    throw new StreamConfigurationError(
      `stream ${settings.stream} uses ${existing.config.storage} storage, not ${desired.storage}; migrate it by hand`,
    );
  }
  const current = existing.config;
  if (current.subject_transform?.dest !== desired.subject_transform?.dest) {
    throw new StreamConfigurationError(
      `stream ${settings.stream} partitions stories as ${current.subject_transform?.dest ?? "(none)"}, not ${desired.subject_transform?.dest}: the partition count of a live stream cannot change`,
    );
  }
  const same =
    current.num_replicas === desired.num_replicas &&
    current.duplicate_window === desired.duplicate_window &&
    current.compression === desired.compression &&
    current.allow_direct === desired.allow_direct &&
    current.allow_atomic === desired.allow_atomic &&
    current.deny_delete === desired.deny_delete &&
    current.deny_purge === desired.deny_purge &&
    JSON.stringify(current.subjects) === JSON.stringify(desired.subjects);
  if (same) return existing;
  return jsm.streams.update(settings.stream, { ...current, ...desired });
}
