import { type StoryId, type StreamVersion, streamVersion, storyId as toStoryId } from "@ctx/domain";
import {
  type DecisionStatus,
  DecisionStatusSchema,
  type SubtaskStatus,
  SubtaskStatusSchema,
} from "@ctx/proto";
import neo4j, { type Driver, type ManagedTransaction } from "neo4j-driver";
import {
  checkNamespace,
  defaultGeneration,
  defaultNamespace,
  type GenerationKeys,
  generationKeys,
} from "./graph-keys.ts";
import { enumValue, toNumber, toText } from "./graph-values.ts";
import type { Neo4jReadModelOptions } from "./neo4j-projection.ts";
import { neo4jSessions } from "./neo4j-sessions.ts";
import { unavailableAsStoreError } from "./neo4j-unavailable.ts";

/** A subtask reached from a decision or another subtask, and how far away it is. */
export interface RelatedSubtask {
  readonly subtaskId: string;
  readonly title: string;
  readonly status: SubtaskStatus;
  /** Relationships on the shortest path from where the question started (1: directly linked). */
  readonly depth: number;
}

/** The relationship types between the decisions and subtasks of a story. */
export const GraphEdgeType = {
  Affects: "AFFECTS",
  DependsOn: "DEPENDS_ON",
  Supersedes: "SUPERSEDES",
} as const;
export type GraphEdgeType = (typeof GraphEdgeType)[keyof typeof GraphEdgeType];

/** One relationship: decision AFFECTS subtask, subtask DEPENDS_ON subtask, new SUPERSEDES old. */
export interface StoryGraphEdge {
  readonly type: GraphEdgeType;
  readonly from: string;
  readonly to: string;
}

/** A story's nodes and relationships as the graph holds them, in creation order. */
export interface StoryGraph {
  readonly storyId: StoryId;
  readonly version: StreamVersion;
  /** The story skipped a parked event: answers about it may be incomplete until it is rebuilt. */
  readonly stale: boolean;
  readonly decisions: readonly {
    readonly decisionId: string;
    readonly title: string;
    readonly status: DecisionStatus;
  }[];
  readonly subtasks: readonly {
    readonly subtaskId: string;
    readonly title: string;
    readonly status: SubtaskStatus;
    readonly assignee: string;
  }[];
  readonly edges: readonly StoryGraphEdge[];
}

/** A graph question's answer, with what the graph holds of the story it was asked about. */
export interface GraphAnswer {
  /** The story's version in the graph; 0 when the graph does not have the story. */
  readonly version: StreamVersion;
  /**
   * The story skipped a parked event: the answer may be wrong until it is rebuilt (the query
   * service then answers from the event stream).
   */
  readonly stale: boolean;
  /**
   * What was reached, `[]` when nothing is; `undefined` when the decision or subtask the question
   * starts from is not in the graph.
   */
  readonly subtasks: readonly RelatedSubtask[] | undefined;
}

