import type { Logger } from "@ctx/config";
import { type ContextState, evolveAll, fold, type StoryId } from "@ctx/domain";
import {
  type EventStore,
  equalBytes,
  isEventReadError,
  isEventStoreUnavailableError,
  type ReadOptions,
  type RecordedEvent,
} from "@ctx/event-store";
import type { ContextSegment, ContextSnapshot } from "@ctx/proto";
import { type LoadedSnapshot, loadSnapshot, snapshotTime } from "./snapshot-codec.ts";
import type { SnapshotStore } from "./snapshot-store.ts";

/** A story as it was at some point of its history, and how that answer was computed. */
export interface PointInTime {
  /** The story at that point; version 0 (lifecycle `absent`) when it had no event yet. */
  readonly state: ContextState;
  /** Stream sequence of the last event folded in (0 when none): where a reader resumes. */
  readonly sequence: number;
  /** Version of the snapshot the fold started from; 0 when it started from the first event. */
  readonly snapshotVersion: number;
  /** Events read and folded on top of the snapshot (or of nothing): `events.length`. */
  readonly eventsFolded: number;
  /** Those events, upcast, in order. */
  readonly events: readonly RecordedEvent[];
  /**
   * Where they were read: the event stream, or the segment stored after the snapshot (a copy of
   * the stream's events, checked against the stream).
   */
  readonly eventsFrom: "stream" | "segment";
}

/** Where one event of a story sits in the stream. */
export interface EventPosition {
  readonly sequence: number;
  readonly version: number;
}

/** Some of a story's events: from a version, up to a version or a time. */
export interface EventRange {
  /** First version (at least 1). */
  readonly fromVersion: number;
  readonly toVersion?: number;
  /** Only events that occurred at or before this time (and none after the first that did not). */
  readonly untilTime?: Date;
  /** Where version `fromVersion - 1` sits, when the caller knows (a page token, a point in time). */
  readonly after?: EventPosition;
}

export interface TemporalReadOptions {
  /** Aborts between the steps of a read (a cancelled call or a passed deadline). */
  readonly signal?: AbortSignal;
}

/**
 * A story at any version or time: the nearest snapshot at or before the point, then the events
 * after it up to the point, folded with the domain's `evolveAll` (the rules the command side
 * decides with). The events come from the segment stored after the snapshot when it reaches the
 * point, else from the event stream. Errors are the event store's and the snapshot store's
 * (unavailable, corrupt event); a snapshot or segment that does not match the stream is ignored,
 * never used.
 */
export interface TemporalReader {
  /**
   * The story right after `version`; the current state when it has fewer versions (compare
   * `state.version` with the one asked for).
   */
  atVersion(storyId: StoryId, version: number, options?: TemporalReadOptions): Promise<PointInTime>;
  /**
   * The story after every event that occurred at or before `time` (its longest history prefix
   * whose events all occurred by then); version 0 before its first event, the current state for a
   * time in the future.
   */
  atTime(storyId: StoryId, time: Date, options?: TemporalReadOptions): Promise<PointInTime>;
  /** The story after its last event. */
  current(storyId: StoryId, options?: TemporalReadOptions): Promise<PointInTime>;
  /**
   * A story's events in a range, upcast. Reading starts at the position given in the range, else at
   * a snapshot's event before the range, else at the story's first event; a position that does not
   * match the stream is ignored.
   */
  events(
    storyId: StoryId,
    range: EventRange,
    options?: TemporalReadOptions,
  ): Promise<readonly RecordedEvent[]>;
}

export interface TemporalReaderOptions {
  /** What it reads events through: it holds no NATS connection of its own. */
  readonly store: EventStore;
  /** Absent: every read folds from the story's first event. */
  readonly snapshots?: SnapshotStore;
  readonly logger?: Logger;
}

/** A temporal reader over the event store, with snapshots when a snapshot store is given. */
export function createTemporalReader(options: TemporalReaderOptions): TemporalReader {
  return new SnapshotTemporalReader(options);
}

