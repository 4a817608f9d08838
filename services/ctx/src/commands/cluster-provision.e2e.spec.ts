import { connectNats, natsConnectionOf } from "@ctx/service";
import {
  type CtxRun,
  freePort,
  runCtx,
  startNatsCluster,
  startNatsServer,
  type TestNatsCluster,
  type TestNatsServer,
} from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Issue #22: `ctx provision` on a three-node cluster makes every stream and bucket R3 (one setting,
// EVENT_STREAM_REPLICAS), and refuses a replica count the servers cannot hold with an error naming
// the setting, instead of hanging or quoting JetStream.

let cluster: TestNatsCluster;
let single: TestNatsServer;

function ctx(env: Record<string, string>, ...args: string[]): Promise<CtxRun> {
  return runCtx(args, { ...process.env, LOG_LEVEL: "silent", ...env });
}

beforeAll(async () => {
  [cluster, single] = await Promise.all([startNatsCluster(), startNatsServer()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([cluster?.stop(), single?.stop()]);
});

describe("ctx provision and the replica count", () => {
  it("refuses R3 on a single server, naming the setting, and creates nothing", async () => {
    const result = await ctx({ ...single.env("ctx"), EVENT_STREAM_REPLICAS: "3" }, "provision");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /EVENT_STREAM_REPLICAS: is 3, but NATS at .* is a single server, not a JetStream cluster/,
    );
    const nc = await connectNats(natsConnectionOf(single.env("admin")));
    try {
      const jsm = await jetstreamManager(nc);
      const names: string[] = [];
      for await (const name of jsm.streams.names()) names.push(name);
      expect(names).toEqual([]);
    } finally {
      await nc.close();
    }
  });

  it("refuses more replicas than the cluster has servers, naming the setting", async () => {
    const result = await ctx({ ...cluster.env("ctx"), EVENT_STREAM_REPLICAS: "5" }, "provision");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/EVENT_STREAM_REPLICAS: is 5, but the cluster has fewer servers/);
  });

  it("makes every stream and lease bucket R3 on the cluster, through any of its URLs", async () => {
    // A seed that is down first: the client goes on to the others.
    const env = {
      ...cluster.env("ctx"),
      NATS_URL: `nats://127.0.0.1:${await freePort()},${cluster.url}`,
      EVENT_STREAM_REPLICAS: "3",
    };
    const result = await ctx(env, "provision");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/CONTEXT_EVENTS: 0 events, 16 partitions, replicas 3/);

    const nc = await connectNats(natsConnectionOf(cluster.env("admin")));
    try {
      const jsm = await jetstreamManager(nc);
      const replicas: Record<string, [number, number]> = {};
      for await (const info of jsm.streams.list()) {
        replicas[info.config.name] = [
          info.config.num_replicas,
          info.cluster?.replicas?.length ?? 0,
        ];
      }
      // Each with a leader and two followers, on three different servers.
      expect(replicas).toEqual({
        CONTEXT_EVENTS: [3, 2],
        CONTEXT_EVENTS_COMMAND_SNAPSHOTS: [3, 2],
        CONTEXT_PARKED: [3, 2],
        CONTEXT_SNAPSHOTS: [3, 2],
        KV_projector_leases_CONTEXT_EVENTS_neo4j: [3, 2],
        KV_projector_leases_CONTEXT_EVENTS_valkey: [3, 2],
      });
    } finally {
      await nc.close();
    }
    // Idempotent: the second run changes nothing and says so the same way.
    const again = await ctx(env, "provision");
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(result.stdout);
  });
});
