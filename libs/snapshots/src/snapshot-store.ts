import type { StoryId } from "@ctx/domain";
import { isNatsOutage } from "@ctx/event-store";
import { collectDirectBatch, directGet } from "@ctx/event-store/direct-get";
import type { ContextSegment, ContextSnapshot } from "@ctx/proto";
import {
  type DirectLastFor,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  type StoredMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { SnapshotStoreUnavailableError } from "./errors.ts";
import {
  candidateVersions,
  decodeSegment,
  decodeSnapshot,
  encodeSegment,
  encodeSnapshot,
  snapshotTime,
} from "./snapshot-codec.ts";
import {
  type SnapshotStreamNames,
  segmentSubject,
  timelineSubject,
  versionSubject,
} from "./snapshot-stream.ts";

/**
 * Snapshots of story states in a JetStream stream (see the package README for the layout). A
 * snapshot is only ever an optimisation: every lookup may answer undefined, and readers then fold
 * from the first event.
 *
 * Errors: SnapshotStoreUnavailableError when NATS cannot be reached.
 */
export interface SnapshotStore {
  readonly names: SnapshotStreamNames;
  /** Snapshots are taken at the versions that are multiples of this. */
  readonly interval: number;
  /**
   * Stores a snapshot on its version subject and on the story's timeline. Idempotent: returns false,
   * and stores nothing, when the version subject already holds a snapshot.
   */
  write(snapshot: ContextSnapshot): Promise<boolean>;
  /**
   * The newest usable snapshot at or before `version`: the one at floor(version / interval) *
   * interval, else one of the two multiples below it, else undefined. One direct get.
   */
  atOrBeforeVersion(storyId: StoryId, version: number): Promise<ContextSnapshot | undefined>;
  /**
   * The newest usable snapshot stored at or before `time` whose last event occurred at or before
   * `time`. One direct get in the usual case; a few more when the newest ones are stamped after
   * `time` (a writer's clock ahead of the server's); undefined after three tries.
   */
  atOrBeforeTime(storyId: StoryId, time: Date): Promise<ContextSnapshot | undefined>;
  /** The story's snapshot stored last (normally its newest), for the current state. One direct get. */
  latest(storyId: StoryId): Promise<ContextSnapshot | undefined>;
  /**
   * Stores the segment of a story's events after a snapshot. Idempotent: "exists" when its subject
   * holds one already; "too-large" (nothing stored) when it would not fit in a NATS message.
   */
  writeSegment(segment: ContextSegment): Promise<"stored" | "exists" | "too-large">;
  /**
   * The segment of the story's events after `afterVersion` (0: its first events), undefined when
   * none is stored or it cannot be used. One direct get.
   */
  segment(storyId: StoryId, afterVersion: number): Promise<ContextSegment | undefined>;
}

export interface SnapshotStoreOptions {
  /** Snapshots are taken every this many versions (the snapshotter and readers must agree). */
  readonly interval: number;
  /** Publish and lookup timeout in milliseconds (default 5 s). */
  readonly timeoutMs?: number;
}

const WRONG_LAST_SEQUENCE = 10071;
const TIMELINE_TRIES = 3;
/** Room left in a NATS message for the headers of a segment's publish. */
const HEADER_ROOM = 4 * 1024;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** A snapshot store over a NATS connection; the stream must exist (see provisionSnapshotStream). */
export function createSnapshotStore(
  nc: NatsConnection,
  names: SnapshotStreamNames,
  options: SnapshotStoreOptions,
): SnapshotStore {
  candidateVersions(0, options.interval); // validates the interval
  return new JetStreamSnapshotStore(nc, names, options);
}

class JetStreamSnapshotStore implements SnapshotStore {
  readonly names: SnapshotStreamNames;
  readonly interval: number;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #timeout: number;
  #jsm: Promise<JetStreamManager> | undefined;

  constructor(nc: NatsConnection, names: SnapshotStreamNames, options: SnapshotStoreOptions) {
    this.names = names;
    this.interval = options.interval;
    this.#nc = nc;
    this.#timeout = options.timeoutMs ?? 5_000;
    this.#js = jetstream(nc, { timeout: this.#timeout });
  }

  #manager(): Promise<JetStreamManager> {
    this.#jsm ??= this.#js.jetstreamManager(false);
    return this.#jsm;
  }

  async write(snapshot: ContextSnapshot): Promise<boolean> {
    const storyId = snapshot.context?.storyId ?? "";
    const version = snapshot.version;
    const atVersion = versionSubject(this.names, storyId, version);
    // The version subject is written last: when it holds the snapshot, so does the timeline.
    if (await this.#lastOn(atVersion)) return false;
    const bytes = encodeSnapshot(snapshot);
    await guard(() =>
      this.#js.publish(timelineSubject(this.names, storyId), bytes, {
        msgID: `${storyId}.at.${version}`,
      }),
    );
    return this.#publishOnce(atVersion, bytes, `${storyId}.v${version}`);
  }

  async writeSegment(segment: ContextSegment): Promise<"stored" | "exists" | "too-large"> {
    const bytes = encodeSegment(segment);
    const maxPayload = this.#nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    if (bytes.length > maxPayload - HEADER_ROOM) return "too-large";
    const { storyId, afterVersion } = segment;
    const subject = segmentSubject(this.names, storyId, afterVersion);
    const stored = await this.#publishOnce(subject, bytes, `${storyId}.s${afterVersion}`);
    return stored ? "stored" : "exists";
  }

  async segment(storyId: StoryId, afterVersion: number): Promise<ContextSegment | undefined> {
    const msg = await this.#lastOn(segmentSubject(this.names, storyId, afterVersion));
    return msg ? decodeSegment(storyId, afterVersion, msg.data) : undefined;
  }

  /** The last message on a subject; null when it holds none. One direct get. */
  async #lastOn(subject: string): Promise<StoredMsg | null> {
    const jsm = await this.#manager();
    return guard(() => directGet(jsm, this.names.stream, { last_by_subj: subject }));
  }

  /**
   * Publishes to a subject that holds one message at most; false when it holds one already (the
   * same content: another snapshotter, or a redelivery, stored it first).
   */
  async #publishOnce(subject: string, bytes: Uint8Array, msgID: string): Promise<boolean> {
    try {
      const ack = await guard(() =>
        this.#js.publish(subject, bytes, { msgID, expect: { lastSubjectSequence: 0 } }),
      );
      return !ack.duplicate;
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) return false;
      throw e;
    }
  }

  async atOrBeforeVersion(storyId: StoryId, version: number): Promise<ContextSnapshot | undefined> {
    const candidates = candidateVersions(version, this.interval);
    if (candidates.length === 0) return undefined;
    const messages = await this.#lastFor({
      multi_last: candidates.map((v) => versionSubject(this.names, storyId, v)),
    });
    let best: ContextSnapshot | undefined;
    for (const msg of messages) {
      const snapshot = decodeSnapshot(storyId, msg.data);
      if (snapshot && snapshot.version <= version && snapshot.version > (best?.version ?? 0)) {
        best = snapshot;
      }
    }
    return best;
  }

  atOrBeforeTime(storyId: StoryId, time: Date): Promise<ContextSnapshot | undefined> {
    return this.#newestOnTimeline(storyId, time);
  }

  latest(storyId: StoryId): Promise<ContextSnapshot | undefined> {
    return this.#newestOnTimeline(storyId, undefined);
  }

  /**
   * The newest usable snapshot of the story's timeline stored at or before `time` (any time when
   * undefined) whose last event occurred by then, going back at most a few snapshots.
   */
  async #newestOnTimeline(storyId: StoryId, time: Date | undefined) {
    const subject = timelineSubject(this.names, storyId);
    let bound: Pick<DirectLastFor, "up_to_time" | "up_to_seq"> =
      time === undefined ? {} : { up_to_time: time };
    for (let tries = 0; tries < TIMELINE_TRIES; tries++) {
      const [msg] = await this.#lastFor({ multi_last: [subject], ...bound });
      if (msg === undefined) return undefined;
      const snapshot = decodeSnapshot(storyId, msg.data);
      // Stored by `time`, but its events may be stamped later (a writer's clock ahead of the
      // server's): then an older snapshot is needed. An unusable one (another schema) is skipped.
      if (snapshot && (time === undefined || snapshotTime(snapshot) <= time.getTime())) {
        return snapshot;
      }
      if (msg.seq <= 1) return undefined;
      bound = { up_to_seq: msg.seq - 1 };
    }
    return undefined;
  }

  /**
   * The last message of each subject (within the bound): one batched direct get. A batch cut
   * short on the way answers fewer subjects: a snapshot missed only costs speed.
   */
  async #lastFor(request: DirectLastFor): Promise<StoredMsg[]> {
    const jsm = await this.#manager();
    return guard(() => collectDirectBatch(jsm, this.names.stream, request, this.#timeout));
  }
}

/** Runs a NATS call, turning an outage into SnapshotStoreUnavailableError. */
async function guard<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (isNatsOutage(e)) {
      throw new SnapshotStoreUnavailableError(
        `the snapshot stream is unavailable: ${(e as Error).message}`,
        { cause: e },
      );
    }
    throw e;
  }
}