type Bound = Pick<ReadOptions, "toVersion" | "untilTime">;

/**
 * Events that may have occurred by a time but been stored after it (appends in flight then): a
 * read sized from the version stored by that time asks for this many more.
 */
const IN_FLIGHT_EVENTS = 8;

/** Stories a reader remembers as long enough to have snapshots (about 100 bytes each). */
const LONG_STORIES_REMEMBERED = 100_000;

/** Segments a read goes on to past the first before it reads the event stream instead. */
const MAX_SEGMENT_HOPS = 3;

class SnapshotTemporalReader implements TemporalReader {
  readonly #o: TemporalReaderOptions;
  /** Stories known to have reached an interval of events, oldest first. */
  readonly #long = new Set<StoryId>();

  constructor(options: TemporalReaderOptions) {
    this.#o = options;
  }

  async atVersion(
    storyId: StoryId,
    version: number,
    options: TemporalReadOptions = {},
  ): Promise<PointInTime> {
    const bound = { toVersion: version };
    const { snapshots } = this.#o;
    if (snapshots === undefined) return this.#foldFrom(storyId, undefined, bound, options.signal);
    const [extent, snapshot] = await Promise.all([
      this.#extent(storyId, snapshots.interval),
      snapshots.atOrBeforeVersion(storyId, version),
    ]);
    const fromSegment = extent.long
      ? await this.#fromSegment(storyId, snapshot, bound, options.signal)
      : undefined;
    return fromSegment ?? this.#foldFrom(storyId, snapshot, bound, options.signal);
  }

  async atTime(
    storyId: StoryId,
    time: Date,
    options: TemporalReadOptions = {},
  ): Promise<PointInTime> {
    const bound = { untilTime: time };
    const { snapshots } = this.#o;
    if (snapshots === undefined) return this.#foldFrom(storyId, undefined, bound, options.signal);
    const [extent, byTime] = await Promise.all([
      this.#extent(storyId, snapshots.interval),
      snapshots.atOrBeforeTime(storyId, time),
    ]);
    // Shorter than an interval: no segment, and no snapshot the timeline could have missed; its
    // current version bounds the read.
    if (!extent.long) return this.#foldFrom(storyId, byTime, bound, options.signal, extent.version);
    // No snapshot by then: the segment of the story's first events may answer; the version
    // stored by then, which a stream read needs, is asked for meanwhile.
    const [fromSegment, storedBy] = await Promise.all([
      this.#fromSegment(storyId, byTime, bound, options.signal),
      byTime === undefined ? this.#versionStoredBy(storyId, time) : undefined,
    ]);
    if (fromSegment !== undefined) return fromSegment;
    const late = await this.#lateSnapshot(storyId, time, byTime, storedBy);
    return this.#foldFrom(storyId, late.snapshot, bound, options.signal, late.storedBy);
  }

  async current(storyId: StoryId, options: TemporalReadOptions = {}): Promise<PointInTime> {
    const snapshot = await this.#o.snapshots?.latest(storyId);
    // No upper bound: every event stored after the snapshot is folded in.
    return this.#foldFrom(storyId, snapshot, {}, options.signal);
  }

