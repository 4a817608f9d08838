import { type StoryId, storyId, streamVersion } from "@ctx/domain";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
} from "@ctx/event-store";
import {
  leaseBucket,
  leaseGroup,
  listParked,
  type ParkingNames,
  partitionConsumers,
} from "@ctx/projector";
import {
  connectTestNats,
  eventually,
  type Neo4jServer,
  startNeo4jServer,
  uniqueName,
} from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadProjectorConfig } from "./config.ts";
import { type OpenReadModel, openReadModel } from "./read-models.ts";
import {
  type ProjectorProcess,
  projectorEnv,
  provisionTestStreams,
  settle,
  spawnProjector,
} from "./testing/projector-processes.ts";
import { expectModelEqualsFold, loadEvents } from "./testing/story-load.ts";

// The Neo4j read model equals the fold of the stream after its server is stopped and started again
// (same data) in the middle of a load, then killed and started again, while three projector replicas
// run: they ride the outages out by themselves (back-off, circuit breaker), nothing is parked, no
// replica dies.
// The server is this file's own: the run's shared Neo4j must stay up for every other file.

const STORIES = 150;
const EVENTS_PER_STORY = 40;
const CHUNK = 5;
const WRITERS = 15;
const REPLICAS = 3;
const PARTITIONS = 8;
/** When each outage begins (share of the load written), and how: SIGTERM, or SIGKILL (a crash). */
const OUTAGES = [
  { at: 1 / 4, how: "stop" },
  { at: 5 / 8, how: "kill" },
] as const;

let neo4jServer: Neo4jServer | undefined;
let nc: NatsConnection;
let store: EventStore;
let settings: EventStreamSettings;
let parking: ParkingNames;
let namespace: string;
let env: Record<string, string>;
let model: OpenReadModel | undefined;
const replicas: ProjectorProcess[] = [];

beforeAll(async () => {
  neo4jServer = await startNeo4jServer();
  nc = await connectTestNats();
  const streams = await provisionTestStreams(nc, "OUTAGE", PARTITIONS);
  ({ settings, parking } = streams);
  namespace = uniqueName("outage");
  store = createEventStore(nc, { names: settings });
  env = projectorEnv(
    streams,
    { neo4j: neo4jServer, namespace },
    {
      PROJECTOR_BATCH_SIZE: "100",
      PROJECTION: "neo4j",
      // Info: the "projector ready" line names the ops port, where the test reads the metrics.
      LOG_LEVEL: "info",
    },
  );
  model = openReadModel("neo4j", loadProjectorConfig(env));
}, 240_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.kill()));
  await model?.close();
  // The whole server goes, generations and all.
  await neo4jServer?.remove();
  if (nc) {
    const jsm = await jetstreamManager(nc);
    for (const stream of [
      settings.stream,
      parking.stream,
      `KV_${leaseBucket(leaseGroup(settings.stream, "neo4j"))}`,
    ]) {
      await jsm.streams.delete(stream).catch(() => undefined);
    }
    await nc.close();
  }
}, 120_000);

/** Where each consumer stands and what each replica logged, for a failure that needs explaining. */
async function printDiagnostics(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const consumers = await partitionConsumers(jsm, settings.stream, "neo4j");
  for (let p = 0; p < settings.partitions; p++) {
    const info = consumers.get(p);
    console.error(
      `neo4j p${p}: ack floor ${info?.ack_floor.stream_seq} pending ${info?.num_pending} ack-pending ${info?.num_ack_pending}`,
    );
  }
  for (const r of replicas) {
    const warnings = r
      .output()
      .split("\n")
      .filter((line) => !line.includes('"level":30'))
      .join("\n");
    console.error(
      `--- ${r.replicaId} (exit ${r.process.exitCode ?? r.process.signalCode})\n${warnings.slice(-4000)}`,
    );
  }
}

