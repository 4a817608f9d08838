import { eventually, startNatsCluster, type TestNatsCluster } from "@ctx/test-support";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, natsConnectionOf } from "./index.ts";

// A server cut off from the network (here: frozen with SIGSTOP) answers nothing and closes nothing.
// With nats.js's default pings (2 unanswered, 2 minutes apart) a client stayed on it for minutes;
// with NATS_PING_INTERVAL_MS / NATS_MAX_PINGS_OUT it notices and moves to another server.

let cluster: TestNatsCluster;
let nc: NatsConnection | undefined;

beforeAll(async () => {
  cluster = await startNatsCluster();
}, 120_000);

afterAll(async () => {
  await nc?.close().catch(() => undefined);
  await cluster?.stop();
});

describe("a NATS client whose server goes silent", () => {
  it("given pings every 500 ms, 2 may go unanswered, when its server freezes, then it reconnects to another server of the cluster", async () => {
    nc = await connectNats(
      natsConnectionOf({
        ...cluster.env("admin"),
        NATS_PING_INTERVAL_MS: "500",
        NATS_MAX_PINGS_OUT: "2",
      }),
      { name: "liveness", maxReconnectAttempts: -1, reconnectTimeWait: 200 },
    );
    const first = nc.info?.server_name;
    const frozen = cluster.nodes.find((n) => n.name === first);
    expect(frozen, `connected to ${first}`).toBeDefined();
    frozen?.signal("SIGSTOP");
    try {
      await eventually(
        async () => {
          const now = nc?.info?.server_name;
          expect(now).not.toBe(first);
          // Served again: a round trip through the new server.
          await nc?.flush();
        },
        { timeout: 30_000, interval: 200 },
      );
    } finally {
      frozen?.signal("SIGCONT");
    }
  });
});
