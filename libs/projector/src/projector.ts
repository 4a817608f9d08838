import type { Logger } from "@ctx/config";
import { createEventStore, type EventStreamNames, partitionSubjects } from "@ctx/event-store";
import { type JetStreamManager, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { bulkhead } from "cockatiel";
import type { Registry } from "prom-client";
import { type BackoffSettings, outageRetry } from "./backoff.ts";
import { isStoreUnavailableError } from "./errors.ts";
import { createProjectorMetrics } from "./metrics.ts";
import { defaultParkingNames, type ParkingNames, provisionParking } from "./parking.ts";
import {
  createPartitionLeases,
  type LeaseHealth,
  type PartitionLeases,
} from "./partition-leases.ts";
import { PartitionWorker } from "./partition-worker.ts";
import type { Projection } from "./projection.ts";

/**
 * The projection's set-up (constraints, indexes, scripts), retried with back-off for as long as
 * the read model is unavailable: a store that is down when a replica starts, or a passing failure
 * (replicas that start together and create the same Neo4j constraints can deadlock), is waited
 * out, not a failed start. Meanwhile the replica holds no partition and is not ready.
 */
async function initProjection(
  projection: Projection,
  logger: Logger,
  backoff: BackoffSettings = {},
): Promise<void> {
  await outageRetry({
    settings: backoff,
    isOutage: isStoreUnavailableError,
    onRetry: (delay, err) =>
      logger.warn({ err, delay }, "read model unavailable at start; retrying its set-up"),
  }).execute(() => projection.init());
}

/** The lease group of a projection of a stream: projectors of different streams never meet. */
export function leaseGroup(stream: string, projection: string): string {
  return `${stream}_${projection}`;
}

export interface ProjectorOptions {
  readonly nc: NatsConnection;
  /**
   * The connection for the lease heartbeat (default `nc`). Give it one of its own: on a shared
   * connection a heartbeat's replies queue behind the events the server is delivering, and a long
   * backlog can hold them past the lease TTL.
   */
  readonly leaseConnection?: NatsConnection;
  readonly names: EventStreamNames;
  /** Partitions of the event stream (EventStreamSettings.partitions). */
  readonly partitions: number;
  readonly projection: Projection;
  /** Stable identity of this replica: the StatefulSet pod name in Kubernetes, HOSTNAME locally. */
  readonly replicaId: string;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Most events per read-model write (default DEFAULT_BATCH_SIZE). */
  readonly batchSize?: number;
  /**
   * Per partition, most bytes of events pulled and not taken into a batch yet (requested from the
   * server, or delivered and queued); also the most bytes per batch (default
   * DEFAULT_PULL_MAX_BYTES). Raised to the server's max_payload and some room if below it.
   */
  readonly pullMaxBytes?: number;
  /** Batches written at once, over all partitions (default: the projection's writeConcurrency). */
  readonly writeConcurrency?: number;
  readonly parking?: ParkingNames;
  /**
   * Create the parked stream and the lease bucket when missing (default true). The projector
   * service passes false: its NATS user may not, `ctx provision` does, and it waits for them.
   */
  readonly provision?: boolean;
  readonly heartbeatMs?: number;
  readonly leaseTtlMs?: number;
  readonly backoff?: BackoffSettings;
}

export interface PartitionStatus {
  readonly partition: number;
  /** Events of the partition not applied yet. */
  readonly pending: number;
  /** Stream sequence of the last acknowledged event. */
  readonly ackFloor: number;
}

export interface Projector {
  start(): Promise<void>;
  /** Hands every partition back (finishing the batch in hand) and stops. */
  stop(): Promise<void>;
  /** Partitions this replica holds now. */
  owned(): readonly number[];
  /**
   * Started, its lease heartbeat going through, and holding every partition it should own (none
   * has been without this replica's lease for longer than the failover window).
   */
  ready(): boolean;
  /** Its leases and its group's as it sees them (undefined before it started). */
  leaseHealth(): LeaseHealth | undefined;
  status(): Promise<readonly PartitionStatus[]>;
}

/**
 * A projector replica: takes its share of the stream's partitions (leases in NATS KV), runs one
 * worker per partition it holds, and reports lag. Run several replicas with distinct ids: partitions
 * spread over them, move away from a dead one within about a lease TTL, and rebalance when one joins.
 */
/**
 * Most events per read-model write, by default. A batch takes what has arrived, up to this: large
 * batches only form from a backlog (a start, a rebuild's catch-up, an outage), where a story's
 * events of one batch cost a model little more than one of them.
 */
export const DEFAULT_BATCH_SIZE = 4_000;

/**
 * Bytes of events a partition may have pulled and not taken into a batch, by default. Over 16
 * partitions that is at most 32 MiB requested from the server at once, half of what nats-server
 * queues for one client before it cuts it as a slow consumer (64 MB by default); a replica holds at
 * most twice that in memory (the batches in hand too). Small events (about 500 bytes with their
 * subject and headers) reach the batch size first: 4,000 of them are about 2 MB.
 */
export const DEFAULT_PULL_MAX_BYTES = 2 * 1024 * 1024;

/** Room beyond the server's max_payload for a message's subject and ack reply. */
const DELIVERY_OVERHEAD_BYTES = 4 * 1024;

export function createProjector(options: ProjectorOptions): Projector {
  const label = { projection: options.projection.name };
  let leases: PartitionLeases | undefined;
  const metrics = createProjectorMetrics(options.registry, {
    projection: options.projection.name,
    unowned: () => leases?.health().unowned.length,
    missing: () => leases?.health().missing.length,
  });
  const logger = options.logger.child({
    projection: options.projection.name,
    replica: options.replicaId,
  });
  const js = jetstream(options.nc);
  const store = createEventStore(options.nc, {
    names: options.names,
    registry: options.registry,
    logger,
  });
  const workers = new Map<number, PartitionWorker>();
  // Batches written at once, over all partitions; partitions beyond it wait their turn (their next
  // batch grows meanwhile).
  const concurrency = options.writeConcurrency ?? options.projection.writeConcurrency;
  const writeSlots =
    concurrency === undefined ? undefined : bulkhead(concurrency, Number.MAX_SAFE_INTEGER);
  let jsm: JetStreamManager | undefined;
  let held = 0;
  const heldBytes = {
    add(bytes: number) {
      held += bytes;
      metrics.bufferedBytes.set(label, held);
    },
  };
  let lagTimer: NodeJS.Timeout | undefined;
  let started = false;

  async function pollLag(): Promise<void> {
    const manager = jsm as JetStreamManager;
    for (const [partition, worker] of workers) {
      if (worker.consumer === "") continue;
      const info = await manager.consumers
        .info(options.names.stream, worker.consumer)
        .catch(() => undefined);
      // Given back meanwhile: its series is gone, and must not come back frozen.
      if (!info || workers.get(partition) !== worker) continue;
      const labels = { ...label, partition: String(partition) };
      const pending = info.num_pending + info.num_ack_pending;
      metrics.lagEvents.set(labels, pending);
      let age = 0;
      if (pending > 0) {
        const oldest = await manager.direct
          .getMessage(options.names.stream, {
            seq: info.ack_floor.stream_seq + 1,
            next_by_subj: partitionSubjects(options.names, partition),
          })
          .catch(() => null);
        if (oldest) age = Math.max(0, (Date.now() - oldest.time.getTime()) / 1000);
      }
      if (workers.get(partition) !== worker) continue;
      metrics.lagSeconds.set(labels, age);
    }
    metrics.partitionsOwned.set(label, workers.size);
  }

  return {
    async start() {
      jsm = await js.jetstreamManager();
      const parking = options.parking ?? defaultParkingNames;
      if (options.provision !== false) await provisionParking(jsm, parking);
      await initProjection(options.projection, logger, options.backoff);
      const manager = jsm;
      // A pull must ask for at least the largest message the server takes, or such a message
      // would end every request unserved.
      const minPullBytes = (options.nc.info?.max_payload ?? 1024 * 1024) + DELIVERY_OVERHEAD_BYTES;
      const requested = options.pullMaxBytes ?? DEFAULT_PULL_MAX_BYTES;
      const pullMaxBytes = Math.max(requested, minPullBytes);
      if (pullMaxBytes > requested) {
        logger.warn(
          { requested, pullMaxBytes },
          "pull bytes raised to the server's max_payload and some room",
        );
      }
      leases = createPartitionLeases(options.leaseConnection ?? options.nc, {
        group: leaseGroup(options.names.stream, options.projection.name),
        replicaId: options.replicaId,
        partitions: options.partitions,
        logger,
        ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
        ...(options.leaseTtlMs !== undefined ? { ttlMs: options.leaseTtlMs } : {}),
        create: options.provision !== false,
        onAcquired: (partition) => {
          const worker = new PartitionWorker({
            partition,
            projection: options.projection,
            nc: options.nc,
            js,
            jsm: manager,
            names: options.names,
            store,
            parking,
            logger,
            metrics,
            batchSize: options.batchSize ?? DEFAULT_BATCH_SIZE,
            pullMaxBytes,
            minPullBytes,
            held: heldBytes,
            ...(writeSlots ? { writeSlots } : {}),
            holds: () => leases?.holds(partition) ?? false,
            ...(options.backoff ? { backoff: options.backoff } : {}),
          });
          workers.set(partition, worker);
          metrics.partitionsOwned.set(label, workers.size);
          worker.start();
        },
        onReleased: async (partition) => {
          const worker = workers.get(partition);
          workers.delete(partition);
          metrics.partitionsOwned.set(label, workers.size);
          // Its lag is its new owner's to report now: a value left here would stay frozen.
          const labels = { ...label, partition: String(partition) };
          metrics.lagEvents.remove(labels);
          metrics.lagSeconds.remove(labels);
          await worker?.stop();
        },
        observer: {
          heartbeatFailed: () => metrics.heartbeatFailures.inc(label),
          leaseLost: () => metrics.leasesLost.inc(label),
        },
      });
      await leases.start();
      started = true;
      lagTimer = setInterval(() => {
        pollLag().catch((e: unknown) => logger.debug({ err: e }, "lag poll failed"));
      }, 5_000);
      logger.info({ partitions: options.partitions }, "projector started");
    },
    async stop() {
      started = false;
      if (lagTimer) clearInterval(lagTimer);
      await leases?.stop();
      await Promise.all([...workers.values()].map((w) => w.stop()));
      workers.clear();
      logger.info("projector stopped");
    },
    owned() {
      return [...workers.keys()].sort((a, b) => a - b);
    },
    ready() {
      return started && (leases?.health().healthy ?? false);
    },
    leaseHealth() {
      return leases?.health();
    },
    async status() {
      const manager = jsm as JetStreamManager;
      const out: PartitionStatus[] = [];
      for (const [partition, worker] of [...workers].sort(([a], [b]) => a - b)) {
        const info =
          worker.consumer === ""
            ? undefined
            : await manager.consumers
                .info(options.names.stream, worker.consumer)
                .catch(() => undefined);
        out.push({
          partition,
          pending: info ? info.num_pending + info.num_ack_pending : 0,
          ackFloor: info?.ack_floor.stream_seq ?? 0,
        });
      }
      return out;
    },
  };
}
