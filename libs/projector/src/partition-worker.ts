import { randomBytes } from "node:crypto";
import type { Logger } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import {
  decodeStoredEvent,
  type EventStore,
  type EventStreamNames,
  parseStoredSubject,
  partitionSubjects,
  type RecordedEvent,
} from "@ctx/event-store";
import { consumerParentage, inSpan, spanContextOf, tracing } from "@ctx/telemetry";
import {
  AckPolicy,
  type ConsumerInfo,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import { SpanKind } from "@opentelemetry/api";
import type { BackoffSettings } from "./backoff.ts";
import { BatchApplier, notePoisoned } from "./batch-applier.ts";
import { type BoundedPull, createBoundedPull, type Delivery } from "./bounded-pull.ts";
import type { ProjectorMetrics } from "./metrics.ts";
import type { ParkingNames } from "./parking.ts";
import type { Projection } from "./projection.ts";

export interface PartitionWorkerOptions {
  readonly partition: number;
  readonly projection: Projection;
  /** The connection the events are pulled on. */
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: EventStreamNames;
  readonly store: EventStore;
  readonly parking: ParkingNames;
  readonly logger: Logger;
  readonly metrics: ProjectorMetrics;
  readonly batchSize: number;
  /**
   * Most bytes of events the partition has pulled and not taken into a batch (requested from the
   * server and not delivered yet, plus delivered and queued), and most bytes per batch.
   */
  readonly pullMaxBytes: number;
  /** The fewest bytes a pull asks for: the largest message the server takes, and some room. */
  readonly minPullBytes: number;
  /** Keeps count of the bytes this replica holds (pulled and not acknowledged). */
  readonly held?: { add(bytes: number): void };
  /** Limits the batches written at once, over all partitions (absent: no limit). */
  readonly writeSlots?: { execute<T>(fn: () => Promise<T>): Promise<T> };
  /** False once this replica's lease of the partition is no longer valid: stop writing. */
  readonly holds: () => boolean;
  /** How often the active generation is re-read (a rebuild may have switched it). */
  readonly generationCheckMs?: number;
  readonly backoff?: BackoffSettings;
}

// Long enough for the deliveries buffered behind the batch in hand to wait for it, also when
// partitions take turns to write (ProjectorOptions.writeConcurrency). A redelivery only costs a
// skip: each tenure has a consumer of its own, and the version guard drops what is applied.
const ACK_WAIT_MS = 120_000;

/**
 * The names of a partition's consumers start with this. Each tenure of a partition (each time a
 * worker takes it up) gets a consumer of its own, `{prefix}{tenure}`, and deletes the earlier ones.
 */
export function consumerPrefix(projection: string, partition: number): string {
  return `${projection}_p${partition}_`;
}

/** A new consumer name for a tenure of the partition: time-ordered, unique. */
function tenureConsumerName(projection: string, partition: number): string {
  return `${consumerPrefix(projection, partition)}${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

/**
 * The current consumer of each partition of a projection (the newest tenure's), by partition: for
 * status, lag and tools. A partition nobody has taken up yet has none.
 */
export async function partitionConsumers(
  jsm: JetStreamManager,
  stream: string,
  projection: string,
): Promise<Map<number, ConsumerInfo>> {
  const found = new Map<number, ConsumerInfo>();
  const pattern = new RegExp(`^${projection.replace(/[^A-Za-z0-9]/g, "\\$&")}_p(\\d+)_[0-9a-z]+$`);
  for await (const info of jsm.consumers.list(stream)) {
    const match = pattern.exec(info.name);
    if (!match) continue;
    const partition = Number(match[1]);
    const other = found.get(partition);
    if (other === undefined || info.name > other.name) found.set(partition, info);
  }
  return found;
}

/**
 * Projects one partition: pulls its events in stream order from a durable consumer, applies them to
 * the read model in batches, and acknowledges them only after the write.
 */
export class PartitionWorker {
  readonly #o: PartitionWorkerOptions;
  readonly #log: Logger;
  readonly #label: { projection: string };
  #stopped = false;
  #loop: Promise<void> | undefined;
  #pull: BoundedPull | undefined;
  #wake: (() => void) | undefined;
  #generation = 0;
  #generationCheckedAt = 0;
  #checkpoint = 0;
  #ackFloorValue = 0;
  #ackFloorAt = 0;
  #consumer = "";
  readonly #applier: BatchApplier;

  constructor(options: PartitionWorkerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ partition: options.partition });
    this.#label = { projection: options.projection.name };
    this.#applier = new BatchApplier({ ...options, logger: this.#log });
  }

  /** The consumer of the current tenure (empty before the first opening). */
  get consumer(): string {
    return this.#consumer;
  }

  /** Starts consuming; returns at once. */
  start(): void {
    this.#loop = this.#run().catch((e: unknown) => {
      this.#log.error({ err: e }, "partition worker failed");
    });
  }

  /** Finishes the batch in hand, hands the rest back to the server, and stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    this.#closePull();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#open();
        if (this.#stopped) return;
        await this.#consume();
      } catch (e) {
        if (this.#stopped) return;
        this.#log.warn({ err: e }, "partition worker error; restarting its consumer");
        this.#closePull();
        await sleep(1_000);
      }
    }
  }

  /** Which generation to write, and a consumer positioned just after that generation's checkpoint. */
  async #open(): Promise<void> {
    const { projection, partition, jsm, names } = this.#o;
    // Only the holder of a valid lease may reposition the partition's consumer.
    while (!this.#o.holds()) {
      if (this.#stopped) return;
      await sleep(100);
    }
    this.#generation = await this.#call(() => projection.activeGeneration());
    this.#generationCheckedAt = Date.now();
    this.#checkpoint = await this.#call(() => projection.checkpoint(this.#generation, partition));
    this.#ackFloorValue = this.#checkpoint;
    this.#ackFloorAt = 0;
    // Every opening is a new tenure with a fresh consumer of its own, starting right after the
    // model's checkpoint. The model, not the consumer, says what is applied; and acknowledgements
    // are cumulative (AckPolicy.All), which is only safe while this worker is its consumer's one
    // and only client. An earlier consumer of the partition may hold deliveries of an earlier owner
    // (killed, or alive after its lease lapsed and still pulling) or of this worker's previous
    // subscription: acknowledging a later event on it would acknowledge those unapplied ones too.
    // So earlier consumers are deleted, and no earlier client can pull from this one, which has a
    // name they never knew. The events between the checkpoint and the old ack floor are delivered
    // again and skipped by the version guard.
    const prefix = consumerPrefix(projection.name, partition);
    const earlier: string[] = [];
    for await (const existing of jsm.consumers.list(names.stream)) {
      // (An older release's consumer had the partition's name alone.)
      if (existing.name.startsWith(prefix) || existing.name === prefix.slice(0, -1)) {
        earlier.push(existing.name);
      }
    }
    for (const old of earlier) {
      // Only "not found" is fine (someone else deleted it first).
      await jsm.consumers.delete(names.stream, old).catch((e: unknown) => {
        if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound))
          throw e;
      });
    }
    const name = tenureConsumerName(projection.name, partition);
    this.#consumer = name;
    await jsm.consumers.add(names.stream, {
      durable_name: name,
      description: `${projection.name} projector, partition ${partition}`,
      filter_subject: partitionSubjects(names, partition),
      // One ack per batch: acknowledging a message acknowledges every one delivered before it, and
      // this worker applies its deliveries strictly in the order they came.
      ack_policy: AckPolicy.All,
      ack_wait: nanos(ACK_WAIT_MS),
      max_deliver: -1,
      // The batch in hand and the one buffered ahead, with room to spare.
      max_ack_pending: Math.max(20_000, 3 * this.#o.batchSize),
      ...(this.#checkpoint > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.#checkpoint + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    this.#log.info(
      { generation: this.#generation, from: this.#checkpoint + 1 },
      "consumer positioned",
    );
    // Bounded buffering, by messages and by bytes: what is requested from the server and not
    // delivered yet, plus what is delivered and not taken into a batch, stays within two batches
    // and `pullMaxBytes`; the batch in hand is taken from that. What the server sends waits in
    // this process's socket, in front of every other reply on the connection: 16 partitions
    // pulling freely from a backlog overflowed the server's 64 MB per-client buffer, and the server
    // cut the connection (slow consumer); a backlog of large events did it with 218 MB. Pulls of a
    // whole batch matter as much: with pulls of 1,000, the queue held about 1,800 events when a
    // worker came for it, and a write of fewer events per story costs more per event.
    const { batchSize, pullMaxBytes, minPullBytes } = this.#o;
    this.#pull = createBoundedPull({
      nc: this.#o.nc,
      stream: names.stream,
      consumer: name,
      ...(this.#o.js.apiPrefix ? { apiPrefix: this.#o.js.apiPrefix } : {}),
      maxMessages: 2 * batchSize,
      maxBytes: pullMaxBytes,
      pullMessages: batchSize,
      minPullBytes,
      onDelivery: (d) => {
        this.#o.held?.add(d.size);
        this.#wake?.();
      },
      onEnd: () => this.#wake?.(),
    });
  }

  /** Stops pulling and hands back what is queued (a new consumer delivers it again). */
  #closePull(): void {
    const pull = this.#pull;
    this.#pull = undefined;
    if (!pull) return;
    let bytes = 0;
    for (const d of pull.close()) {
      bytes += d.size;
      d.nak();
    }
    this.#o.held?.add(-bytes);
  }

  async #consume(): Promise<void> {
    const { projection, generationCheckMs = 2_000 } = this.#o;
    while (!this.#stopped) {
      if ((this.#pull?.queuedMessages ?? 0) === 0 && !this.#pull?.ended) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          setTimeout(resolve, 500);
        });
        this.#wake = undefined;
      }
      if (this.#stopped) return;
      if (Date.now() - this.#generationCheckedAt > generationCheckMs) {
        const active = await this.#call(() => projection.activeGeneration());
        this.#generationCheckedAt = Date.now();
        if (active !== this.#generation) {
          this.#log.info({ from: this.#generation, to: active }, "active generation changed");
          this.#closePull();
          return; // #run reopens on the new generation
        }
      }
      const pull = this.#pull;
      if (pull === undefined) return;
      // The consumer is gone (a rebuild, another owner) or refuses pulls: #run opens a new one.
      if (pull.ended) throw pull.ended;
      if (pull.queuedMessages === 0) {
        await this.#advanceIdleCheckpoint();
        continue;
      }
      if (!this.#o.holds()) {
        // The lease lapsed (a long pause, a slow heartbeat): write nothing until it is renewed, or
        // released (which stops this worker). A renewal is a compare-and-set on the lease's
        // revision, so no other replica owned the partition in between, and this consumer is
        // still ours alone; a replica that did take it over made a consumer of its own.
        await sleep(100);
        continue;
      }
      await this.#project(pull.take(this.#o.batchSize, this.#o.pullMaxBytes));
    }
  }

  #call<T>(fn: () => Promise<T>): Promise<T> {
    return this.#applier.call(fn);
  }

  /** When idle, moves the stored checkpoint up to the ack floor, so a restart replays nothing. */
  async #advanceIdleCheckpoint(): Promise<void> {
    if (!this.#o.holds()) return;
    const floor = await this.#ackFloor();
    if (floor <= this.#checkpoint) return;
    const { projection, partition } = this.#o;
    await this.#call(() =>
      projection.apply({ generation: this.#generation, partition, checkpoint: floor, stories: [] }),
    );
    this.#checkpoint = floor;
  }

  /** The consumer's ack floor, asked of the server at most every half second. */
  async #ackFloor(): Promise<number> {
    if (Date.now() - this.#ackFloorAt > 500) {
      this.#ackFloorAt = Date.now();
      const { jsm, names } = this.#o;
      const info = await jsm.consumers.info(names.stream, this.#consumer).catch(() => undefined);
      if (info) this.#ackFloorValue = info.ack_floor.stream_seq;
    }
    return this.#ackFloorValue;
  }

  /**
   * Runs the write of a batch inside a CONSUMER span (OpenTelemetry's messaging conventions),
   * linked to the append of each of its events (the trace context the command service stored in
   * their headers), and continuing the command's trace when the batch is one trace's events.
   */
  #traced(batch: readonly Delivery[], apply: () => Promise<void>): Promise<void> {
    const { names, projection, partition } = this.#o;
    const sources = [];
    for (const d of batch) {
      const spanContext = spanContextOf((name) => d.header(name));
      if (spanContext) sources.push({ spanContext, attributes: { "ctx.sequence": d.seq } });
    }
    const { parent, links } = consumerParentage(sources);
    return inSpan(
      `process ${names.stream}`,
      {
        kind: SpanKind.CONSUMER,
        links,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "process",
          "messaging.destination.name": names.stream,
          "messaging.consumer.group.name": this.#consumer,
          "messaging.batch.message_count": batch.length,
          "ctx.projection": projection.name,
          "ctx.partition": partition,
        },
      },
      apply,
      parent,
    );
  }

  async #project(batch: Delivery[]): Promise<void> {
    const started = performance.now();
    const { names, metrics, partition } = this.#o;
    const bytes = batch.reduce((n, d) => n + d.size, 0);
    // Keep the messages ours while a long outage, or other partitions' writes, make us wait.
    const keepAlive = setInterval(() => {
      for (const m of batch) m.working();
    }, ACK_WAIT_MS / 3);
    try {
      const byStory = new Map<StoryId, RecordedEvent[]>();
      const poisoned = new Map<StoryId, number>();
      for (const msg of batch) {
        const subject = parseStoredSubject(names, msg.subject);
        try {
          // Decoded and upcast by the store's upcaster: the model only sees current shapes.
          for (const event of this.#o.store.upcaster.decode(msg.data, msg.seq, msg.subject)) {
            const list = byStory.get(event.storyId) ?? [];
            list.push(event);
            byStory.set(event.storyId, list);
          }
        } catch (e) {
          await this.#applier.parkRaw(
            subject.storyId,
            msg.seq,
            subject.eventType,
            msg.data,
            e,
            storedVersion(msg.data, msg.seq, msg.subject),
          );
          notePoisoned(poisoned, subject.storyId as StoryId, msg.seq);
        }
      }
      // The checkpoint must never pass an event that is not applied. Deliveries can come out of
      // order (redeliveries, a dead replica's pull that got messages), so the highest sequence of
      // the batch is no bound; the consumer's ack floor is: every event at or below it was
      // acknowledged, hence applied. It lags a little, which only means a little replay.
      const checkpoint = Math.max(this.#checkpoint, await this.#ackFloor());
      const apply = () =>
        this.#applier.applyBatch(
          this.#generation,
          partition,
          { byStory, poisoned },
          this.#checkpoint,
          checkpoint,
        );
      const write = tracing.enabled ? () => this.#traced(batch, apply) : apply;
      await (this.#o.writeSlots ? this.#o.writeSlots.execute(write) : write());
      this.#checkpoint = checkpoint;
      // The batch is the oldest deliveries of the queue, all applied now, as is every batch before
      // it: acknowledging its last delivery acknowledges them all (AckPolicy.All).
      batch[batch.length - 1]?.ack();
      metrics.batchSize.observe(this.#label, batch.length);
      metrics.batchSeconds.observe(this.#label, (performance.now() - started) / 1000);
    } finally {
      clearInterval(keepAlive);
      // Acknowledged, or left to be delivered again on a new consumer: no longer held here.
      this.#o.held?.add(-bytes);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The version of a stored message that decodes but cannot be upcast; 0 when it does not decode. */
function storedVersion(bytes: Uint8Array, sequence: number, subject: string): number {
  try {
    return decodeStoredEvent(bytes, sequence, subject).version;
  } catch {
    return 0;
  }
}
