import {
  type JetStreamManager,
  StorageType,
  StoreCompression,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

/** Where events live: the stream and its subject prefix (`{prefix}.{story_id}.{event_type}`). */
export interface EventStreamNames {
  readonly stream: string;
  readonly subjectPrefix: string;
}

export interface EventStreamSettings extends EventStreamNames {
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
  replicas: 1,
  duplicateWindowMs: 2 * 60_000,
};

/** Subject of one event of a story. */
export function eventSubject(names: EventStreamNames, storyId: string, eventType: string): string {
  return `${names.subjectPrefix}.${storyId}.${eventType}`;
}

/** Filter subject matching every event of one story. */
export function storySubjects(names: EventStreamNames, storyId: string): string {
  return `${names.subjectPrefix}.${storyId}.>`;
}

/** The story id of an event subject. */
export function storyIdOfSubject(names: EventStreamNames, subject: string): string {
  const rest = subject.slice(names.subjectPrefix.length + 1);
  return rest.slice(0, rest.indexOf("."));
}

function desiredConfig(settings: EventStreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: settings.stream,
    description: "Context events: the source of truth of the context service",
    subjects: [`${settings.subjectPrefix}.>`],
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
 * Creates the event stream, or brings an existing one to the given settings. Idempotent: run at every
 * start-up and by `ctx streams provision`. Storage type cannot change on a live stream; that is an error.
 */
export async function provisionEventStream(
  jsm: JetStreamManager,
  settings: EventStreamSettings = defaultEventStreamSettings,
): Promise<StreamInfo> {
  const desired = desiredConfig(settings);
  const existing = await jsm.streams.info(settings.stream).catch((e: unknown) => {
    if (e instanceof Error && /stream not found/i.test(e.message)) return undefined;
    throw e;
  });
  if (!existing) return jsm.streams.add(desired);
  if (existing.config.storage !== desired.storage) {
    throw new Error(
      `stream ${settings.stream} uses ${existing.config.storage} storage, not ${desired.storage}; migrate it by hand`,
    );
  }
  const current = existing.config;
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
