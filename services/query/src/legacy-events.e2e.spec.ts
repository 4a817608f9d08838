import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createLogger } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import { createEventStore, verifyChain } from "@ctx/event-store";
import { appendAsWritten, type WrittenEvent } from "@ctx/event-store/testing";
import { createProjector, type Projection, type Projector } from "@ctx/projector";
import {
  type Context,
  ContextArchivedSchema,
  ContextCreatedSchema,
  DecisionAddedSchema,
  DecisionSupersededSchema,
  legacyV1,
  SubtaskAddedSchema,
  SubtaskStatus,
  SubtaskUpdatedSchema,
} from "@ctx/proto";
import { createNeo4jProjection } from "@ctx/read-model-neo4j";
import { createValkeyClient, createValkeyProjection } from "@ctx/read-model-valkey";
import { connectTestNats, eventually, stack, uniqueName, valkeyLogin } from "@ctx/test-support";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Valkey } from "iovalkey";
import neo4j, { type Driver } from "neo4j-driver";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  newStory,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// The same history twice: once as a release of schema version 1 wrote it (DecisionAdded and
// SubtaskUpdated v1 bytes, context.legacy.v1), once as today's release writes it (v2). Every reader
// — the event store, the live projectors into Valkey and Neo4j, the query service with and without
// snapshots — must answer for the first exactly as for the second.

let s: QueryStack;
let withSnapshots: RunningQuery;
let withoutSnapshots: RunningQuery;
let projectorConnection: NatsConnection;
let valkey: Valkey;
let driver: Driver;
let models: Projection[];
const projectors: Projector[] = [];
const logger = createLogger({ name: "legacy-e2e", level: "silent", pretty: false });

beforeAll(async () => {
  s = await startQueryStack();
  withSnapshots = await s.startQuery({ SNAPSHOT_INTERVAL: "2" });
  withoutSnapshots = await s.startQuery({ SNAPSHOTS: "off", SNAPSHOTTER: "off" });
  const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
  projectorConnection = await connectTestNats();
  valkey = createValkeyClient(valkeyLogin(stack()));
  driver = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
  const namespace = uniqueName("legacy");
  models = [
    createValkeyProjection(valkey, { keyPrefix: namespace }),
    createNeo4jProjection(driver, { namespace }),
  ];
  for (const projection of models) {
    await projection.init();
    const projector = createProjector({
      nc: projectorConnection,
      names: s.settings,
      partitions: s.settings.partitions,
      projection,
      replicaId: `legacy-${projection.name}`,
      logger,
      registry: new Registry(),
      parking: { stream: uniqueName("LEGACY_PARKED"), subjectPrefix: uniqueName("legacy_parked") },
      heartbeatMs: 200,
      leaseTtlMs: 1_500,
    });
    await projector.start();
    projectors.push(projector);
  }
}, 120_000);

afterAll(async () => {
  for (const p of projectors) await p.stop().catch(() => undefined);
  for (const p of models ?? []) {
    for (const g of await p.generations().catch(() => [])) await p.dropGeneration(g);
  }
  await valkey?.quit().catch(() => valkey.disconnect());
  await driver?.close();
  await projectorConnection?.close();
  await s?.stop();
});

const base = Date.UTC(2026, 2, 1, 9, 0, 0);
const time = (i: number) => new Date(base + i * 60_000);

function written(
  i: number,
  eventType: string,
  schemaVersion: number,
  payloadSchema: DescMessage,
  payload: Message,
): WrittenEvent {
  return { eventType, schemaVersion, payloadSchema, payload, occurredAt: time(i) };
}

/** One history, as release `v` wrote it: the two evolved types in their schema `v` shape. */
function history(v: 1 | 2): WrittenEvent[] {
  const decision = (i: number, id: string, alternative: string, affects: string[]) =>
    v === 1
      ? written(
          i,
          "DecisionAdded",
          1,
          legacyV1.DecisionAddedSchema,
          create(legacyV1.DecisionAddedSchema, {
            decisionId: id,
            title: `decision ${id}`,
            rationale: "because",
            affectsSubtaskIds: affects,
            alternative,
          }),
        )
      : written(
          i,
          "DecisionAdded",
          2,
          DecisionAddedSchema,
          create(DecisionAddedSchema, {
            decisionId: id,
            title: `decision ${id}`,
            rationale: "because",
            affectsSubtaskIds: affects,
            alternatives: alternative === "" ? [] : [alternative],
          }),
        );
  const update = (i: number, id: string, text: string, status: SubtaskStatus) =>
    v === 1
      ? written(
          i,
          "SubtaskUpdated",
          1,
          legacyV1.SubtaskUpdatedSchema,
          create(legacyV1.SubtaskUpdatedSchema, { subtaskId: id, status: text }),
        )
      : written(
          i,
          "SubtaskUpdated",
          2,
          SubtaskUpdatedSchema,
          create(SubtaskUpdatedSchema, { subtaskId: id, status }),
        );
  return [
    written(
      1,
      "ContextCreated",
      1,
      ContextCreatedSchema,
      create(ContextCreatedSchema, { title: "Payments", description: "v1 era" }),
    ),
    written(
      2,
      "SubtaskAdded",
      1,
      SubtaskAddedSchema,
      create(SubtaskAddedSchema, { subtaskId: "s-1", title: "schema" }),
    ),
    written(
      3,
      "SubtaskAdded",
      1,
      SubtaskAddedSchema,
      create(SubtaskAddedSchema, { subtaskId: "s-2", title: "api", dependsOn: ["s-1"] }),
    ),
    update(4, "s-1", "In Progress", SubtaskStatus.IN_PROGRESS),
    decision(5, "d-1", "Kafka", ["s-1", "s-2"]),
    decision(6, "d-2", "", ["s-2"]),
    update(7, "s-1", "done", SubtaskStatus.DONE),
    written(
      8,
      "DecisionSuperseded",
      1,
      DecisionSupersededSchema,
      create(DecisionSupersededSchema, { decisionId: "d-1", supersededByDecisionId: "d-2" }),
    ),
    update(9, "s-2", "blocked", SubtaskStatus.BLOCKED),
  ];
}