  async events(
    storyId: StoryId,
    range: EventRange,
    options: TemporalReadOptions = {},
  ): Promise<readonly RecordedEvent[]> {
    const { store, snapshots } = this.#o;
    const { fromVersion } = range;
    const bound: Bound = {
      ...(range.toVersion !== undefined ? { toVersion: range.toVersion } : {}),
      ...(range.untilTime !== undefined ? { untilTime: range.untilTime } : {}),
    };
    if (range.toVersion !== undefined && range.toVersion < fromVersion) return [];
    const anchors = async function* () {
      if (range.after !== undefined && range.after.version === fromVersion - 1) yield range.after;
      if (snapshots === undefined || fromVersion <= 1) return;
      const snapshot = await snapshots.atOrBeforeVersion(storyId, fromVersion - 1);
      if (snapshot !== undefined) {
        yield { sequence: Number(snapshot.eventSequence), version: snapshot.version };
      }
    };
    if (fromVersion > 1) {
      for await (const anchor of anchors()) {
        options.signal?.throwIfAborted();
        const events = await store.read(storyId, {
          ...bound,
          afterSequence: anchor.sequence - 1,
          fromVersion: anchor.version,
        });
        const [first, ...after] = events;
        if (first?.sequence === anchor.sequence && first.version === anchor.version) {
          return this.#upcast(after.filter((e) => e.version >= fromVersion));
        }
      }
    }
    options.signal?.throwIfAborted();
    return this.#upcast(await store.read(storyId, { ...bound, fromVersion }));
  }

  /**
   * Whether a story may have snapshots and segments: one that has reached an interval of events
   * may (and always will: remembered, so its reads need no lookup for it); a shorter one has
   * neither, and its reads go to the stream at once. One head lookup for a story not known long.
   */
  async #extent(storyId: StoryId, interval: number): Promise<{ long: boolean; version?: number }> {
    if (this.#long.has(storyId)) return { long: true };
    const version = (await this.#o.store.head(storyId))?.version ?? 0;
    const long = version >= interval;
    if (long) {
      if (this.#long.size >= LONG_STORIES_REMEMBERED) {
        this.#long.delete(this.#long.values().next().value as StoryId);
      }
      this.#long.add(storyId);
    }
    return { long, version };
  }

  /**
   * The events after a snapshot (after version 0 without one) up to the bound, from the segment
   * stored after it: undefined when there is no usable segment, when it ends before the bound (the
   * caller then reads the event stream), or when it does not match the stream. It matches when its
   * events follow one another (versions, hash links) and its first event follows the snapshot's as
   * the stream holds it (or, without a snapshot, is the stream's own first event).
   */
  async #fromSegment(
    storyId: StoryId,
    snapshot: ContextSnapshot | undefined,
    bound: Bound,
    signal: AbortSignal | undefined,
  ): Promise<PointInTime | undefined> {
    const { snapshots, store } = this.#o;
    if (snapshots === undefined) return undefined;
    const loaded = snapshot === undefined ? undefined : loadSnapshot(snapshot);
    if (snapshot !== undefined && loaded === undefined) return undefined;
    const after = loaded?.state.version ?? 0;
    const [segment, anchor] = await Promise.all([
      snapshots.segment(storyId, after),
      loaded === undefined ? undefined : store.readAt(loaded.eventSequence),
    ]);
    signal?.throwIfAborted();
    if (segment === undefined) return undefined;
    if (loaded !== undefined && (anchor === undefined || !anchors(loaded, anchor)))
      return undefined;
    const events: RecordedEvent[] = [];
    // What the first copy chains onto: the snapshot's event, or nothing before a story's start.
    let prevHash = anchor?.envelope.hash ?? (after === 0 ? new Uint8Array(0) : undefined);
    let first: { readonly sequence: number; readonly hash: Uint8Array } | undefined;
    let version = after;
    let reached = false;
    for (let current: ContextSegment | undefined = segment, hops = 0; ; hops++) {
      for (const copy of current.events) {
        // A copy keeps no subject: it is checked against the story it was copied for.
        // A copy that cannot be read (damaged, or not what the stream's event hashed) is no
        // match for the stream either: the stream is read instead.
        const decoded = decodedCopy(store, copy, storyId, prevHash);
        const stored = decoded?.[0];
        if (
          decoded === undefined ||
          stored === undefined ||
          stored.storyId !== storyId ||
          stored.version !== version + 1
        ) {
          return undefined;
        }
        const { envelope } = stored;
        if (prevHash !== undefined && !equalBytes(envelope.prevHash, prevHash)) return undefined;
        prevHash = envelope.hash;
        version = stored.version;
        first ??= { sequence: stored.sequence, hash: envelope.hash };
        if (beyond(bound, stored)) {
          reached = true;
          break;
        }
        events.push(...decoded);
        if (stored.version === bound.toVersion) {
          reached = true;
          break;
        }
      }
      if (reached) break;
      // The point lies past this segment, and the next one follows on from it (hash-linked like
      // the rest): the timeline had no newer snapshot by then, written late by a lagging
      // snapshotter. Past a few, or at the story's tail, the stream is read instead.
      if (hops >= MAX_SEGMENT_HOPS) return undefined;
      current = await snapshots.segment(storyId, version);
      signal?.throwIfAborted();
      if (current === undefined) return undefined;
    }
    if (loaded === undefined && first !== undefined) {
      // No snapshot anchors the story's first events: the stream must hold the first as copied.
      const inStream = await store.readAt(first.sequence);
      signal?.throwIfAborted();
      if (
        inStream?.storyId !== storyId ||
        inStream.version !== 1 ||
        !equalBytes(inStream.envelope.hash, first.hash)
      ) {
        return undefined;
      }
    }
    return {
      state: loaded === undefined ? fold(storyId, events) : evolveAll(loaded.state, events),
      sequence: events[events.length - 1]?.sequence ?? loaded?.eventSequence ?? 0,
      snapshotVersion: after,
      eventsFolded: events.length,
      events,
      eventsFrom: "segment",
    };
  }