/** A promise and the function that resolves it. */
function latch(): { readonly promise: Promise<void>; open(): void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const running = (r: ProjectorProcess) =>
  r.process.exitCode === null && r.process.signalCode === null;

describe("projectors through a Neo4j outage", () => {
  it("keep the graph equal to the fold of the stream when Neo4j stops, or dies, and starts again mid-load", async () => {
    const server = neo4jServer as Neo4jServer;
    const projection = (model as OpenReadModel).projection;
    for (let i = 0; i < REPLICAS; i++) {
      replicas.push(spawnProjector(env, `neo4j-outage-${i}`));
    }
    // All replicas up, and the partitions shared among them, before the load.
    try {
      await settle(async () => {
        for (const r of replicas) expect(r.opsPort(), r.replicaId).toBeDefined();
        let owned = 0;
        for (const r of replicas) owned += await r.metric("ctx_projector_partitions_owned");
        expect(owned).toBe(PARTITIONS);
      }, 120_000);
    } catch (e) {
      await printDiagnostics();
      throw e;
    }

    const ids = Array.from({ length: STORIES }, (_, i) => storyId(`${namespace}-s${i}`));
    const total = STORIES * EVENTS_PER_STORY;
    let written = 0;
    // Each outage begins once its share of the load is written. The writers go on through the stop;
    // an eighth of the load later they wait for Neo4j to be down, another eighth later for it to be
    // back: events are written before, while Neo4j stops, while it is down, and after it is back.
    const outages = OUTAGES.map((o) => ({ ...o, down: latch(), back: latch() }));
    const gates = outages.flatMap((o) => [
      { at: (o.at + 1 / 8) * total, latch: o.down },
      { at: (o.at + 2 / 8) * total, latch: o.back },
    ]);
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let v = 1; v <= EVENTS_PER_STORY; v += CHUNK) {
        for (let s = w; s < STORIES; s += WRITERS) {
          for (const gate of gates) if (written >= gate.at) await gate.latch.promise;
          const id = ids[s] as StoryId;
          await store.append(
            id,
            loadEvents(id, v, CHUNK),
            v === 1 ? ExpectedVersion.NoStory : streamVersion(v - 1),
          );
          written += CHUNK;
        }
      }
    });

    const storeErrors = () =>
      Promise.all(replicas.map((r) => r.metric("ctx_projector_store_errors_total")));
    const outage = async ({ at, how, down, back }: (typeof outages)[number]) => {
      await eventually(() => expect(written).toBeGreaterThanOrEqual(at * total), {
        timeout: 300_000,
        interval: 20,
      });
      const before = await projection.positions(await projection.activeGeneration(), ids);
      const errorsBefore = await storeErrors();
      const stoppedAt = Date.now();
      await (how === "stop" ? server.stop() : server.kill());
      expect(server.pid()).toBeUndefined();
      const writtenWhenDown = written;
      down.open();
      // Every replica that holds partitions sees the outage (its store errors count up).
      await settle(async () => {
        const errors = await storeErrors();
        for (const [i, r] of replicas.entries()) {
          if ((await r.metric("ctx_projector_partitions_owned")) > 0) {
            expect(errors[i], r.replicaId).toBeGreaterThan(errorsBefore[i] ?? 0);
          }
        }
      }, 60_000);
      const startedAt = Date.now();
      await server.start();
      console.info(
        `neo4j ${how}: down ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s (start ${((Date.now() - startedAt) / 1000).toFixed(1)} s); ${written - writtenWhenDown} events written while it was down`,
      );
      expect(written).toBeGreaterThan(writtenWhenDown);
      back.open();
      // Nothing the model had committed was lost.
      const after = await settle(async () =>
        projection.positions(await projection.activeGeneration(), ids),
      );
      for (const id of ids) {
        expect(after.get(id)?.version ?? 0).toBeGreaterThanOrEqual(before.get(id)?.version ?? 0);
      }
    };
    const chaos = (async () => {
      try {
        for (const o of outages) await outage(o);
      } finally {
        // A failed outage must not leave the writers waiting forever.
        for (const o of outages) {
          o.down.open();
          o.back.open();
        }
      }
    })();

    // Settled, not all: a failing writer must not leave the outages running into afterAll.
    for (const result of await Promise.allSettled([...writers, chaos])) {
      if (result.status === "rejected") throw result.reason;
    }
    expect(written).toBe(total);

    try {
      await settle(() => expectModelEqualsFold(projection, store, ids), 300_000);
      for (const r of replicas) expect(running(r), `${r.replicaId} is running`).toBe(true);
      for (const r of replicas) {
        expect(await r.metric("ctx_projector_events_parked_total"), r.replicaId).toBe(0);
      }
      expect(await listParked(await jetstreamManager(nc), parking)).toEqual([]);
    } catch (e) {
      await printDiagnostics();
      throw e;
    }
  }, 900_000);
});
