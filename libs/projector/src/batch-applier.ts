import type { Logger } from "@ctx/config";
import { fold, type StoryId, streamVersion } from "@ctx/domain";
import {
  EventMismatchError,
  type EventStore,
  followsOn,
  isEventReadError,
  type RecordedEvent,
  storedEnvelopeBytes,
} from "@ctx/event-store";
import { inSpan, tracing } from "@ctx/telemetry";
import type { JetStreamClient } from "@nats-io/jetstream";
import { SpanKind } from "@opentelemetry/api";
import { type BackoffSettings, type OutageRetry, outageRetry } from "./backoff.ts";
import { isStoreUnavailableError, isVersionConflictError } from "./errors.ts";
import type { ProjectorMetrics } from "./metrics.ts";
import { type ParkingNames, park } from "./parking.ts";
import type { Projection, ProjectionBatch, StoryEvents, StoryPosition } from "./projection.ts";

/** Beyond this many remembered story versions, an applier starts remembering afresh. */
const MAX_KNOWN_STORIES = 200_000;

export interface BatchApplierOptions {
  readonly projection: Projection;
  readonly store: EventStore;
  readonly js: JetStreamClient;
  readonly parking: ParkingNames;
  readonly logger: Logger;
  readonly metrics: ProjectorMetrics;
  readonly backoff?: BackoffSettings;
}

/**
 * Decoded events of a batch, by story in stream order, and the stories with a message that could
 * not be read, each with the stream sequence of its first such message: the events before it are
 * applied, nothing after it, and the story is marked stale.
 */
export interface DecodedBatch {
  readonly byStory: ReadonlyMap<StoryId, readonly RecordedEvent[]>;
  readonly poisoned: ReadonlyMap<StoryId, number>;
}

/** Notes a story's unreadable message in a batch being decoded (the earliest one counts). */
export function notePoisoned(
  poisoned: Map<StoryId, number>,
  story: StoryId,
  sequence: number,
): void {
  const earliest = poisoned.get(story);
  if (earliest === undefined || sequence < earliest) poisoned.set(story, sequence);
}

/**
 * Applies batches of events to a projection the way live projection and rebuilds both need: only
 * each story's next events (version guard; gaps filled from the stream, never applied out of order),
 * outages retried with back-off behind a circuit breaker, and an event the model refuses parked with
 * its reason while its story is marked stale and every other story goes on.
 */
export class BatchApplier {
  readonly #o: BatchApplierOptions;
  readonly #log: Logger;
  readonly #label: { projection: string };
  readonly #resilient: OutageRetry;
  // The version each story has in the model since this applier last wrote it whole, so a batch
  // asks the model only for the stories it does not know: a partition has one writer at a time.
  // Never trusted blindly: the model checks every write's expected version, and a conflict makes
  // the next attempt ask the model. Stories written story by story (a poison event) or marked
  // stale are forgotten.
  readonly #known = new Map<string, number>();