  /**
   * The best snapshot for a time, when the segment after the timeline's did not reach it. The
   * timeline lookup finds the newest snapshot *stored* by then, which misses snapshots written late
   * (a snapshotter catching up, a backfill); so the version of the story's last event stored by
   * then is looked up, and the snapshot at that version used when it is newer. Either is used only
   * if its last event occurred by `time`. That version (`storedBy`) also tells the fold about how
   * many events to read.
   */
  async #lateSnapshot(
    storyId: StoryId,
    time: Date,
    byTime: ContextSnapshot | undefined,
    /** The version stored by `time`, when already looked up. */
    known: number | undefined,
  ): Promise<{ snapshot: ContextSnapshot | undefined; storedBy: number | undefined }> {
    const { snapshots } = this.#o;
    if (snapshots === undefined) return { snapshot: undefined, storedBy: undefined };
    const storedBy = known ?? (await this.#versionStoredBy(storyId, time));
    let best = byTime;
    const reachable = Math.floor(storedBy / snapshots.interval) * snapshots.interval;
    if (reachable > (best?.version ?? 0)) {
      const byVersion = await snapshots.atOrBeforeVersion(storyId, storedBy);
      if (
        byVersion !== undefined &&
        byVersion.version > (best?.version ?? 0) &&
        snapshotTime(byVersion) <= time.getTime()
      ) {
        best = byVersion;
      }
    }
    return { snapshot: best, storedBy };
  }

  /** Version of the story's last event stored at or before `time` (0: none), from the store. */
  async #versionStoredBy(storyId: StoryId, time: Date): Promise<number> {
    try {
      return await this.#o.store.versionStoredBy(storyId, time);
    } catch (e) {
      if (isEventStoreUnavailableError(e)) throw e;
      // Only a hint: without it the timeline lookup alone decides.
      this.#o.logger?.debug({ err: e, storyId }, "no version hint for a time lookup");
      return 0;
    }
  }

  async #foldFrom(
    storyId: StoryId,
    snapshot: ContextSnapshot | undefined,
    bound: Bound,
    signal: AbortSignal | undefined,
    /** About the last version within the bound, when known (the version stored by a time). */
    expectedVersion?: number,
  ): Promise<PointInTime> {
    signal?.throwIfAborted();
    const { store, snapshots } = this.#o;
    // How many events a read from `from` probably returns, when the bound does not say: the
    // server then looks up and sends about those instead of a full batch (the read still returns
    // everything within the bound). Events that occurred by a time may be stored a little later.
    const sizeHint = (from: number): Pick<ReadOptions, "sizeHint"> => {
      if (bound.toVersion !== undefined) return {};
      if (expectedVersion !== undefined) {
        return { sizeHint: Math.max(0, expectedVersion - from + 1) + IN_FLIGHT_EVENTS };
      }
      // From a snapshot, the events up to the next one.
      return from > 1 && snapshots ? { sizeHint: snapshots.interval + 1 } : {};
    };
    const loaded = snapshot === undefined ? undefined : loadSnapshot(snapshot);
    if (loaded !== undefined) {
      // Read from the snapshot's own event: it proves the snapshot belongs to this stream.
      const events = await store.read(storyId, {
        ...bound,
        afterSequence: loaded.eventSequence - 1,
        fromVersion: loaded.state.version,
        ...sizeHint(loaded.state.version),
      });
      signal?.throwIfAborted();
      const [first, ...after] = events;
      if (first !== undefined && anchors(loaded, first)) {
        const last = after[after.length - 1] ?? first;
        return {
          state: evolveAll(loaded.state, this.#upcast(after)),
          sequence: last.sequence,
          snapshotVersion: loaded.state.version,
          eventsFolded: after.length,
          events: after,
          eventsFrom: "stream",
        };
      }
      this.#o.logger?.warn(
        { storyId, snapshotVersion: loaded.state.version, sequence: loaded.eventSequence },
        "snapshot does not match the event stream; folding from the first event",
      );
    }
    const events = await store.read(storyId, { ...bound, ...sizeHint(1) });
    signal?.throwIfAborted();
    return {
      state: fold(storyId, this.#upcast(events)),
      sequence: events[events.length - 1]?.sequence ?? 0,
      snapshotVersion: 0,
      eventsFolded: events.length,
      events,
      eventsFrom: "stream",
    };
  }

  // The store upcasts what it reads (every reader shares its upcaster): nothing is left to do.
  #upcast(events: readonly RecordedEvent[]): readonly RecordedEvent[] {
    return events;
  }
}