/** How a graph read may be cut short: a cancelled call, a deadline. */
export interface GraphReadOptions {
  /**
   * Aborting it closes the session, which makes Neo4j end the transaction (a RESET), and rejects
   * the read with the signal's reason at once, whatever the server or the network still do.
   */
  readonly signal?: AbortSignal;
  /** The transaction's timeout at the server (the time the call has left), in milliseconds. */
  readonly timeoutMs?: number;
  /** Transaction metadata, shown by `SHOW TRANSACTIONS` (e.g. the call's correlation id). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * The questions a graph answers better than a folded story: what a change reaches, what blocks
 * what. Always about the active generation, and each with the story's version and stale flag read
 * in the same transaction.
 *
 * Errors: StoreUnavailableError (from `@ctx/projector`) when Neo4j cannot serve; the signal's
 * reason when it is aborted; a DOMException named TimeoutError when the transaction outlived
 * `timeoutMs` at the server.
 */
export interface GraphReader {
  /**
   * The subtasks a decision affects, and transitively every subtask that depends on one of them
   * (what it depends on may change): depth 1 for the affected ones, +1 per DEPENDS_ON hop.
   * Ordered by depth, then creation.
   */
  subtasksAffectedBy(
    storyId: StoryId,
    decisionId: string,
    options?: GraphReadOptions,
  ): Promise<GraphAnswer>;
  /**
   * The subtasks a subtask depends on, directly or transitively, that are not DONE: what stands
   * between it and DONE. Depth 1 for direct dependencies. Ordered by depth, then creation.
   */
  blockersOf(storyId: StoryId, subtaskId: string, options?: GraphReadOptions): Promise<GraphAnswer>;
  /** The whole graph of one story (for views and tools). */
  storyGraph(storyId: StoryId, options?: GraphReadOptions): Promise<StoryGraph | undefined>;
}

// ANY SHORTEST finds, for every subtask reached, one shortest path: the breadth-first search of
// Neo4j 5.21+, which neither enumerates all paths of a diamond nor revisits a node.
// The story's version and stale flag come with every answer (null when the graph does not have the
// story); `reached` is null when the node the question starts from is not there.
const affectedBy = `
OPTIONAL MATCH (story:Story {key: $story})
OPTIONAL MATCH (d:Decision {key: $key})
RETURN story.version AS version, story.stale AS stale,
  CASE WHEN d IS NULL THEN null ELSE COLLECT {
    MATCH p = ANY SHORTEST (d)-[:AFFECTS]->(:Subtask)<-[:DEPENDS_ON]-*(t:Subtask)
    WITH t, length(p) AS depth ORDER BY depth, t.position
    RETURN {id: t.id, title: t.title, status: t.status, depth: depth}
  } END AS reached`;

const blockers = `
OPTIONAL MATCH (story:Story {key: $story})
OPTIONAL MATCH (s:Subtask {key: $key})
RETURN story.version AS version, story.stale AS stale,
  CASE WHEN s IS NULL THEN null ELSE COLLECT {
    MATCH p = ANY SHORTEST (s)-[:DEPENDS_ON]->+(t:Subtask WHERE t.status <> 'DONE')
    WITH t, length(p) AS depth WHERE t <> s
    ORDER BY depth, t.position
    RETURN {id: t.id, title: t.title, status: t.status, depth: depth}
  } END AS reached`;

const graph = `
MATCH (s:Story {key: $key})
RETURN s.version AS version, s.stale AS stale,
       COLLECT {
         MATCH (s)-[:HAS_DECISION]->(d:Decision)
         WITH d ORDER BY d.position
         RETURN d {.id, .title, .status}
       } AS decisions,
       COLLECT {
         MATCH (s)-[:HAS_SUBTASK]->(t:Subtask)
         WITH t ORDER BY t.position
         RETURN t {.id, .title, .status, .assignee}
       } AS subtasks,
       COLLECT {
         MATCH (s)-[:HAS_DECISION|HAS_SUBTASK]->(a)-[r:AFFECTS|DEPENDS_ON|SUPERSEDES]->(b)
         WITH a, r, b ORDER BY type(r), a.position, b.position
         RETURN {type: type(r), from: a.id, to: b.id}
       } AS edges`;

/**
 * Graph queries for the query service, on the model `createNeo4jProjection` writes (same database
 * and namespace). The caller owns `driver`.
 */
export function createNeo4jGraphReader(
  driver: Driver,
  options: Neo4jReadModelOptions = {},
): GraphReader {
  const namespace = checkNamespace(options.namespace ?? defaultNamespace);
  const { config } = neo4jSessions(driver, options.database);

  /**
   * One read transaction in a session of its own, which an aborted signal closes: the driver then
   * resets the connection, and Neo4j ends the transaction and the query in it.
   */
  const read = async <T>(
    work: (tx: ManagedTransaction) => Promise<T>,
    o: GraphReadOptions = {},
  ): Promise<T> => {
    const { signal } = o;
    signal?.throwIfAborted();
    return unavailableAsStoreError(async () => {
      const session = driver.session({ ...config, defaultAccessMode: neo4j.session.READ });
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => {
          session.close().catch(() => undefined);
          reject(signal?.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
      });
      const running = session.executeRead(work, {
        ...(o.timeoutMs !== undefined ? { timeout: Math.max(1, Math.ceil(o.timeoutMs)) } : {}),
        ...(o.metadata ? { metadata: { ...o.metadata } } : {}),
      });
      // Whichever loses the race settles unobserved.
      running.catch(() => undefined);
      aborted.catch(() => undefined);
      try {
        return await (signal ? Promise.race([running, aborted]) : running);
      } catch (e) {
        signal?.throwIfAborted();
        if (isTransactionTimeout(e)) {
          throw new DOMException(
            `the graph query outlived its ${o.timeoutMs} ms at the server`,
            "TimeoutError",
          );
        }
        throw e;
      } finally {
        if (onAbort) signal?.removeEventListener("abort", onAbort);
        await session.close();
      }
    });
  };

  // The active generation is read in the same transaction as the answer, so a switch is seen at once.
  const activeKeys = async (tx: ManagedTransaction): Promise<GenerationKeys> => {
    const result = await tx.run(
      "MATCH (m:ReadModelState {key: $namespace}) RETURN m.active_generation AS generation",
      { namespace },
    );
    const value = result.records[0]?.get("generation");
    const generation = value === undefined || value === null ? defaultGeneration : toNumber(value);
    return generationKeys(namespace, generation);
  };

  const related = async (
    query: string,
    storyId: StoryId,
    entityId: string,
    o: GraphReadOptions | undefined,
  ): Promise<GraphAnswer> => {
    const record = await read(async (tx) => {
      const k = await activeKeys(tx);
      const parameters = { story: k.story(storyId), key: k.entity(storyId, entityId) };
      return (await tx.run(query, parameters)).records[0];
    }, o);
    const version = record?.get("version");
    const reached = record?.get("reached") as ReadonlyArray<Record<string, unknown>> | null;
    return {
      version: streamVersion(version === null || version === undefined ? 0 : toNumber(version)),
      stale: record?.get("stale") === true,
      subtasks: reached?.map(
        (r): RelatedSubtask => ({
          subtaskId: toText(r.id),
          title: toText(r.title),
          status: enumValue(SubtaskStatusSchema, r.status),
          depth: toNumber(r.depth),
        }),
      ),
    };
  };

  return {
    subtasksAffectedBy: (storyId, decisionId, o) => related(affectedBy, storyId, decisionId, o),

    blockersOf: (storyId, subtaskId, o) => related(blockers, storyId, subtaskId, o),

    async storyGraph(storyId, o) {
      const record = await read(async (tx) => {
        const key = (await activeKeys(tx)).story(storyId);
        return (await tx.run(graph, { key })).records[0];
      }, o);
      if (record === undefined) return undefined;
      const version = streamVersion(toNumber(record.get("version")));
      if (version === 0) return undefined;
      const decisions = record.get("decisions") as ReadonlyArray<Record<string, unknown>>;
      const subtasks = record.get("subtasks") as ReadonlyArray<Record<string, unknown>>;
      const edges = record.get("edges") as ReadonlyArray<Record<string, unknown>>;
      return {
        storyId: toStoryId(storyId),
        version,
        stale: record.get("stale") === true,
        decisions: decisions.map((d) => ({
          decisionId: toText(d.id),
          title: toText(d.title),
          status: enumValue(DecisionStatusSchema, d.status),
        })),
        subtasks: subtasks.map((t) => ({
          subtaskId: toText(t.id),
          title: toText(t.title),
          status: enumValue(SubtaskStatusSchema, t.status),
          assignee: toText(t.assignee),
        })),
        edges: edges.map((e) => ({
          type: toText(e.type) as GraphEdgeType,
          from: toText(e.from),
          to: toText(e.to),
        })),
      };
    },
  };
}

/** Neo4j ended a transaction that outlived the timeout its client gave it. */
function isTransactionTimeout(e: unknown): boolean {
  return (
    e instanceof neo4j.Neo4jError &&
    /^Neo\.ClientError\.Transaction\.TransactionTimedOut/.test(e.code)
  );
}
