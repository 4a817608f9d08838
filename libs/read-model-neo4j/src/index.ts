// The graph read model: a Projection for the projector runtime, and the queries readers ask of it.

export type { Neo4jConnection, Neo4jConnectionConfig } from "./neo4j-driver.ts";
export { createNeo4jDriver, neo4jConnection } from "./neo4j-driver.ts";
export type {
  GraphAnswer,
  GraphReader,
  GraphReadOptions,
  RelatedSubtask,
  StoryGraph,
  StoryGraphEdge,
} from "./neo4j-graph-reader.ts";
export { createNeo4jGraphReader, GraphEdgeType } from "./neo4j-graph-reader.ts";
export type { Neo4jReadModelOptions } from "./neo4j-projection.ts";
export { createNeo4jProjection } from "./neo4j-projection.ts";
