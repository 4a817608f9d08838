import { jetstream, jetstreamManager } from "@nats-io/jetstream";

import { Valkey } from "iovalkey";
import neo4j from "neo4j-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTestNats, stack, uniqueName, valkeyLogin } from "./support/index.ts";

// The foundation's promise: every test run gets real servers, and they really work.

describe("NATS JetStream", () => {
  it("creates a stream, publishes, consumes and deletes it", async () => {
    const nc = await connectTestNats();
    try {
      const jsm = await jetstreamManager(nc);
      const name = uniqueName("STACK");
      await jsm.streams.add({ name, subjects: [`${name}.>`] });
      const js = jetstream(nc);
      const ack = await js.publish(`${name}.hello`, "world");
      expect(ack.seq).toBe(1);

      await jsm.consumers.add(name, { durable_name: "reader", ack_policy: "explicit" });
      const consumer = await js.consumers.get(name, "reader");
      const message = await consumer.next({ expires: 5_000 });
      expect(message?.string()).toBe("world");
      message?.ack();

      expect(await jsm.streams.delete(name)).toBe(true);
      const version = nc.info?.version ?? "0.0.0";
      const [major = 0, minor = 0] = version.split(".").map(Number);
      expect(major * 100 + minor).toBeGreaterThanOrEqual(212);
    } finally {
      await nc.close();
    }
  });
});

describe("Valkey", () => {
  let valkey: Valkey;
  beforeAll(() => {
    const { url, user, password } = valkeyLogin(stack());
    valkey = new Valkey(url, {
      ...(user ? { username: user } : {}),
      ...(password ? { password } : {}),
    });
  });
  afterAll(async () => {
    await valkey.quit();
  });

  it("sets and gets keys", async () => {
    const key = uniqueName("stack");
    await valkey.set(key, "value");
    expect(await valkey.get(key)).toBe("value");
    expect(await valkey.del(key)).toBe(1);
    const info = await valkey.info("server");
    const version = /valkey_version:(\d+)/.exec(info)?.[1];
    expect(Number(version)).toBeGreaterThanOrEqual(8);
  });
});

describe("Neo4j", () => {
  it("writes and reads with Cypher", async () => {
    const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
    const driver = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
    try {
      const id = uniqueName("node");
      await driver.executeQuery("CREATE (:StackCheck {id: $id, n: 42})", { id });
      const { records } = await driver.executeQuery(
        "MATCH (s:StackCheck {id: $id}) RETURN s.n AS n",
        { id },
      );
      expect(records.map((r) => Number(r.get("n")))).toEqual([42]);
      await driver.executeQuery("MATCH (s:StackCheck {id: $id}) DELETE s", { id });
      const server = await driver.getServerInfo();
      expect(server.agent).toMatch(/Neo4j\/5\.26/);
    } finally {
      await driver.close();
    }
  });
});
