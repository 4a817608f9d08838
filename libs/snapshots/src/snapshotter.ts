import type { Logger } from "@ctx/config";
import {
  decodeStoredEvent,
  type EventStore,
  isEventStoreUnavailableError,
  storedEnvelopeBytes,
} from "@ctx/event-store";
import {
  type BackoffDelays,
  type BackoffSettings,
  backoffDelays,
  type OutageRetry,
  outageRetry,
} from "@ctx/projector";
import { consumerParentage, inSpan, spanContextOf, tracing } from "@ctx/telemetry";
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamManager,
  type JsMsg,
  jetstream,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import { SpanKind } from "@opentelemetry/api";
import { Counter, Gauge, type Registry } from "prom-client";
import { isSnapshotStoreUnavailableError } from "./errors.ts";
import { type StoredCopy, toSegment, toSnapshot } from "./snapshot-codec.ts";
import type { SnapshotStore } from "./snapshot-store.ts";
import { createTemporalReader, type PointInTime, type TemporalReader } from "./temporal-reader.ts";

/** What the snapshotter's consumer may have delivered and not yet handled, at most. */
const PULL_MAX_BYTES = 16 * 1024 * 1024;
export interface SnapshotterOptions {
  readonly nc: NatsConnection;
  /** The event store whose stream is snapshotted. */
  readonly store: EventStore;
  readonly snapshots: SnapshotStore;
  /** Snapshot every this many versions (default: the snapshot store's interval, which readers use). */
  readonly interval?: number;
  readonly logger: Logger;
  /** Durable consumer name on the event stream (default `snapshotter`); replicas share it. */
  readonly consumerName?: string;
  /**
   * Registers `ctx_snapshots_written_total`, `ctx_snapshot_segments_total` and `ctx_snapshotter_lag_events`
   * when given.
   */
  readonly registry?: Registry;
  /**
   * How an outage of the event or snapshot stream is waited out, and how often a consumer that
   * could not be opened is tried again: the projectors' policy (exponential back-off with jitter,
   * 100 ms up to 10 s, behind a circuit breaker) unless given.
   */
  readonly backoff?: BackoffSettings;
}

export interface Snapshotter {
  /**
   * Starts writing snapshots from the durable consumer (created when missing, resumed otherwise);
   * returns at once. Until the event stream exists, it retries with back-off.
   */
  start(): Promise<void>;
  /** Finishes the event in hand and stops; unacknowledged events are redelivered later. */
  stop(): Promise<void>;
  /** Events of the stream the snapshotter has not finished with yet. */
  lag(): Promise<number>;
}

const ACK_WAIT_MS = 30_000;

/**
 * Writes a snapshot of every story at every `interval`-th version, off the command path: a durable
 * JetStream consumer over every event subject reads each event once; for an event whose version
 * is a multiple of the interval it folds the previous snapshot and the events after it into the
 * state at that version, stores those events as the segment after the previous snapshot, then the
 * snapshot, and only then acknowledges the event. Idempotent (a redelivered event finds its
 * segment and snapshot stored and writes nothing), so several replicas may share the consumer.
 */
export function createSnapshotter(options: SnapshotterOptions): Snapshotter {
  return new JetStreamSnapshotter(options);
}

class JetStreamSnapshotter implements Snapshotter {
  readonly #o: SnapshotterOptions;
  readonly #name: string;
  readonly #interval: number;
  readonly #reader: TemporalReader;
  readonly #written: Counter | undefined;
  readonly #segments: Counter | undefined;
  #jsm: JetStreamManager | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #stopped = false;
  #wakeRetry: (() => void) | undefined;
  /** Aborted by stop(): ends a wait for a store to come back. */
  #stopping = new AbortController();
  /** Waits out an outage of the event or snapshot stream while handling an event. */
  readonly #outages: OutageRetry;
  /** Waits between attempts to open the consumer. */
  readonly #reopenDelays: BackoffDelays;

