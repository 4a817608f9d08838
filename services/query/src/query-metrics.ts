import type { PointInTime } from "@ctx/snapshots";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { WatchLimit } from "./errors.ts";

/** Why GetContext answered from the event stream instead of the read model. */
export type FallbackReason = "missing" | "stale" | "unavailable";

/** Why a graph question was answered from the event stream instead of the Neo4j read model. */
export type GraphFallbackReason = "missing" | "stale";

/** What the query service counts beyond the RPC metrics every server has. */
export interface QueryMetrics {
  /** A temporal answer: how many events were folded, from where, and whether a snapshot was used. */
  folded(point: PointInTime): void;
  fallback(reason: FallbackReason): void;
  graphFallback(reason: GraphFallbackReason): void;
}

/**
 * Why a watch ended: the client cancelled or its deadline passed, it fell too far behind, the
 * service stopped, or an error (an unknown story, an unreadable event, a store outage).
 */
export type WatchEnd = "cancelled" | "lagging" | "stopping" | "error";

/** The watches of the process (WatchContext). */
export interface WatchMetrics {
  opened(): void;
  closed(reason: WatchEnd): void;
  refused(limit: WatchLimit): void;
  /** Stories watched: one core NATS subscription each. */
  watchedStories(count: number): void;
}

export function createWatchMetrics(registry: Registry): WatchMetrics {
  const open = new Gauge({
    name: "ctx_query_watches_open",
    help: "WatchContext calls open in this process",
    registers: [registry],
  });
  const stories = new Gauge({
    name: "ctx_query_watched_stories",
    help: "Stories watched in this process (one core NATS subscription each, no JetStream consumer)",
    registers: [registry],
  });
  const ended = new Counter({
    name: "ctx_query_watches_ended_total",
    help: "WatchContext calls ended, by reason (cancelled, lagging, stopping, error)",
    labelNames: ["reason"],
    registers: [registry],
  });
  const refused = new Counter({
    name: "ctx_query_watches_refused_total",
    help: "WatchContext calls refused with RESOURCE_EXHAUSTED, by the limit reached (process, client)",
    labelNames: ["limit"],
    registers: [registry],
  });
  return {
    opened: () => open.inc(),
    closed: (reason) => {
      open.dec();
      ended.inc({ reason });
    },
    refused: (limit) => refused.inc({ limit }),
    watchedStories: (count) => stories.set(count),
  };
}

export function createQueryMetrics(registry: Registry): QueryMetrics {
  const folded = new Histogram({
    name: "ctx_query_temporal_events_folded",
    help: "Events read and folded for one temporal answer, by whether a snapshot was used and where the events came from (stream or segment)",
    labelNames: ["snapshot", "events_from"],
    buckets: [0, 1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000],
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: "ctx_query_read_model_fallbacks_total",
    help: "GetContext answers served from the event stream instead of Valkey, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  const graphFallbacks = new Counter({
    name: "ctx_query_graph_fallbacks_total",
    help: "GetAffectedSubtasks and GetBlockers answers served from the event stream instead of Neo4j, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  return {
    graphFallback: (reason) => graphFallbacks.inc({ reason }),
    folded: (point) =>
      folded.observe(
        { snapshot: point.snapshotVersion > 0 ? "hit" : "miss", events_from: point.eventsFrom },
        point.eventsFolded,
      ),
    fallback: (reason) => fallbacks.inc({ reason }),
  };
}
