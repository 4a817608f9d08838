import { create } from "@bufbuild/protobuf";
import {
  type ContextState,
  type StoryId,
  type StreamVersion,
  streamVersion,
  storyId as toStoryId,
} from "@ctx/domain";
import {
  type Projection,
  type ProjectionBatch,
  type StoryPosition,
  VersionConflictError,
} from "@ctx/projector";
import {
  ContextSchema,
  ContextStatusSchema,
  DecisionStatusSchema,
  SubtaskStatusSchema,
} from "@ctx/proto";
import neo4j, { type Driver } from "neo4j-driver";
import {
  checkStoriesStatement,
  entityStatements,
  replaceStoriesStatement,
  runAll,
  type Statement,
  versionMismatches,
} from "./apply-plan.ts";
import {
  checkGeneration,
  checkNamespace,
  defaultGeneration,
  defaultNamespace,
  type GenerationKeys,
  generationKeys,
} from "./graph-keys.ts";
import { enumValue, toNumber, toStrings, toText } from "./graph-values.ts";
import { neo4jSessions } from "./neo4j-sessions.ts";
import { unavailableAsStoreError } from "./neo4j-unavailable.ts";
import { planEvents, planReplacement } from "./write-plan.ts";

/** Where a Neo4j read model lives. */
export interface Neo4jReadModelOptions {
  /** The Neo4j database (default: the server's default database). */
  readonly database?: string;
  /**
   * Starts every key the model writes (default `ctx`), so several models (or test files) can share
   * one database without meeting: 1–64 letters, digits, `_`, `.` or `-`.
   */
  readonly namespace?: string;
}

// Uniqueness constraints (all Neo4j 5 community offers) on every key: each one is also the index
// every MATCH and MERGE of the model seeks by, including the STARTS WITH scans of a generation.
const constraints = [
  "CREATE CONSTRAINT read_model_story_key IF NOT EXISTS FOR (n:Story) REQUIRE n.key IS UNIQUE",
  "CREATE CONSTRAINT read_model_decision_key IF NOT EXISTS FOR (n:Decision) REQUIRE n.key IS UNIQUE",
  "CREATE CONSTRAINT read_model_subtask_key IF NOT EXISTS FOR (n:Subtask) REQUIRE n.key IS UNIQUE",
  "CREATE CONSTRAINT read_model_state_key IF NOT EXISTS FOR (n:ReadModelState) REQUIRE n.key IS UNIQUE",
  "CREATE CONSTRAINT read_model_generation_key IF NOT EXISTS FOR (n:ReadModelGeneration) REQUIRE n.key IS UNIQUE",
  "CREATE CONSTRAINT read_model_checkpoint_key IF NOT EXISTS FOR (n:ProjectionCheckpoint) REQUIRE n.key IS UNIQUE",
];

// Two processes creating the same constraint at once: one of them is told it exists already.
const alreadyExists = new Set([
  "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists",
  "Neo.ClientError.Schema.ConstraintAlreadyExists",
  "Neo.ClientError.Schema.IndexAlreadyExists",
]);

// A generation has data as long as its marker node exists: written with every write into it,
// deleted last when the generation is dropped.
const markGeneration = `
MERGE (g:ReadModelGeneration {key: $marker})
  ON CREATE SET g.namespace = $namespace, g.gen = toInteger($generation)`;

// The checkpoint only moves forward: a batch re-applied after a crash carries an older one.
const setCheckpoint = `
MERGE (c:ProjectionCheckpoint {key: $key})
  ON CREATE SET c.gen = toInteger($generation), c.partition = toInteger($partition), c.sequence = 0
SET c.sequence = CASE WHEN toInteger($sequence) > c.sequence THEN toInteger($sequence)
                      ELSE c.sequence END
${markGeneration}`;

const readStory = `
MATCH (s:Story {key: $key})
RETURN s.id AS id, s.title AS title, s.description AS description, s.status AS status,
       s.version AS version, s.stale AS stale,
       COLLECT {
         MATCH (s)-[:HAS_DECISION]->(d:Decision)
         WITH d ORDER BY d.position
         RETURN d {.id, .title, .rationale, .made_by, .alternatives, .status, .affects,
                   .superseded_by}
       } AS decisions,
       COLLECT {
         MATCH (s)-[:HAS_SUBTASK]->(t:Subtask)
         WITH t ORDER BY t.position
         RETURN t {.id, .title, .status, .assignee, .depends_on}
       } AS subtasks`;

const deleteByPrefix = {
  decisions: "MATCH (n:Decision) WHERE n.key STARTS WITH $prefix DETACH DELETE n",
  subtasks: "MATCH (n:Subtask) WHERE n.key STARTS WITH $prefix DETACH DELETE n",
};

