import type { ManagedTransaction, Record as Neo4jRecord } from "neo4j-driver";
import { toNumber } from "./graph-values.ts";
import type { StoryRow, WritePlan } from "./write-plan.ts";

// The Cypher of the writes. Every value is a parameter and every MATCH/MERGE finds its node by a
// key backed by a uniqueness constraint. Numbers arrive as JavaScript floats and are stored as
// integers (toInteger), whatever the caller's driver integer settings.

const storyDefaults = `s.gen = toInteger($generation), s.id = row.id, s.version = 0, s.title = '',
    s.description = '', s.status = 'UNSPECIFIED', s.stale = false`;

// Takes the write lock of every story of the batch first (MERGE, then a write to each node), then
// reads its version under the lock: a concurrent writer of the same story waits here, and sees the
// new version when its turn comes. Rows whose version is not the expected one come back; the caller
// then throws, which rolls the whole transaction back (including the story properties set here).
const checkAndSetStories = `
UNWIND $stories AS row
MERGE (s:Story {key: row.key})
  ON CREATE SET ${storyDefaults}
SET s.version = s.version
WITH row, s, s.version AS current
SET s += row.props,
    s.version = toInteger(row.version),
    s.updated_at = CASE WHEN row.updatedAt IS NULL THEN s.updated_at
                        ELSE datetime({epochMillis: toInteger(row.updatedAt)}) END
WITH row, current WHERE current <> row.expected
RETURN row.id AS id, current`;

// A story written whole (replaceStory): no guard, and it is no longer stale.
const replaceStories = `
UNWIND $stories AS row
MERGE (s:Story {key: row.key})
  ON CREATE SET ${storyDefaults}
SET s += row.props,
    s.version = toInteger(row.version),
    s.updated_at = CASE WHEN row.updatedAt IS NULL THEN null
                        ELSE datetime({epochMillis: toInteger(row.updatedAt)}) END,
    s.stale = false,
    s.stale_reason = null`;

// Relationships join nodes that exist: the lists on the nodes (depends_on, affects) are what the
// story says, the relationships are the graph to traverse. Targets are written first: subtasks
// before the subtasks and decisions that point at them (a subtask only depends on one added before
// it), supersessions after every decision.
const upsertSubtasks = `
UNWIND $rows AS row
MATCH (s:Story {key: row.storyKey})
MERGE (t:Subtask {key: row.key})
  ON CREATE SET t.gen = toInteger($generation), t.story_id = row.storyId, t.id = row.id,
                t.position = toInteger(row.position)
MERGE (s)-[:HAS_SUBTASK]->(t)
SET t.title = row.title, t.status = row.status, t.assignee = row.assignee,
    t.depends_on = row.dependsOn
WITH t, row
CALL (t) {
  MATCH (t)-[r:DEPENDS_ON]->()
  DELETE r
}
CALL (t, row) {
  UNWIND row.dependsOnKeys AS target
  MATCH (o:Subtask {key: target})
  MERGE (t)-[:DEPENDS_ON]->(o)
}`;

const patchSubtasks = `
UNWIND $rows AS row
MATCH (t:Subtask {key: row.key})
SET t.status = coalesce(row.status, t.status),
    t.assignee = coalesce(row.assignee, t.assignee),
    t.depends_on = reduce(list = t.depends_on, d IN row.addDependsOn |
                          CASE WHEN d IN list THEN list ELSE list + d END)
WITH t, row
CALL (t, row) {
  UNWIND row.addDependsOnKeys AS target
  MATCH (o:Subtask {key: target})
  MERGE (t)-[:DEPENDS_ON]->(o)
}`;

const upsertDecisions = `
UNWIND $rows AS row
MATCH (s:Story {key: row.storyKey})
MERGE (d:Decision {key: row.key})
  ON CREATE SET d.gen = toInteger($generation), d.story_id = row.storyId, d.id = row.id,
                d.position = toInteger(row.position)
MERGE (s)-[:HAS_DECISION]->(d)
SET d.title = row.title, d.rationale = row.rationale, d.made_by = row.madeBy,
    d.alternatives = row.alternatives, d.status = row.status, d.affects = row.affects,
    d.superseded_by = row.supersededBy
WITH d, row
CALL (d) {
  MATCH (d)-[r:AFFECTS]->()
  DELETE r
}
CALL (d) {
  MATCH (d)<-[r:SUPERSEDES]-()
  DELETE r
}
CALL (d, row) {
  UNWIND row.affectsKeys AS target
  MATCH (t:Subtask {key: target})
  MERGE (d)-[:AFFECTS]->(t)
}`;

const patchDecisions = `
UNWIND $rows AS row
MATCH (d:Decision {key: row.key})
SET d.status = 'SUPERSEDED', d.superseded_by = row.supersededBy
WITH d
CALL (d) {
  MATCH (d)<-[r:SUPERSEDES]-()
  DELETE r
}`;

const linkSupersessions = `
UNWIND $rows AS row
MATCH (d:Decision {key: row.key})
MATCH (n:Decision {key: row.by})
MERGE (n)-[:SUPERSEDES]->(d)`;

/** One parameterised query. */
export interface Statement {
  readonly query: string;
  readonly parameters: Readonly<Record<string, unknown>>;
}

/** Locks the stories of a batch, sets their new version and properties, returns mismatches. */
export function checkStoriesStatement(generation: number, stories: readonly StoryRow[]): Statement {
  return { query: checkAndSetStories, parameters: { generation, stories } };
}

/** Writes the stories of a replacement whole, without a version guard. */
export function replaceStoriesStatement(
  generation: number,
  stories: readonly StoryRow[],
): Statement {
  return { query: replaceStories, parameters: { generation, stories } };
}

/** A story whose stored version was not the expected one. */
export interface VersionMismatch {
  readonly storyId: string;
  readonly expected: number;
  readonly actual: number;
}

/** The mismatches the check statement returned. */
export function versionMismatches(
  records: readonly Neo4jRecord[],
  stories: readonly StoryRow[],
): VersionMismatch[] {
  if (records.length === 0) return [];
  const expected = new Map(stories.map((s) => [s.id, s.expected]));
  return records.map((r) => {
    const storyId = String(r.get("id"));
    return { storyId, expected: expected.get(storyId) ?? 0, actual: toNumber(r.get("current")) };
  });
}

/** The statements that write a plan's decisions and subtasks, in the order they must run. */
export function entityStatements(generation: number, plan: WritePlan): Statement[] {
  const steps: ReadonlyArray<readonly [string, readonly unknown[]]> = [
    [upsertSubtasks, plan.subtasks],
    [patchSubtasks, plan.subtaskPatches],
    [upsertDecisions, plan.decisions],
    [patchDecisions, plan.decisionPatches],
    [linkSupersessions, plan.supersessions],
  ];
  return steps
    .filter(([, rows]) => rows.length > 0)
    .map(([query, rows]) => ({ query, parameters: { generation, rows } }));
}

/**
 * Runs statements in order in one transaction, pipelined: all are sent at once and the server runs
 * them one after the other, so a batch costs one round trip, not one per statement. Resolves with
 * each statement's records once all are done; rejects with the first failure.
 */
export async function runAll(
  tx: ManagedTransaction,
  statements: readonly Statement[],
): Promise<Neo4jRecord[][]> {
  const settled = await Promise.allSettled(
    statements.map((s) => tx.run(s.query, s.parameters).then((r) => r.records)),
  );
  return settled.map((s) => {
    if (s.status === "rejected") throw s.reason;
    return s.value;
  });
}
