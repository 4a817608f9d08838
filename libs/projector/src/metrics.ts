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
}

export function createProjectorMetrics(registry: Registry): ProjectorMetrics {
  const registers = [registry];
  return {
    applied: new Counter({
      name: "projector_events_applied_total",
      help: "Events written to the read model",
      labelNames: ["projection"],
      registers,
    }),
    skipped: new Counter({
      name: "projector_events_skipped_total",
      help: "Events acknowledged without a write: already applied (redeliveries) or of a stale story",
      labelNames: ["projection"],
      registers,
    }),
    batchSize: new Histogram({
      name: "projector_batch_size",
      help: "Events per read-model write",
      labelNames: ["projection"],
      buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000],
      registers,
    }),
    batchSeconds: new Histogram({
      name: "projector_batch_seconds",
      help: "Time to project one batch, fetch to ack",
      labelNames: ["projection"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    parked: new Counter({
      name: "projector_events_parked_total",
      help: "Events parked because the projection could not decode, upcast or apply them",
      labelNames: ["projection"],
      registers,
    }),
    storeErrors: new Counter({
      name: "projector_store_errors_total",
      help: "Failed read-model calls (outages, retried with back-off)",
      labelNames: ["projection"],
      registers,
    }),
    lagEvents: new Gauge({
      name: "projector_lag_events",
      help: "Events of the partition not yet applied (consumer pending count)",
      labelNames: ["projection", "partition"],
      registers,
    }),
    lagSeconds: new Gauge({
      name: "projector_lag_seconds",
      help: "Age of the oldest event of the partition not yet applied (0 when caught up)",
      labelNames: ["projection", "partition"],
      registers,
    }),
    partitionsOwned: new Gauge({
      name: "projector_partitions_owned",
      help: "Partitions this replica holds the lease of",
      labelNames: ["projection"],
      registers,
    }),
  };
}