// dropGeneration deletes at most this many nodes per transaction, label by label (labels cannot be
// parameters: the queries are built from this fixed list only).
const dropChunk = 5_000;
const dropChunks = (["Subtask", "Decision", "Story", "ProjectionCheckpoint"] as const).map(
  (label) => `
MATCH (n:${label}) WHERE n.key STARTS WITH $prefix
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS deleted`,
);

/**
 * The graph read model of story contexts in Neo4j 5 (community edition is enough), as a Projection
 * for the projector runtime.
 *
 * Each generation is a separate graph inside one database: every node's `key` starts with
 * `{namespace}|{generation}|`, so a rebuild writes a new generation beside the live one and
 * `activateGeneration` switches readers over at once. A batch is one write transaction that locks
 * and checks the version of each of its stories, applies all of their events with a handful of
 * UNWIND queries and moves the partition checkpoint: the model and its position commit together,
 * or not at all.
 *
 * The caller owns `driver`: `close()` leaves it open. Its settings apply; keep
 * `maxTransactionRetryTime` short, since the runtime retries a StoreUnavailableError itself.
 */
export function createNeo4jProjection(
  driver: Driver,
  options: Neo4jReadModelOptions = {},
): Projection {
  const namespace = checkNamespace(options.namespace ?? defaultNamespace);
  const { config, read, write } = neo4jSessions(driver, options.database);
  const keys = (generation: number) => generationKeys(namespace, generation);
  const mark = (k: GenerationKeys): Statement => ({
    query: markGeneration,
    parameters: { marker: k.marker, namespace, generation: k.generation },
  });

  return {
    name: "neo4j",
    // Measured on 2 cores (16 partitions, 5,000 stories, 16 events per story and batch): 2 or 4
    // batches at a time applied 16,000-21,000 events/s once warm, 16 at a time 9,000-12,000.
    writeConcurrency: 2,

    async init() {
      await unavailableAsStoreError(async () => {
        for (const query of constraints) {
          try {
            await driver.executeQuery(query, {}, config);
          } catch (e) {
            if (!(e instanceof neo4j.Neo4jError && alreadyExists.has(e.code))) throw e;
          }
        }
      });
    },

    async activeGeneration() {
      return read(async (tx) => {
        const result = await tx.run(
          "MATCH (m:ReadModelState {key: $namespace}) RETURN m.active_generation AS generation",
          { namespace },
        );
        const value = result.records[0]?.get("generation");
        return value === undefined || value === null ? defaultGeneration : toNumber(value);
      });
    },

    async activateGeneration(generation) {
      checkGeneration(generation);
      await write((tx) =>
        tx.run(
          `MERGE (m:ReadModelState {key: $namespace})
           SET m.active_generation = toInteger($generation)`,
          { namespace, generation },
        ),
      );
    },

    async checkpoint(generation, partition) {
      const key = keys(generation).checkpoint(partition);
      return read(async (tx) => {
        const result = await tx.run(
          "MATCH (c:ProjectionCheckpoint {key: $key}) RETURN c.sequence AS sequence",
          { key },
        );
        const value = result.records[0]?.get("sequence");
        return value === undefined || value === null ? 0 : toNumber(value);
      });
    },

    async positions(generation, storyIds) {
      const k = keys(generation);
      const found = await read(async (tx) => {
        const result = await tx.run(
          `UNWIND $keys AS key
           MATCH (s:Story {key: key})
           RETURN s.id AS id, s.version AS version, s.stale AS stale`,
          { keys: storyIds.map((id) => k.story(id)) },
        );
        return new Map(
          result.records.map((r) => [
            String(r.get("id")),
            { version: streamVersion(toNumber(r.get("version"))), stale: r.get("stale") === true },
          ]),
        );
      });
      const positions = new Map<StoryId, StoryPosition>();
      for (const id of storyIds) {
        positions.set(id, found.get(id) ?? { version: streamVersion(0), stale: false });
      }
      return positions;
    },

    async apply(batch: ProjectionBatch) {
      const k = keys(batch.generation);
      const plan = planEvents(k, batch.stories);
      await write(async (tx) => {
        // The guard first, alone: nothing else is written when it does not hold.
        const [check = []] = await runAll(tx, [checkStoriesStatement(k.generation, plan.stories)]);
        const mismatches = versionMismatches(check, plan.stories);
        const first = mismatches[0];
        if (first !== undefined) {
          const all = mismatches.map((m) => `${m.storyId} (${m.actual}, not ${m.expected})`);
          throw new VersionConflictError(
            toStoryId(first.storyId),
            `the read model holds other versions than the batch expected: ${all.join(", ")}`,
          );
        }
        await runAll(tx, [
          ...entityStatements(k.generation, plan),
          {
            query: setCheckpoint,
            parameters: {
              key: k.checkpoint(batch.partition),
              generation: k.generation,
              partition: batch.partition,
              sequence: batch.checkpoint,
              marker: k.marker,
              namespace,
            },
          },
        ]);
      });
    },

    async readContext(generation, storyId) {
      const key = keys(generation).story(storyId);
      const record = await read(async (tx) => (await tx.run(readStory, { key })).records[0]);
      if (record === undefined) return undefined;
      const version: StreamVersion = streamVersion(toNumber(record.get("version")));
      // A node with version 0 holds no event (a story marked stale before any write).
      if (version === 0) return undefined;
      const decisions = record.get("decisions") as ReadonlyArray<Record<string, unknown>>;
      const subtasks = record.get("subtasks") as ReadonlyArray<Record<string, unknown>>;
      const context = create(ContextSchema, {
        storyId: toText(record.get("id")),
        title: toText(record.get("title")),
        description: toText(record.get("description")),
        status: enumValue(ContextStatusSchema, record.get("status")),
        decisions: decisions.map((d) => ({
          decisionId: toText(d.id),
          title: toText(d.title),
          rationale: toText(d.rationale),
          madeBy: toText(d.made_by),
          alternatives: toStrings(d.alternatives),
          status: enumValue(DecisionStatusSchema, d.status),
          affectsSubtaskIds: toStrings(d.affects),
          supersededByDecisionId: toText(d.superseded_by),
        })),
        subtasks: subtasks.map((t) => ({
          subtaskId: toText(t.id),
          title: toText(t.title),
          status: enumValue(SubtaskStatusSchema, t.status),
          assignee: toText(t.assignee),
          dependsOn: toStrings(t.depends_on),
        })),
      });
      return { context, version, stale: record.get("stale") === true };
    },

    async markStale(generation, storyId, reason) {
      const k = keys(generation);
      await write(async (tx) => {
        await tx.run(
          `MERGE (s:Story {key: $key})
             ON CREATE SET s.gen = toInteger($generation), s.id = $storyId, s.version = 0,
                           s.title = '', s.description = '', s.status = 'UNSPECIFIED'
           SET s.stale = true, s.stale_reason = $reason`,
          { key: k.story(storyId), generation, storyId, reason },
        );
        await runAll(tx, [mark(k)]);
      });
    },

    async replaceStory(generation, state: ContextState) {
      const k = keys(generation);
      const plan = planReplacement(k, state);
      const prefix = k.entityPrefix(state.storyId);
      await write(async (tx) => {
        // Locks the story; a replacement never takes a story back in time, whatever races it.
        const held = await tx.run(
          "MATCH (s:Story {key: $key}) SET s.version = s.version RETURN s.version AS version",
          { key: k.story(state.storyId) },
        );
        if (toNumber(held.records[0]?.get("version") ?? 0) > state.version) return;
        await runAll(tx, [
          // Decisions and subtasks by key prefix, so nothing of the story is left, linked or not.
          { query: deleteByPrefix.decisions, parameters: { prefix } },
          { query: deleteByPrefix.subtasks, parameters: { prefix } },
          replaceStoriesStatement(k.generation, plan.stories),
          ...entityStatements(k.generation, plan),
          mark(k),
        ]);
      });
    },

    async dropGeneration(generation) {
      const k = keys(generation);
      // Several transactions of bounded size: a generation can hold millions of nodes.
      for (const query of dropChunks) {
        for (;;) {
          const deleted = await write(async (tx) => {
            const result = await tx.run(query, { prefix: k.prefix, limit: neo4j.int(dropChunk) });
            return toNumber(result.records[0]?.get("deleted") ?? 0);
          });
          if (deleted < dropChunk) break;
        }
      }
      await write((tx) =>
        tx.run("MATCH (g:ReadModelGeneration {key: $key}) DELETE g", { key: k.marker }),
      );
    },

    async generations() {
      return read(async (tx) => {
        const result = await tx.run(
          `MATCH (g:ReadModelGeneration) WHERE g.key STARTS WITH $prefix
           RETURN g.gen AS generation ORDER BY generation`,
          { prefix: `${namespace}|` },
        );
        return result.records.map((r) => toNumber(r.get("generation")));
      });
    },

    async close() {
      // The driver belongs to the caller, who may share it with readers and other models.
    },
  };
}
