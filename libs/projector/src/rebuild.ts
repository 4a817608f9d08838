import type { Logger } from "@ctx/config";
import { fold, type StoryId } from "@ctx/domain";
import {
  type EventStore,
  type RecordedEvent,
  type StoredEvent,
  storedEnvelopeBytes,
} from "@ctx/event-store";
import { type JetStreamManager, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { BatchApplier, notePoisoned } from "./batch-applier.ts";
import { createProjectorMetrics } from "./metrics.ts";
import { defaultParkingNames, type ParkingNames } from "./parking.ts";
import type { Projection } from "./projection.ts";

export interface RebuildProgress {
  readonly generation: number;
  /** Stream sequence reached. */
  readonly sequence: number;
  /** The stream's last sequence as last seen (grows while writers append). */
  readonly head: number;
  readonly events: number;
}

export interface RebuildOptions {
  readonly nc: NatsConnection;
  readonly store: EventStore;
  readonly partitions: number;
  readonly projection: Projection;
  readonly logger: Logger;
  readonly parking?: ParkingNames;
  /** Events read per write round (default DEFAULT_REBUILD_BATCH); each partition's share is one write. */
  readonly batchSize?: number;
  /** Ctrl-C: stop after the current batch; the live generation is untouched and the rebuild resumable. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: RebuildProgress) => void;
  /** How long readers may keep using the old generation after the switch before it is deleted. */
  readonly dropDelayMs?: number;
}

export interface RebuildResult {
  readonly generation: number;
  readonly previousGeneration: number;
  readonly events: number;
  /** False when interrupted: the new generation stays, unswitched, to be resumed. */
  readonly switched: boolean;
}

/**
 * Events read per write round of a rebuild. Each partition's share is one write, so with 16
 * partitions about 4,000 events each: a model pays per write and per story written, and a story's
 * events of one write cost about what one of them does. (A round is held in memory: some 64 MB.)
 */
export const DEFAULT_REBUILD_BATCH = 64_000;

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure. */
async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Zero-downtime rebuild of a read model: replays the stream from the start into a new generation
 * beside the live one (readers keep using the live one), catches up with the head, switches readers
 * to the new generation in one step, then deletes the old one. Live projectors notice the switch and
 * continue from the new generation's checkpoints. An interrupted rebuild resumes where it stopped:
 * the new generation's checkpoints say how far it got.
 */
export async function rebuildProjection(options: RebuildOptions): Promise<RebuildResult> {
  const { projection, store, partitions, logger } = options;
  const batchSize = options.batchSize ?? DEFAULT_REBUILD_BATCH;
  await projection.init();
  const live = await projection.activeGeneration();
  const existing = await projection.generations();
  const unfinished = existing.filter((g) => g > live);
  const generation =
    unfinished.length > 0 ? Math.max(...unfinished) : Math.max(live, ...existing) + 1;
  // Where an interrupted rebuild got to: the progress mark written after every complete batch (a
  // partition with no events since would drag the partitions' own minimum back).
  const progressMark = partitions;
  const from = await projection.checkpoint(generation, progressMark);
  logger.info({ generation, live, resumeAfter: from }, "rebuilding");

  const applier = new BatchApplier({
    projection,
    store,
    js: jetstream(options.nc),
    parking: options.parking ?? defaultParkingNames,
    logger,
    metrics: createProjectorMetrics(new Registry()),
  });
  const jsm: JetStreamManager = await jetstream(options.nc).jetstreamManager();
  const lastSequence = async () => (await jsm.streams.info(store.names.stream)).state.last_seq;

  const checkpoints = new Map<number, number>();
  let events = 0;
  let position = from;
  let head = await lastSequence();
  const flush = async (batch: (StoredEvent & { partition: number })[]) => {
    const byPartition = new Map<number, (StoredEvent & { partition: number })[]>();
    for (const e of batch) {
      const list = byPartition.get(e.partition);
      if (list) list.push(e);
      else byPartition.set(e.partition, [e]);
    }
    // The replay runs in stream order: after this batch, each partition it touched is complete up
    // to the batch's last sequence.
    const last = (batch[batch.length - 1] as StoredEvent).sequence;
    // Two partitions at a time: the store works on one write while this process prepares the next.
    await forEachConcurrently([...byPartition], 2, async ([partition, list]) => {
      const byStory = new Map<StoryId, RecordedEvent[]>();
      const poisoned = new Map<StoryId, number>();
      for (const stored of list) {
        // Upcast with the store's upcaster (the one every reader uses); an event no chain can
        // read is parked and its story marked stale, as live projection does.
        let events: readonly RecordedEvent[];
        try {
          events = store.upcaster.upcast(stored);
        } catch (e) {
          const bytes = stored.unreadable?.data ?? storedEnvelopeBytes(stored.envelope);
          await applier.parkRaw(
            stored.storyId,
            stored.sequence,
            stored.eventType,
            bytes,
            e,
            stored.version,
          );
          notePoisoned(poisoned, stored.storyId, stored.sequence);
          continue;
        }
        const story = byStory.get(stored.storyId);
        if (story) story.push(...events);
        else byStory.set(stored.storyId, [...events]);
      }
      const previous = checkpoints.get(partition) ?? from;
      await applier.applyBatch(generation, partition, { byStory, poisoned }, previous, last);
      checkpoints.set(partition, last);
    });
    await applier.applyBatch(
      generation,
      progressMark,
      { byStory: new Map(), poisoned: new Map() },
      from,
      last,
    );
    events += batch.length;
    position = last;
    options.onProgress?.({ generation, sequence: position, head, events });
  };

  // Replay until caught up: a pass reads to the head as it was when the pass began; new events
  // appended meanwhile are read by the next pass, until a pass finds (almost) nothing new.
  for (;;) {
    let batch: (StoredEvent & { partition: number })[] = [];
    let passEvents = 0;
    const range = { fromSequence: position + 1, toSequence: head };
    // The next batch is read while the previous one is written; writes stay one after another.
    let writing: Promise<void> | undefined;
    const write = async (full: (StoredEvent & { partition: number })[]) => {
      await writing;
      if (options.signal?.aborted) return; // interrupted: what is read but not written is dropped
      writing = flush(full);
      writing.catch(() => undefined); // awaited before the next write, and at the end
    };
    for await (const event of store.readAllStored(range)) {
      batch.push(event);
      passEvents += 1;
      if (batch.length >= batchSize) {
        await write(batch);
        batch = [];
        if (options.signal?.aborted) break;
      }
    }
    await writing;
    if (batch.length > 0 && !options.signal?.aborted) await flush(batch);
    if (options.signal?.aborted) {
      logger.warn({ generation, position }, "rebuild interrupted; run it again to resume");
      return { generation, previousGeneration: live, events, switched: false };
    }
    const newHead = await lastSequence();
    if (newHead === head || passEvents < batchSize) {
      head = newHead;
      break;
    }
    head = newHead;
  }
  // Every partition is complete up to where the replay got: that is where live projectors resume.
  for (let p = 0; p < partitions; p++) {
    await applier.applyBatch(
      generation,
      p,
      { byStory: new Map(), poisoned: new Map() },
      from,
      position,
    );
  }
  await projection.activateGeneration(generation);
  logger.info({ generation, previous: live, events }, "readers switched to the rebuilt generation");
  await new Promise((r) => setTimeout(r, options.dropDelayMs ?? 2_000));
  for (const g of await projection.generations()) {
    if (g !== generation) await projection.dropGeneration(g);
  }
  return { generation, previousGeneration: live, events, switched: true };
}

/**
 * Rebuilds one story in the live generation from its events (also how a parked event is replayed):
 * the story's data is replaced by the fold of its whole history, and its stale flag cleared.
 */
export async function rebuildStory(
  projection: Projection,
  store: EventStore,
  storyId: StoryId,
): Promise<{ version: number }> {
  const events = await store.read(storyId, { mustExist: true });
  const state = fold(storyId, events);
  await projection.replaceStory(await projection.activeGeneration(), state);
  return { version: state.version };
}
