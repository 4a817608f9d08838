import { type Neo4jServer, startNeo4jServer } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNeo4jDriver, type Neo4jConnection } from "./neo4j-driver.ts";

// A Neo4j of its own whose Bolt speaks TLS only (deploy/local/neo4j.sh, NEO4J_TLS=1), certificate
// from a private CA: what NEO4J_URL=bolt+s://… with NEO4J_TLS_CA reaches.

let server: Neo4jServer;
beforeAll(async () => {
  server = await startNeo4jServer({ tls: true, heap: "256m" });
}, 300_000);
afterAll(async () => {
  await server?.remove();
}, 120_000);

async function connects(connection: Neo4jConnection): Promise<void> {
  const driver = createNeo4jDriver(connection, { connectionTimeout: 5_000 });
  try {
    await driver.verifyConnectivity();
  } finally {
    await driver.close();
  }
}

describe("Neo4j over TLS", () => {
  it("answers a bolt+s:// driver that trusts the CA of NEO4J_TLS_CA", async () => {
    const { url, user, password, caFile } = server;
    const driver = createNeo4jDriver({ url, user, password, tlsCaFile: caFile });
    try {
      const { records } = await driver.executeQuery("RETURN 1 AS one");
      expect(records[0]?.get("one").toNumber()).toBe(1);
    } finally {
      await driver.close();
    }
  });

  it("refuses plain Bolt, and a driver that does not trust the private CA", async () => {
    const { user, password } = server;
    await expect(
      connects({ url: server.url.replace("bolt+s:", "bolt:"), user, password }),
    ).rejects.toThrow();
    await expect(connects({ url: server.url, user, password })).rejects.toThrow();
  });
});
