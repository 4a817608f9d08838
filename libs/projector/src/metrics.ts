import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The projector's Prometheus metrics, labelled by projection (and partition where it matters). */
export interface ProjectorMetrics {
  readonly applied: Counter<"projection">;
  readonly skipped: Counter<"projection">;
  readonly batchSize: Histogram<"projection">;
  readonly batchSeconds: Histogram<"projection">;
  readonly parked: Counter<"projection">;
  readonly storeErrors: Counter<"projection">;
  readonly lagEvents: Gauge<"projection" | "partition">;
  readonly lagSeconds: Gauge<"projection" | "partition">;
  readonly partitionsOwned: Gauge<"projection">;
  readonly partitionsUnowned: Gauge<"projection">;
  readonly partitionsMissing: Gauge<"projection">;
  readonly heartbeatFailures: Counter<"projection">;
  readonly leasesLost: Counter<"projection">;
  readonly bufferedBytes: Gauge<"projection">;
}

/** What the lease gauges are read from when scraped (the leases of the replica, once started). */
export interface LeaseGaugeSource {
  readonly projection: string;
  unowned(): number | undefined;
  missing(): number | undefined;
}

export function createProjectorMetrics(
  registry: Registry,
  leases?: LeaseGaugeSource,
): ProjectorMetrics {
  const registers = [registry];
  return {
    applied: new Counter({
      name: "ctx_projector_events_applied_total",
      help: "Events written to the read model",
      labelNames: ["projection"],
      registers,
    }),
    skipped: new Counter({
      name: "ctx_projector_events_skipped_total",
      help: "Events acknowledged without a write: already applied (redeliveries) or of a stale story",
      labelNames: ["projection"],
      registers,
    }),
    batchSize: new Histogram({
      name: "ctx_projector_batch_events",
      help: "Events per read-model write",
      labelNames: ["projection"],
      buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000],
      registers,
    }),
    batchSeconds: new Histogram({
      name: "ctx_projector_batch_seconds",
      help: "Time to project one batch, fetch to ack",
      labelNames: ["projection"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    parked: new Counter({
      name: "ctx_projector_events_parked_total",
      help: "Events parked because the projection could not decode, upcast or apply them",
      labelNames: ["projection"],
      registers,
    }),
    storeErrors: new Counter({
      name: "ctx_projector_store_errors_total",
      help: "Failed read-model calls (outages, retried with back-off)",
      labelNames: ["projection"],
      registers,
    }),
    lagEvents: new Gauge({
      name: "ctx_projector_lag_events",
      help: "Events of the partition not yet applied (consumer pending count)",
      labelNames: ["projection", "partition"],
      registers,
    }),
    lagSeconds: new Gauge({
      name: "ctx_projector_lag_seconds",
      help: "Age of the oldest event of the partition not yet applied (0 when caught up)",
      labelNames: ["projection", "partition"],
      registers,
    }),
    partitionsOwned: new Gauge({
      name: "ctx_projector_partitions_owned",
      help: "Partitions this replica holds the lease of",
      labelNames: ["projection"],
      registers,
    }),
    partitionsUnowned: new Gauge({
      name: "ctx_projector_partitions_unowned",
      help: "Partitions of the projection no live replica has held for longer than the failover window (lease TTL + 2 heartbeats), as this replica saw at its last heartbeat",
      labelNames: ["projection"],
      registers,
      collect() {
        const n = leases?.unowned();
        if (leases && n !== undefined) this.set({ projection: leases.projection }, n);
      },
    }),
    partitionsMissing: new Gauge({
      name: "ctx_projector_partitions_missing",
      help: "Partitions this replica should own but has not held for longer than the failover window (it is not ready meanwhile)",
      labelNames: ["projection"],
      registers,
      collect() {
        const n = leases?.missing();
        if (leases && n !== undefined) this.set({ projection: leases.projection }, n);
      },
    }),
    heartbeatFailures: new Counter({
      name: "ctx_projector_lease_heartbeat_failures_total",
      help: "Lease heartbeats that failed (members, lease table or renewals not reached)",
      labelNames: ["projection"],
      registers,
    }),
    leasesLost: new Counter({
      name: "ctx_projector_leases_lost_total",
      help: "Partition leases this replica failed to renew (its partition went to another replica or lapsed)",
      labelNames: ["projection"],
      registers,
    }),
    bufferedBytes: new Gauge({
      name: "ctx_projector_buffered_bytes",
      help: "Bytes of events this replica pulled and has not acknowledged yet (queued and being written), over all its partitions",
      labelNames: ["projection"],
      registers,
    }),
  };
}
