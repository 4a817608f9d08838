import type { PointInTime } from "@ctx/snapshots";
import { Counter, Histogram, type Registry } from "prom-client";

/** Why GetContext answered from the event stream instead of the read model. */
export type FallbackReason = "missing" | "stale" | "unavailable";

/** What the query service counts beyond the RPC metrics every server has. */
export interface QueryMetrics {
  /** A temporal answer: how many events were folded, from where, and whether a snapshot was used. */
  folded(point: PointInTime): void;
  fallback(reason: FallbackReason): void;
}

export function createQueryMetrics(registry: Registry): QueryMetrics {
  const folded = new Histogram({
    name: "temporal_events_folded",
    help: "Events read and folded for one temporal answer, by whether a snapshot was used and where the events came from (stream or segment)",
    labelNames: ["snapshot", "events_from"],
    buckets: [0, 1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000],
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: "read_model_fallbacks_total",
    help: "GetContext answers served from the event stream instead of Valkey, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  return {
    folded: (point) =>
      folded.observe(
        { snapshot: point.snapshotVersion > 0 ? "hit" : "miss", events_from: point.eventsFrom },
        point.eventsFolded,
      ),
    fallback: (reason) => fallbacks.inc({ reason }),
  };
}
