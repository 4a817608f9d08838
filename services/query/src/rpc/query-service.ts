import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { untilAborted } from "@ctx/config";
import { storyId } from "@ctx/domain";
import type { EventStore } from "@ctx/event-store";
import { ContextQueryService } from "@ctx/proto";
import { correlationOf } from "@ctx/rpc";
import type { TemporalReader } from "@ctx/snapshots";
import type { ContextQueries } from "../context/context-queries.ts";
import { diffContext } from "../diff/diff-context.ts";
import { listEvents } from "../events/list-events.ts";
import { listStoredEvents } from "../events/list-stored-events.ts";
import type { GraphCall, GraphQueries } from "../graph/graph-queries.ts";
import { watchContext } from "../watch/watch-context.ts";
import type { WatchHub } from "../watch/watch-hub.ts";
import { requestTime } from "./request-time.ts";

export interface QueryServiceParts {
  readonly contexts: ContextQueries;
  readonly reader: TemporalReader;
  readonly store: EventStore;
  readonly graph: GraphQueries;
  readonly watches: WatchHub;
}

/** What a graph RPC hands on of its call: signal, time left, and what identifies it in Neo4j. */
function graphCall(ctx: HandlerContext): GraphCall {
  return {
    signal: ctx.signal,
    timeoutMs: ctx.timeoutMs(),
    metadata: {
      service: "query-service",
      method: ctx.method.name,
      correlation_id: correlationOf(ctx).correlationId,
    },
  };
}

/**
 * context.v1.ContextQueryService over its parts. Requests arrive validated (protovalidate).
 *
 * Every unary answer is bound to its call: a cancelled call or a passed deadline is answered at
 * once (CANCELLED / DEADLINE_EXCEEDED, the signal's reason), and the work behind it stops at its
 * next step (reads check the signal between requests; a graph query's session is closed).
 */
export function registerQueryService(router: ConnectRouter, parts: QueryServiceParts): void {
  const { contexts, reader, store, graph } = parts;
  const bound = <T>(ctx: HandlerContext, work: (signal: AbortSignal) => Promise<T>) =>
    untilAborted(work(ctx.signal), ctx.signal);

  router.service(ContextQueryService, {
    getContext: (req, ctx) =>
      bound(ctx, (signal) => contexts.current(storyId(req.storyId), signal)),

    getContextAtTime: (req, ctx) => {
      const time = requestTime(req.timestamp, "timestamp");
      return bound(ctx, (signal) => contexts.atTime(storyId(req.storyId), time, signal));
    },

    getContextAtVersion: (req, ctx) =>
      bound(ctx, (signal) => contexts.atVersion(storyId(req.storyId), req.version, signal)),

    listEvents(req, ctx) {
      if (req.until.case === "untilTime") requestTime(req.until.value, "until_time");
      return bound(ctx, (signal) => listEvents(reader, store, storyId(req.storyId), req, signal));
    },

    listStoredEvents: (req, ctx) =>
      bound(ctx, (signal) => listStoredEvents(store, storyId(req.storyId), req, signal)),

    diffContext(req, ctx) {
      for (const [field, point] of [
        ["from", req.from],
        ["to", req.to],
      ] as const) {
        if (point?.point.case === "time") requestTime(point.point.value, `${field}.time`);
      }
      return bound(ctx, (signal) => diffContext(reader, store, storyId(req.storyId), req, signal));
    },

    getAffectedSubtasks: (req, ctx) =>
      bound(ctx, () =>
        graph.affectedSubtasks(storyId(req.storyId), req.decisionId, graphCall(ctx)),
      ),

    getBlockers: (req, ctx) =>
      bound(ctx, () => graph.blockers(storyId(req.storyId), req.subtaskId, graphCall(ctx))),

    watchContext: (req, ctx) => watchContext(parts.watches, storyId(req.storyId), ctx),
  });
}
