import { create } from "@bufbuild/protobuf";
import type { StoryId } from "@ctx/domain";
import {
  ContextSource,
  type GetAffectedSubtasksResponse,
  GetAffectedSubtasksResponseSchema,
  type GetBlockersResponse,
  GetBlockersResponseSchema,
  type RelatedSubtask,
  RelatedSubtaskSchema,
} from "@ctx/proto";
import type {
  GraphAnswer,
  GraphReader,
  GraphReadOptions,
  RelatedSubtask as GraphSubtask,
} from "@ctx/read-model-neo4j";
import type { TemporalReader } from "@ctx/snapshots";
import { UnknownEntityError, UnknownStoryError } from "../errors.ts";
import type { QueryMetrics } from "../query-metrics.ts";
import { affectedSubtasks, blockingSubtasks } from "./state-graph.ts";

/** What a graph RPC passes on from its call. */
export interface GraphCall {
  /** The call's signal: a cancelled call or a passed deadline stops the Neo4j query and reads. */
  readonly signal: AbortSignal;
  /** The time the call has left (its deadline), in milliseconds. */
  readonly timeoutMs: number | undefined;
  /** Shown with the Neo4j transaction (`SHOW TRANSACTIONS`): the method and correlation id. */
  readonly metadata: Readonly<Record<string, string>>;
}

/** GetAffectedSubtasks and GetBlockers. */
export interface GraphQueries {
  affectedSubtasks(
    storyId: StoryId,
    decisionId: string,
    call: GraphCall,
  ): Promise<GetAffectedSubtasksResponse>;
  blockers(storyId: StoryId, subtaskId: string, call: GraphCall): Promise<GetBlockersResponse>;
}

export interface GraphQueriesOptions {
  readonly graph: GraphReader;
  readonly reader: TemporalReader;
  readonly metrics: QueryMetrics;
}

/** Where a graph answer came from, as the responses say it. */
interface Answer {
  readonly subtasks: readonly GraphSubtask[];
  readonly version: number;
  readonly source: ContextSource;
  readonly readModelStale: boolean;
}

/**
 * The graph questions, answered as GetContext answers: from the read model (Neo4j) when it has the
 * story and does not mark it stale (a projector parked one of its events); otherwise from the
 * story folded from the event stream, with the same rules (state-graph), and the response says so
 * (`source`, `read_model_stale`). A stale graph is never served.
 */
export function createGraphQueries(o: GraphQueriesOptions): GraphQueries {
  const ask = async (
    storyId: StoryId,
    kind: "decision" | "subtask",
    entityId: string,
    call: GraphCall,
  ): Promise<Answer> => {
    const options: GraphReadOptions = {
      signal: call.signal,
      metadata: call.metadata,
      ...(call.timeoutMs !== undefined ? { timeoutMs: call.timeoutMs } : {}),
    };
    const fromGraph: GraphAnswer =
      kind === "decision"
        ? await o.graph.subtasksAffectedBy(storyId, entityId, options)
        : await o.graph.blockersOf(storyId, entityId, options);
    if (fromGraph.version > 0 && !fromGraph.stale) {
      if (fromGraph.subtasks === undefined) throw new UnknownEntityError(storyId, kind, entityId);
      return {
        subtasks: fromGraph.subtasks,
        version: fromGraph.version,
        source: ContextSource.READ_MODEL,
        readModelStale: false,
      };
    }
    o.metrics.graphFallback(fromGraph.stale ? "stale" : "missing");
    const point = await o.reader.current(storyId, { signal: call.signal });
    o.metrics.folded(point);
    if (point.state.version === 0) throw new UnknownStoryError(storyId);
    const subtasks =
      kind === "decision"
        ? affectedSubtasks(point.state, entityId)
        : blockingSubtasks(point.state, entityId);
    if (subtasks === undefined) {
      throw new UnknownEntityError(storyId, kind, entityId, "event stream");
    }
    return {
      subtasks,
      version: point.state.version,
      source: ContextSource.EVENT_STREAM,
      readModelStale: fromGraph.stale,
    };
  };

  return {
    async affectedSubtasks(storyId, decisionId, call) {
      const { subtasks, ...answer } = await ask(storyId, "decision", decisionId, call);
      return create(GetAffectedSubtasksResponseSchema, {
        ...answer,
        subtasks: subtasks.map(related),
      });
    },
    async blockers(storyId, subtaskId, call) {
      const { subtasks, ...answer } = await ask(storyId, "subtask", subtaskId, call);
      return create(GetBlockersResponseSchema, { ...answer, blockers: subtasks.map(related) });
    },
  };
}

const related = (s: GraphSubtask): RelatedSubtask =>
  create(RelatedSubtaskSchema, {
    subtaskId: s.subtaskId,
    title: s.title,
    status: s.status,
    depth: s.depth,
  });