const archived = (i: number) =>
  written(
    i,
    "ContextArchived",
    1,
    ContextArchivedSchema,
    create(ContextArchivedSchema, { reason: "shipped" }),
  );

/** A context with its story id blanked, to compare two stories' contexts. */
const sameAs = (context: Context | undefined) => context && { ...context, storyId: "" };

let legacy: StoryId;
let current: StoryId;
const versions = history(1).length + 1;

describe("a stream holding schema version 1 events", () => {
  beforeAll(async () => {
    legacy = newStory();
    current = newStory();
    await appendAsWritten(s.nc, s.store, legacy, history(1));
    await appendAsWritten(s.nc, s.store, current, history(2));
    // Today's release goes on writing on top of the old events: the chain continues.
    await appendAsWritten(s.nc, s.store, legacy, [archived(10)]);
    await appendAsWritten(s.nc, s.store, current, [archived(10)]);
  });

  it("reads, through the event store, as the same history written in v2; the stored chain stays intact", async () => {
    const old = await s.store.read(legacy);
    const now = await s.store.read(current);
    expect(old.map((e) => [e.version, e.eventType, e.schemaVersion, e.data])).toEqual(
      now.map((e) => [e.version, e.eventType, e.schemaVersion, e.data]),
    );
    expect(old.map((e) => e.envelope.schemaVersion)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(verifyChain(old.map((e) => e.envelope))).toEqual({ intact: true, events: versions });
    const replayed = [];
    for await (const e of createEventStore(s.nc, { names: s.settings }).readAll()) {
      if (e.storyId === legacy) replayed.push(e.data);
    }
    expect(replayed).toEqual(now.map((e) => e.data));
  });

  it("projects into Valkey and Neo4j exactly as the v2 history", async () => {
    for (const model of models) {
      await eventually(
        async () => {
          const generation = await model.activeGeneration();
          const [old, now] = await Promise.all([
            model.readContext(generation, legacy),
            model.readContext(generation, current),
          ]);
          expect(old?.version).toBe(versions);
          expect(now?.version).toBe(versions);
          expect(old?.stale).toBe(false);
          expect(sameAs(old?.context)).toEqual(sameAs(now?.context));
        },
        { timeout: 30_000 },
      );
    }
  });

  it("answers temporal queries at every time and version exactly as the v2 history, with snapshots and without", async () => {
    for (const { client } of [withSnapshots, withoutSnapshots]) {
      for (let i = 1; i <= versions; i++) {
        for (const at of [time(i), new Date(time(i).getTime() + 30_000)]) {
          const [old, now] = await Promise.all(
            [legacy, current].map((id) =>
              client.getContextAtTime({ storyId: id, timestamp: timestampFromDate(at) }),
            ),
          );
          expect(old?.version).toBe(i);
          expect(sameAs(old?.context)).toEqual(sameAs(now?.context));
          expect(old?.asOf).toEqual(now?.asOf);
        }
        const [old, now] = await Promise.all(
          [legacy, current].map((id) => client.getContextAtVersion({ storyId: id, version: i })),
        );
        expect(sameAs(old?.context)).toEqual(sameAs(now?.context));
      }
    }
    // The upcast values are the ones the v1 data meant.
    const answer = await withSnapshots.client.getContextAtVersion({ storyId: legacy, version: 9 });
    expect(answer.context?.decisions.map((d) => [d.decisionId, d.alternatives, d.madeBy])).toEqual([
      ["d-1", ["Kafka"], ""],
      ["d-2", [], ""],
    ]);
    expect(answer.context?.subtasks.map((t) => t.status)).toEqual([
      SubtaskStatus.DONE,
      SubtaskStatus.BLOCKED,
    ]);
  });

  it("lists the events upcast, and diffs as the v2 history", async () => {
    const [old, now] = await Promise.all(
      [legacy, current].map((id) =>
        withoutSnapshots.client.listEvents({ storyId: id, pageSize: 4 }),
      ),
    );
    expect(old?.events.map((e) => [e.eventType, e.schemaVersion, e.payload])).toEqual(
      now?.events.map((e) => [e.eventType, e.schemaVersion, e.payload]),
    );
    expect(old?.events.map((e) => e.schemaVersion)).toEqual([1, 1, 1, 2]);
    const diff = (id: StoryId) =>
      withoutSnapshots.client.diffContext({
        storyId: id,
        from: { point: { case: "version", value: 3 } },
        to: { point: { case: "version", value: 9 } },
      });
    const [a, b] = await Promise.all([diff(legacy), diff(current)]);
    const strip = (r: typeof a) => ({
      ...r,
      events: r.events.map((e) => [e.eventType, e.schemaVersion, e.payload]),
    });
    expect(strip(a)).toEqual(strip(b));
  });
});
