import { type StoryId, type StreamVersion, streamVersion, storyId as toStoryId } from "@ctx/domain";
import {
  type DecisionStatus,
  DecisionStatusSchema,
  type SubtaskStatus,
  SubtaskStatusSchema,
} from "@ctx/proto";
import type { Driver, ManagedTransaction } from "neo4j-driver";
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

/**
 * The questions a graph answers better than a folded story: what a change reaches, what blocks
 * what. Always about the active generation. Each answer is `undefined` when the story, decision or
 * subtask it starts from is not in the model (NOT_FOUND at the RPC edge), and `[]` when nothing
 * is reached.
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
  ): Promise<readonly RelatedSubtask[] | undefined>;
  /**
   * The subtasks a subtask depends on, directly or transitively, that are not DONE: what stands
   * between it and DONE. Depth 1 for direct dependencies. Ordered by depth, then creation.
   */
  blockersOf(storyId: StoryId, subtaskId: string): Promise<readonly RelatedSubtask[] | undefined>;
  /** The whole graph of one story (for views and tools). */
  storyGraph(storyId: StoryId): Promise<StoryGraph | undefined>;
}

// ANY SHORTEST finds, for every subtask reached, one shortest path: the breadth-first search of
// Neo4j 5.21+, which neither enumerates all paths of a diamond nor revisits a node.
const affectedBy = `
MATCH (d:Decision {key: $key})
RETURN COLLECT {
  MATCH p = ANY SHORTEST (d)-[:AFFECTS]->(:Subtask)<-[:DEPENDS_ON]-*(t:Subtask)
  WITH t, length(p) AS depth ORDER BY depth, t.position
  RETURN {id: t.id, title: t.title, status: t.status, depth: depth}
} AS reached`;

const blockers = `
MATCH (s:Subtask {key: $key})
RETURN COLLECT {
  MATCH p = ANY SHORTEST (s)-[:DEPENDS_ON]->+(t:Subtask WHERE t.status <> 'DONE')
  WITH t, length(p) AS depth WHERE t <> s
  ORDER BY depth, t.position
  RETURN {id: t.id, title: t.title, status: t.status, depth: depth}
} AS reached`;

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
  const { read } = neo4jSessions(driver, options.database);

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

  const related = async (query: string, key: (k: GenerationKeys) => string) => {
    const reached = await read(async (tx) => {
      const record = (await tx.run(query, { key: key(await activeKeys(tx)) })).records[0];
      return record?.get("reached") as ReadonlyArray<Record<string, unknown>> | undefined;
    });
    return reached?.map(
      (r): RelatedSubtask => ({
        subtaskId: toText(r.id),
        title: toText(r.title),
        status: enumValue(SubtaskStatusSchema, r.status),
        depth: toNumber(r.depth),
      }),
    );
  };

  return {
    subtasksAffectedBy: (storyId, decisionId) =>
      related(affectedBy, (k) => k.entity(storyId, decisionId)),

    blockersOf: (storyId, subtaskId) => related(blockers, (k) => k.entity(storyId, subtaskId)),

    async storyGraph(storyId) {
      const record = await read(async (tx) => {
        const key = (await activeKeys(tx)).story(storyId);
        return (await tx.run(graph, { key })).records[0];
      });
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
