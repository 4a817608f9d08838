import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { storyId } from "@ctx/domain";
import type { EventStore } from "@ctx/event-store";
import {
  ContextQueryService,
  GetAffectedSubtasksResponseSchema,
  GetBlockersResponseSchema,
  type RelatedSubtask,
  RelatedSubtaskSchema,
} from "@ctx/proto";
import type { GraphReader, RelatedSubtask as GraphSubtask } from "@ctx/read-model-neo4j";
import type { TemporalReader } from "@ctx/snapshots";
import type { ContextQueries } from "../context/context-queries.ts";
import { diffContext } from "../diff/diff-context.ts";
import { UnknownEntityError } from "../errors.ts";
import { listEvents } from "../events/list-events.ts";
import { watchContext } from "../watch/watch-context.ts";
import type { WatchHub } from "../watch/watch-hub.ts";
import { requestTime } from "./request-time.ts";

export interface QueryServiceParts {
  readonly contexts: ContextQueries;
  readonly reader: TemporalReader;
  readonly store: EventStore;
  readonly graph: GraphReader;
  readonly watches: WatchHub;
}

/** context.v1.ContextQueryService over its parts. Requests arrive validated (protovalidate). */
export function registerQueryService(router: ConnectRouter, parts: QueryServiceParts): void {
  const { contexts, reader, store, graph } = parts;
  const related = (s: GraphSubtask): RelatedSubtask =>
    create(RelatedSubtaskSchema, {
      subtaskId: s.subtaskId,
      title: s.title,
      status: s.status,
      depth: s.depth,
    });

  router.service(ContextQueryService, {
    getContext: (req, ctx) => contexts.current(storyId(req.storyId), ctx.signal),

    getContextAtTime: (req, ctx) =>
      contexts.atTime(storyId(req.storyId), requestTime(req.timestamp, "timestamp"), ctx.signal),

    getContextAtVersion: (req, ctx) =>
      contexts.atVersion(storyId(req.storyId), req.version, ctx.signal),

    listEvents(req, ctx) {
      if (req.until.case === "untilTime") requestTime(req.until.value, "until_time");
      return listEvents(reader, store, storyId(req.storyId), req, ctx.signal);
    },

    diffContext(req, ctx) {
      for (const [field, point] of [
        ["from", req.from],
        ["to", req.to],
      ] as const) {
        if (point?.point.case === "time") requestTime(point.point.value, `${field}.time`);
      }
      return diffContext(reader, store, storyId(req.storyId), req, ctx.signal);
    },

    async getAffectedSubtasks(req) {
      const story = storyId(req.storyId);
      const reached = await graph.subtasksAffectedBy(story, req.decisionId);
      if (reached === undefined) throw new UnknownEntityError(story, "decision", req.decisionId);
      return create(GetAffectedSubtasksResponseSchema, { subtasks: reached.map(related) });
    },

    async getBlockers(req) {
      const story = storyId(req.storyId);
      const blockers = await graph.blockersOf(story, req.subtaskId);
      if (blockers === undefined) throw new UnknownEntityError(story, "subtask", req.subtaskId);
      return create(GetBlockersResponseSchema, { blockers: blockers.map(related) });
    },

    watchContext: (req, ctx) => watchContext(parts.watches, storyId(req.storyId), ctx),
  });
}