  constructor(options: SnapshotterOptions) {
    this.#o = options;
    this.#name = options.consumerName ?? "snapshotter";
    this.#interval = options.interval ?? options.snapshots.interval;
    if (!Number.isSafeInteger(this.#interval) || this.#interval < 1) {
      throw new RangeError(`invalid snapshot interval ${this.#interval}`);
    }
    this.#outages = outageRetry({
      ...(options.backoff ? { settings: options.backoff } : {}),
      isOutage: (e) => isEventStoreUnavailableError(e) || isSnapshotStoreUnavailableError(e),
      onRetry: (delay, err) =>
        options.logger.warn({ err, delay }, "snapshotter: a stream is unavailable; retrying"),
    });
    this.#reopenDelays = backoffDelays(options.backoff);
    this.#reader = createTemporalReader({
      store: options.store,
      snapshots: options.snapshots,
      logger: options.logger,
    });
    if (options.registry) {
      this.#written = new Counter({
        name: "ctx_snapshots_written_total",
        help: "Snapshots stored by the snapshotter",
        registers: [options.registry],
      });
      this.#segments = new Counter({
        name: "ctx_snapshot_segments_total",
        help: "Segments of events the snapshotter handled, by outcome (stored; too_large: not stored, readers use the event stream)",
        labelNames: ["outcome"],
        registers: [options.registry],
      });
      const lag = () => this.lag();
      // When the lag cannot be read (NATS away), the gauge keeps the last one read, and the
      // failure is counted: no sentinel value that a dashboard would draw as a lag.
      const lagUnread = new Counter({
        name: "ctx_snapshotter_lag_read_failures_total",
        help: "Scrapes at which the snapshotter's lag could not be read (ctx_snapshotter_lag_events kept its last value)",
        registers: [options.registry],
      });
      new Gauge({
        name: "ctx_snapshotter_lag_events",
        help: "Events the snapshotter has not processed yet (the last value read)",
        registers: [options.registry],
        async collect() {
          try {
            this.set(await lag());
          } catch {
            lagUnread.inc();
          }
        },
      });
    }
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#stopping = new AbortController();
    this.#jsm = await jetstream(this.#o.nc).jetstreamManager();
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort(new Error("the snapshotter is stopping"));
    this.#wakeRetry?.();
    await this.#messages?.close().catch(() => undefined);
    await this.#loop;
  }

  async lag(): Promise<number> {
    const jsm = this.#jsm ?? (await jetstream(this.#o.nc).jetstreamManager());
    const info = await jsm.consumers.info(this.#o.store.names.stream, this.#name);
    return info.num_pending + info.num_ack_pending;
  }

  async #ensureConsumer(jsm: JetStreamManager): Promise<void> {
    const { stream, subjectPrefix } = this.#o.store.names;
    const exists = await jsm.consumers.info(stream, this.#name).catch(() => undefined);
    if (exists) return;
    await jsm.consumers.add(stream, {
      durable_name: this.#name,
      description: `snapshots every ${this.#interval} versions into ${this.#o.snapshots.names.stream}`,
      filter_subject: `${subjectPrefix}.>`,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ACK_WAIT_MS),
      max_deliver: -1,
      max_ack_pending: 1_000,
      deliver_policy: DeliverPolicy.All,
    });
  }

  async #run(): Promise<void> {
    const { logger, store } = this.#o;
    let lastFailure: string | undefined;
    while (!this.#stopped) {
      try {
        const jsm = this.#jsm as JetStreamManager;
        await this.#ensureConsumer(jsm);
        const consumer = await jetstream(this.#o.nc).consumers.get(store.names.stream, this.#name);
        // Bounded by bytes, not by count: 512 events of the largest size a stream may hold came
        // to 512 MB buffered; nats.js then asks for at most 100 messages per pull, plenty for a
        // consumer that handles one event at a time.
        this.#messages = await consumer.consume({ max_bytes: PULL_MAX_BYTES });
        lastFailure = undefined;
        for await (const msg of this.#messages) {
          await this.#handle(msg);
          // It works again: the next failure starts from the shortest wait.
          this.#reopenDelays.reset();
          if (this.#stopped) break;
        }
      } catch (e) {
        if (this.#stopped) return;
        // Once per kind of failure (e.g. the event stream does not exist yet), not every attempt.
        const reason = e instanceof Error ? e.message : String(e);
        const log = reason === lastFailure ? logger.debug.bind(logger) : logger.warn.bind(logger);
        log({ err: e }, "snapshotter consumer failed; restarting it");
        lastFailure = reason;
      }
      await this.#messages?.close().catch(() => undefined);
      this.#messages = undefined;
      if (!this.#stopped) {
        const delay = this.#reopenDelays.next();
        logger.debug({ delay }, "snapshotter: reopening its consumer after a wait");
        await this.#pause(delay);
      }
    }
  }

  async #handle(msg: JsMsg): Promise<void> {
    const { logger, snapshots } = this.#o;
    let storyId: string | undefined;
    try {
      // Only the position matters here; the reader below upcasts what it folds.
      // Checked against its subject: a message of another story's envelope is never folded.
      const event = decodeStoredEvent(msg.data, msg.seq, msg.subject);
      storyId = event.storyId;
      if (event.version % this.#interval !== 0) {
        msg.ack();
        return;
      }
      // An outage of either stream is waited out with back-off on this event (idempotent: a
      // retry finds what the failed attempt stored), keeping it ours meanwhile.
      const snapshot = async () => {
        const point = await this.#reader.atVersion(event.storyId, event.version);
        if (point.state.version !== event.version) {
          // The stream no longer holds this version of the story (never expected): nothing to store.
          logger.warn(
            { storyId, version: event.version, found: point.state.version },
            "snapshotter could not fold a story up to an event it received; skipped",
          );
          return;
        }
        // The segment first: a reader that finds a snapshot finds the segment before it too.
        await this.#writeSegment(point, event.version - this.#interval);
        // Anchored by the hash of its last event, as stored (an upcaster keeps it).
        const last = point.events[point.events.length - 1]?.envelope.hash;
        const snapshot = toSnapshot(point.state, point.sequence, last);
        if (await snapshots.write(snapshot)) this.#written?.inc();
      };
      await this.#retryingOutages(
        msg,
        tracing.enabled ? () => this.#traced(msg, snapshot) : snapshot,
      );
      msg.ack();
    } catch (e) {
      if (this.#stopping.signal.aborted) {
        // Stopped while waiting for a stream to come back: the next snapshotter takes it.
        msg.nak();
        return;
      }
      // A corrupt event or any other fault: snapshots are an optimisation, so skip, never stall.
      logger.error({ err: e, storyId, sequence: msg.seq }, "snapshotter skipped an event");
      msg.term(e instanceof Error ? e.message : String(e));
    }
  }

  /**
   * Runs a snapshot's work inside a span linked to the append of the event that called for it
   * (the trace context in its headers; see consumerParentage).
   */
  #traced(msg: JsMsg, fn: () => Promise<void>): Promise<void> {
    const spanContext = spanContextOf((name) => msg.headers?.get(name));
    const { parent, links } = consumerParentage(
      spanContext ? [{ spanContext, attributes: { "ctx.sequence": msg.seq } }] : [],
    );
    return inSpan(
      `snapshot ${this.#o.snapshots.names.stream}`,
      {
        kind: SpanKind.CONSUMER,
        links,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "process",
          "messaging.destination.name": this.#o.store.names.stream,
          "messaging.consumer.group.name": this.#name,
          "ctx.snapshot_stream": this.#o.snapshots.names.stream,
        },
      },
      fn,
      parent,
    );
  }

  /** Runs `fn` with the shared back-off on outages, keeping `msg` from being redelivered meanwhile. */
  async #retryingOutages(msg: JsMsg, fn: () => Promise<void>): Promise<void> {
    const keepAlive = setInterval(() => msg.working(), ACK_WAIT_MS / 3);
    try {
      await this.#outages.execute(fn, this.#stopping.signal);
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** Stores the events of `point` after version `after` (as stored) as the segment after it. */
  async #writeSegment(point: PointInTime, after: number): Promise<void> {
    // Only a fold that started at or before `after` read every event of the segment.
    if (point.snapshotVersion > after || after < 0) return;
    const copies: StoredCopy[] = [];
    for (const event of point.events) {
      // An upcaster may split a stored event into several: the segment holds it once.
      if (event.version <= after || event.sequence === copies[copies.length - 1]?.sequence)
        continue;
      // A message an operator set aside has no envelope a reader could decode from a copy:
      // readers of this stretch read the event stream, which says it is set aside.
      if (event.setAside !== undefined) return;
      copies.push({ sequence: event.sequence, data: storedEnvelopeBytes(event.envelope) });
    }
    if (copies.length === 0) return;
    const storyId = point.state.storyId;
    const outcome = await this.#o.snapshots.writeSegment(toSegment(storyId, after, copies));
    if (outcome === "exists") return;
    this.#segments?.inc({ outcome: outcome === "stored" ? "stored" : "too_large" });
    if (outcome === "too-large") {
      this.#o.logger.info(
        { storyId, afterVersion: after, events: copies.length },
        "segment too large for a NATS message; temporal reads after this snapshot use the stream",
      );
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wakeRetry = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