  constructor(options: BatchApplierOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#label = { projection: options.projection.name };
    // Outages of the read model: retry forever with exponential back-off and jitter; after five
    // failures in a row the circuit opens and calls wait without touching the store for a while.
    this.#resilient = outageRetry({
      ...(options.backoff ? { settings: options.backoff } : {}),
      isOutage: isStoreUnavailableError,
      onRetry: (delay, err) => {
        this.#o.metrics.storeErrors.inc(this.#label);
        this.#log.warn({ delay, err }, "read model unavailable; retrying");
      },
    });
  }

  /** Stories found broken while a batch was prepared: marked stale once the batch is written. */
  readonly #staleAfterWrite = new Map<StoryId, string>();

  /** Runs a read-model call with back-off on outages. */
  call<T>(fn: () => Promise<T>): Promise<T> {
    return this.#resilient.execute(fn);
  }

  /**
   * Applies a decoded batch to one partition of a generation and moves its checkpoint from
   * `previousCheckpoint` to `checkpoint`. Returns once every event is applied, skipped or parked.
   */
  async applyBatch(
    generation: number,
    partition: number,
    batch: DecodedBatch,
    previousCheckpoint: number,
    checkpoint: number,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      // After a conflict, ask the model itself: what this applier remembers may be out of date.
      const stories = await this.#pending(generation, batch, attempt === 1);
      let whole = false;
      try {
        whole = await this.#apply(generation, partition, stories, previousCheckpoint, checkpoint);
      } catch (e) {
        this.#forget(generation, batch.byStory.keys());
        if (!isVersionConflictError(e) || attempt >= 5) throw e;
        this.#log.warn({ err: e }, "version conflict; re-reading positions");
        continue;
      }
      if (whole) this.#remember(generation, stories);
      else this.#forget(generation, batch.byStory.keys());
      break;
    }
    const stale = new Map<StoryId, string>(this.#staleAfterWrite);
    this.#staleAfterWrite.clear();
    for (const story of batch.poisoned.keys()) stale.set(story, "an event of the story is parked");
    this.#forget(generation, stale.keys());
    for (const [story, reason] of stale) {
      await this.call(() => this.#o.projection.markStale(generation, story, reason));
    }
    for (const [story, events] of batch.byStory) {
      const last = events[events.length - 1];
      if (last && events.some((e) => e.data.case === "eventsSetAside")) {
        await this.#replaceRepaired(generation, story, last.version);
      }
    }
  }

  /**
   * A story an operator repaired (an EventsSetAside arrived): the messages that made it stale are
   * set aside now, and the stream says so, so the story is replaced by the fold of its events as
   * every reader reads them, up to the batch's last one, and is no longer stale.
   */
  async #replaceRepaired(generation: number, storyId: StoryId, version: number): Promise<void> {
    const { projection, store } = this.#o;
    this.#forget(generation, [storyId]);
    let events: readonly RecordedEvent[];
    try {
      events = await store.read(storyId, { toVersion: version });
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      // Another message no reader can read came after the repair: the story stays stale.
      this.#log.warn({ err: e, storyId }, "a repaired story still cannot be read; it stays stale");
      await this.call(() => projection.markStale(generation, storyId, e.message));
      return;
    }
    await this.call(() => projection.replaceStory(generation, fold(storyId, events)));
    this.#log.info({ storyId, version }, "story repaired by an operator: rebuilt from the stream");
  }

  /**
   * Parks a message that could not be decoded or upcast (version 0 when not even decodable),
   * unless an operator set it aside (the stream says so, and the story is rebuilt when the
   * EventsSetAside arrives).
   */
  async parkRaw(
    storyId: string,
    sequence: number,
    eventType: string,
    data: Uint8Array,
    error: unknown,
    version = 0,
  ): Promise<void> {
    if (await this.#o.store.isSetAside(storyId, sequence, data)) return;
    await this.#park(storyId, version, sequence, eventType, data, error);
  }

  #knownKey(generation: number, storyId: StoryId): string {
    return `${generation}\u0000${storyId}`;
  }

  /** Stories written whole by the last batch: the model holds their last event now, not stale. */
  #remember(generation: number, stories: readonly StoryEvents[]): void {
    if (this.#known.size > MAX_KNOWN_STORIES) this.#known.clear();
    for (const { storyId, events } of stories) {
      const last = events[events.length - 1];
      if (last) this.#known.set(this.#knownKey(generation, storyId), last.version);
    }
  }

  #forget(generation: number, storyIds: Iterable<StoryId>): void {
    for (const id of storyIds) this.#known.delete(this.#knownKey(generation, id));
  }

  /** For each story, the events the model does not hold yet, from exactly its version + 1. */
  async #pending(
    generation: number,
    { byStory, poisoned }: DecodedBatch,
    useKnown: boolean,
  ): Promise<StoryEvents[]> {
    const { projection, store, metrics } = this.#o;
    const known = new Map<StoryId, StoryPosition>();
    const unknown: StoryId[] = [];
    for (const id of byStory.keys()) {
      const version = useKnown ? this.#known.get(this.#knownKey(generation, id)) : undefined;
      if (version === undefined) unknown.push(id);
      else known.set(id, { version: streamVersion(version), stale: false });
    }
    const positions =
      unknown.length > 0
        ? await this.call(() => projection.positions(generation, unknown))
        : new Map<StoryId, StoryPosition>();
    const result: StoryEvents[] = [];
    for (const [storyId, events] of byStory) {
      const position = known.get(storyId) ??
        positions.get(storyId) ?? { version: streamVersion(0), stale: false };
      if (position.stale) {
        // A stale story waits for a rebuild or a parked replay; applying more would hide the gap.
        metrics.skipped.inc(this.#label, events.length);
        continue;
      }
      // Of a story with an unreadable message, what came before it is applied; then it waits.
      const badAt = poisoned.get(storyId) ?? Number.POSITIVE_INFINITY;
      // Redelivered duplicates go; the parts of a split stored event share its version.
      const seen = new Set<string>();
      let pending = events.filter((e) => {
        if (e.sequence >= badAt) return false;
        const id = `${e.version}:${e.part ?? 0}`;
        if (e.version <= position.version || seen.has(id)) return false;
        seen.add(id);
        return true;
      });
      // Redeliveries can come after later events: apply in version order whatever the arrival.
      pending.sort((a, b) => a.version - b.version || (a.part ?? 0) - (b.part ?? 0));
      metrics.skipped.inc(this.#label, events.length - pending.length);
      const first = pending[0];
      if (!first) continue;
      if (first.version > position.version + 1) {
        // Never apply out of order: fetch what is missing from the stream.
        try {
          const range = { fromVersion: position.version + 1, toVersion: first.version - 1 };
          // Any replica of a replicated stream answers this read, and a follower may be behind
          // the leader that delivered `first` (catching up after a restart): only the leader can
          // say that the events before it are not stored. (A read that fails, the store itself
          // checks on the leader before it says so.)
          let missing = await store.read(storyId, range);
          if (missing[missing.length - 1]?.version !== range.toVersion) {
            missing = await store.read(storyId, { ...range, fromLeader: true });
          }
          pending = [...missing, ...pending];
        } catch (e) {
          if (!isEventReadError(e)) throw e;
          // What is missing cannot be read (parked where it was met): the story waits, stale.
          this.#log.error(
            { err: e, storyId, before: first.version },
            "events before a delivered one cannot be read from the stream's leader; the story is marked stale",
          );
          await this.call(() => projection.markStale(generation, storyId, e.message));
          this.#forget(generation, [storyId]);
          metrics.skipped.inc(this.#label, pending.length);
          continue;
        }
      }
      let at: number = position.version;
      const broken = pending.find((e) => {
        if (!followsOn(at, e)) return true;
        at = e.version;
        return false;
      });
      if (broken !== undefined) {
        // A version no stored event leads up to (a forged or misplaced message): never applied,
        // never a stall of the partition. Parked with why; the story waits, stale.
        const error = new EventMismatchError({
          sequence: broken.sequence,
          storyId,
          reason: `version ${broken.version} where version ${at + 1} was expected, and the stream holds nothing between`,
        });
        const bytes = storedEnvelopeBytes(broken.envelope);
        await this.#park(storyId, broken.version, broken.sequence, broken.eventType, bytes, error);
        // What leads up to it is applied first; the story is marked stale after the write.
        const before = pending.slice(0, pending.indexOf(broken));
        metrics.skipped.inc(this.#label, pending.length - before.length);
        this.#staleAfterWrite.set(storyId, error.message);
        if (before.length > 0) {
          result.push({ storyId, expectedVersion: position.version, events: before });
        }
        continue;
      }
      result.push({ storyId, expectedVersion: position.version, events: pending });
    }
    return result;
  }

  /**
   * Applies the batch; if the model refuses it, finds the poison event, parks it and goes on.
   * Resolves true when the batch went in whole, false when it was applied story by story.
   */
  async #apply(
    generation: number,
    partition: number,
    stories: readonly StoryEvents[],
    previousCheckpoint: number,
    checkpoint: number,
  ): Promise<boolean> {
    const { metrics } = this.#o;
    const count = (list: readonly StoryEvents[]) => list.reduce((n, s) => n + s.events.length, 0);
    try {
      await this.#write({ generation, partition, checkpoint, stories });
      metrics.applied.inc(this.#label, count(stories));
      return true;
    } catch (e) {
      if (isVersionConflictError(e) || stories.length === 0) throw e;
      this.#log.warn({ err: e }, "batch refused; applying story by story to find the poison event");
    }
    for (const story of stories) {
      try {
        await this.#write({
          generation,
          partition,
          checkpoint: previousCheckpoint,
          stories: [story],
        });
        metrics.applied.inc(this.#label, story.events.length);
      } catch (e) {
        if (isVersionConflictError(e)) throw e;
        await this.#isolate(generation, partition, previousCheckpoint, story);
      }
    }
    await this.#write({ generation, partition, checkpoint, stories: [] });
    return false;
  }

  /**
   * One write to the model, with the applier's outage retries. With tracing on, a write of events
   * is a span of its own (a child of the worker's batch span, hence of the command's trace when
   * the batch is one command's events; see consumerParentage); a move of the checkpoint alone is not.
   */
  #write(batch: ProjectionBatch): Promise<void> {
    const { projection } = this.#o;
    const write = () => projection.apply(batch);
    if (!tracing.enabled || batch.stories.length === 0) return this.call(write);
    return this.call(() =>
      inSpan(
        `write ${projection.name}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            "db.system.name": projection.name,
            "ctx.generation": batch.generation,
            "ctx.partition": batch.partition,
            "ctx.stories": batch.stories.length,
            "ctx.events": batch.stories.reduce((n, s) => n + s.events.length, 0),
          },
        },
        write,
      ),
    );
  }

  /** Applies one story's events one by one; the first the model refuses is parked, the story marked stale. */
  async #isolate(
    generation: number,
    partition: number,
    checkpoint: number,
    story: StoryEvents,
  ): Promise<void> {
    const { projection, metrics } = this.#o;
    let version = story.expectedVersion;
    // One stored event at a time: the parts of a split event are applied (or parked) together.
    const stored: RecordedEvent[][] = [];
    for (const e of story.events) {
      const last = stored[stored.length - 1];
      if (last && last[0]?.version === e.version) last.push(e);
      else stored.push([e]);
    }
    let done = 0;
    for (const parts of stored) {
      const event = parts[0] as RecordedEvent;
      try {
        await this.#write({
          generation,
          partition,
          checkpoint,
          stories: [{ storyId: story.storyId, expectedVersion: version, events: parts }],
        });
        metrics.applied.inc(this.#label, parts.length);
        version = event.version;
        done += parts.length;
      } catch (e) {
        if (isVersionConflictError(e)) throw e;
        const bytes = storedEnvelopeBytes(event.envelope);
        await this.#park(story.storyId, event.version, event.sequence, event.eventType, bytes, e);
        await this.call(() =>
          projection.markStale(generation, story.storyId, `event ${event.version} is parked`),
        );
        metrics.skipped.inc(this.#label, story.events.length - done);
        return;
      }
    }
  }

  async #park(
    storyId: string,
    version: number,
    sequence: number,
    eventType: string,
    data: Uint8Array,
    error: unknown,
  ): Promise<void> {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.#log.error(
      { storyId, version, sequence, reason },
      "parking an event the projection cannot apply",
    );
    await park(this.#o.js, this.#o.parking, {
      projection: this.#o.projection.name,
      storyId,
      version,
      originalSequence: sequence,
      eventType,
      reason,
      data,
    });
    this.#o.metrics.parked.inc(this.#label);
  }
}