/**
 * Whether the stream's event is the snapshot's last one: same story, position, version, time, and
 * (for a snapshot that kept it) hash. A history rewritten since the snapshot was written, even
 * with the same versions at the same positions, no longer holds the event it was folded up to.
 */
function anchors(
  snapshot: LoadedSnapshot,
  event: Pick<RecordedEvent, "storyId" | "sequence" | "version" | "occurredAt" | "envelope">,
): boolean {
  return (
    event.storyId === snapshot.state.storyId &&
    event.sequence === snapshot.eventSequence &&
    event.version === snapshot.state.version &&
    event.occurredAt.getTime() === snapshot.state.updatedAt?.getTime() &&
    (snapshot.eventHash.length === 0 || equalBytes(event.envelope.hash, snapshot.eventHash))
  );
}

/** Whether an event lies past a read's bound (a later version, or it occurred after the time). */
function beyond(bound: Bound, event: Pick<RecordedEvent, "version" | "occurredAt">): boolean {
  return (
    (bound.toVersion !== undefined && event.version > bound.toVersion) ||
    (bound.untilTime !== undefined && event.occurredAt.getTime() > bound.untilTime.getTime())
  );
}

/**
 * A segment's copy of an event as the store reads it, after the event whose hash is `prevHash`
 * when known; undefined when it cannot be read.
 */
function decodedCopy(
  store: EventStore,
  copy: ContextSegment["events"][number],
  storyId: StoryId,
  prevHash: Uint8Array | undefined,
): readonly RecordedEvent[] | undefined {
  try {
    // With the previous event's hash, a version 2 copy is checked as its link (and shows it).
    return store.upcaster.decode(copy.data, Number(copy.sequence), { storyId }, prevHash);
  } catch (e) {
    if (isEventReadError(e)) return undefined;
    throw e;
  }
}
