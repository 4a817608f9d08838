import {
  create,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ContextState,
  fromContextMessage,
  type StoryId,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import {
  type ContextSegment,
  ContextSegmentSchema,
  type ContextSnapshot,
  ContextSnapshotSchema,
} from "@ctx/proto";

/**
 * The shape of `context.v1.ContextSnapshot` this code writes and reads. A reader ignores snapshots
 * of any other schema version: a newer writer's snapshot may mean something this code cannot tell,
 * and an older one may have been folded by rules that have changed since. Raise it whenever the
 * meaning of a stored snapshot changes (a new field in `Context`, a changed `evolve` rule); readers
 * then fold from the events until the snapshotter has written snapshots of the new version.
 */
export const currentSnapshotSchemaVersion = 1;

/** A snapshot decoded into the state it holds and where in the stream reading resumes. */
export interface LoadedSnapshot {
  readonly state: ContextState;
  /** Stream sequence of the last event folded into the snapshot. */
  readonly eventSequence: number;
  /** That event's hash; empty for a snapshot written before the hash was kept. */
  readonly eventHash: Uint8Array;
}

/**
 * The snapshot of a state whose last event sits at `eventSequence` in the event stream, with that
 * event's hash (`eventHash`), which anchors the snapshot to the history it was folded from.
 *
 * @throws RangeError for a state without events (there is nothing to snapshot).
 */
export function toSnapshot(
  state: ContextState,
  eventSequence: number,
  eventHash: Uint8Array = new Uint8Array(0),
): ContextSnapshot {
  if (state.version === 0 || state.updatedAt === undefined) {
    throw new RangeError(`story ${state.storyId} has no events: there is nothing to snapshot`);
  }
  return create(ContextSnapshotSchema, {
    context: toContextMessage(state),
    version: state.version,
    occurredAt: timestampFromDate(state.updatedAt),
    eventSequence: BigInt(eventSequence),
    schemaVersion: currentSnapshotSchemaVersion,
    eventHash,
  });
}

export function encodeSnapshot(snapshot: ContextSnapshot): Uint8Array {
  return toBinary(ContextSnapshotSchema, snapshot);
}

/**
 * Decodes a stored snapshot of `storyId`; undefined for anything that must not be used: bytes that
 * are not a snapshot, a schema version this code does not know, a snapshot of another story, or one
 * without the fields a reader resumes from.
 */
export function decodeSnapshot(storyId: StoryId, bytes: Uint8Array): ContextSnapshot | undefined {
  const snapshot = parse(ContextSnapshotSchema, bytes);
  if (snapshot === undefined) return undefined;
  const usable =
    snapshot.schemaVersion === currentSnapshotSchemaVersion &&
    snapshot.context?.storyId === storyId &&
    snapshot.version > 0 &&
    snapshot.occurredAt !== undefined &&
    snapshot.eventSequence > 0n;
  return usable ? snapshot : undefined;
}

/**
 * The state a snapshot holds; undefined when the context in it cannot be read by this code (a
 * status it does not know).
 */
export function loadSnapshot(snapshot: ContextSnapshot): LoadedSnapshot | undefined {
  if (snapshot.context === undefined || snapshot.occurredAt === undefined) return undefined;
  try {
    return {
      state: fromContextMessage(
        snapshot.context,
        streamVersion(snapshot.version),
        timestampDate(snapshot.occurredAt),
      ),
      eventSequence: Number(snapshot.eventSequence),
      eventHash: snapshot.eventHash,
    };
  } catch (e) {
    if (e instanceof RangeError) return undefined;
    throw e;
  }
}

/**
 * The shape of `context.v1.ContextSegment` this code writes and reads; a reader ignores segments of
 * any other (their events are then read from the event stream).
 */
export const currentSegmentSchemaVersion = 1;

/** An event as stored in the event stream: its bytes and its stream sequence. */
export interface StoredCopy {
  readonly sequence: number;
  readonly data: Uint8Array;
}

/** The segment of `storyId`'s events after `afterVersion`: `events` in version order, as stored. */
export function toSegment(
  storyId: StoryId,
  afterVersion: number,
  events: readonly StoredCopy[],
): ContextSegment {
  return create(ContextSegmentSchema, {
    storyId,
    afterVersion,
    events: events.map((e) => ({ sequence: BigInt(e.sequence), data: e.data })),
    schemaVersion: currentSegmentSchemaVersion,
  });
}

export function encodeSegment(segment: ContextSegment): Uint8Array {
  return toBinary(ContextSegmentSchema, segment);
}

/**
 * Decodes a stored segment of `storyId` after `afterVersion`; undefined for anything that must not
 * be used: bytes that are not a segment, a schema version this code does not know, a segment of
 * another story or position, or one without events.
 */
export function decodeSegment(
  storyId: StoryId,
  afterVersion: number,
  bytes: Uint8Array,
): ContextSegment | undefined {
  const segment = parse(ContextSegmentSchema, bytes);
  if (segment === undefined) return undefined;
  const usable =
    segment.schemaVersion === currentSegmentSchemaVersion &&
    segment.storyId === storyId &&
    segment.afterVersion === afterVersion &&
    segment.events.length > 0 &&
    segment.events.every((e) => e.sequence > 0n && e.data.length > 0);
  return usable ? segment : undefined;
}

/** When the last event folded into a snapshot occurred, in ms since the epoch. */
export function snapshotTime(snapshot: ContextSnapshot): number {
  return snapshot.occurredAt === undefined
    ? Number.NaN
    : timestampDate(snapshot.occurredAt).getTime();
}

/**
 * The versions at which a snapshot for a read up to `version` is looked for, best first:
 * floor(version / interval) * interval and the `fallbacks` multiples below it (the snapshotter may
 * not have written the newest yet), never 0.
 */
export function candidateVersions(version: number, interval: number, fallbacks = 2): number[] {
  if (!Number.isSafeInteger(interval) || interval < 1) {
    throw new RangeError(`invalid snapshot interval ${interval}: expected a positive integer`);
  }
  const best = Math.floor(version / interval) * interval;
  const out: number[] = [];
  for (let v = best; v > 0 && out.length <= fallbacks; v -= interval) out.push(v);
  return out;
}

/** The message `bytes` encode, or undefined when they are not one. */
function parse<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
): MessageShape<Desc> | undefined {
  try {
    return fromBinary(schema, bytes);
  } catch {
    return undefined;
  }
}
