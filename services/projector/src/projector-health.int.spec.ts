import { createLogger } from "@ctx/config";
import { leaseBucket, leaseGroup } from "@ctx/projector";
import { connectTestNats, eventually, stack, sumOfSamples, uniqueName } from "@ctx/test-support";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProjectorApp, startProjectorApp } from "./app.ts";
import { loadProjectorConfig } from "./config.ts";
import { openReadModel } from "./read-models.ts";
import { projectorEnv, provisionTestStreams } from "./testing/projector-processes.ts";

// Issue #20, defect 1: partitions went unowned while every /readyz said 200. A replica is now
// ready only while it holds what it should; /readyz and /metrics say so.

const logger = createLogger({ name: "projector-health-test", level: "silent", pretty: false });
const TTL_MS = 1_000;
const HEARTBEAT_MS = 100;

let nc: NatsConnection;
let env: Record<string, string>;
let streamName: string;
let namespace: string;

beforeAll(async () => {
  nc = await connectTestNats();
  const streams = await provisionTestStreams(nc, "HEALTH", 4, TTL_MS);
  streamName = streams.settings.stream;
  namespace = uniqueName("health");
  const s = stack();
  env = projectorEnv(
    streams,
    {
      neo4j: { url: s.neo4jUrl, user: s.neo4jUser, passwordFile: s.neo4jPasswordFile },
      namespace,
    },
    {
      PROJECTION: "valkey",
      PROJECTOR_REPLICA_ID: "health-0",
      PROJECTOR_OPS_LISTEN: "127.0.0.1:0",
      PROJECTOR_LEASE_TTL_MS: String(TTL_MS),
      PROJECTOR_LEASE_HEARTBEAT_MS: String(HEARTBEAT_MS),
    },
  );
});

afterAll(async () => {
  const model = openReadModel("valkey", loadProjectorConfig(env));
  for (const g of await model.projection.generations()) await model.projection.dropGeneration(g);
  await model.close();
  await nc.close();
});

describe("projector /readyz and /metrics", () => {
  it("answer 503 while a partition the replica should own stays unowned, 200 once it is taken", async () => {
    // Another holder, no replica of the group, keeps renewing partition 2's lease.
    const kv = await new Kvm(nc).create(leaseBucket(leaseGroup(streamName, "valkey")), {
      ttl: TTL_MS,
      history: 1,
    });
    let revision = await kv.create("leases.2", "ghost");
    let haunting = true;
    const ghost = (async () => {
      while (haunting) {
        revision = await kv.update("leases.2", "ghost", revision);
        await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
      }
    })();
    let app: ProjectorApp | undefined;
    try {
      app = await startProjectorApp(loadProjectorConfig(env), logger);
      const ops = `http://127.0.0.1:${app.opsPort}`;
      await eventually(async () => expect((await fetch(`${ops}/readyz`)).status).toBe(503), {
        timeout: 15_000,
      });
      const metrics = await (await fetch(`${ops}/metrics`)).text();
      expect(sumOfSamples(metrics, "ctx_projector_partitions_missing")).toBe(1);
      expect(sumOfSamples(metrics, "ctx_projector_partitions_unowned")).toBe(1);
      expect(app.owned()).toEqual([0, 1, 3]);

      haunting = false;
      await ghost;
      // The ghost's lease lapses after the TTL; the replica takes partition 2 at its next heartbeat.
      await eventually(async () => expect((await fetch(`${ops}/readyz`)).status).toBe(200), {
        timeout: 15_000,
      });
      const after = await (await fetch(`${ops}/metrics`)).text();
      expect(sumOfSamples(after, "ctx_projector_partitions_missing")).toBe(0);
      expect(sumOfSamples(after, "ctx_projector_partitions_unowned")).toBe(0);
      expect(app.owned()).toEqual([0, 1, 2, 3]);
    } finally {
      haunting = false;
      await ghost;
      await app?.stop();
    }
  });
});
