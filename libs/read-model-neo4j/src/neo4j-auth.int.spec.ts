import { loadConfig, storesSchema } from "@ctx/config";
import { stack } from "@ctx/test-support";
import neo4j, { type Driver } from "neo4j-driver";
import { afterEach, describe, expect, it } from "vitest";
import { createNeo4jDriver, neo4jConnection } from "./neo4j-driver.ts";

// The stack's Neo4j runs with authentication on (deploy/local/neo4j.sh, generated password).

let driver: Driver | undefined;
afterEach(async () => {
  await driver?.close();
  driver = undefined;
});

describe("Neo4j authentication", () => {
  it("lets in the user neo4j with the password of NEO4J_PASSWORD_FILE", async () => {
    const s = stack();
    const config = loadConfig(storesSchema, {
      NEO4J_URL: s.neo4jUrl,
      NEO4J_USER: s.neo4jUser,
      NEO4J_PASSWORD_FILE: s.neo4jPasswordFile,
    });
    driver = createNeo4jDriver(neo4jConnection(config));
    const { records } = await driver.executeQuery("RETURN 1 AS one");
    expect(records[0]?.get("one").toNumber()).toBe(1);
  });

  it("refuses a wrong password", async () => {
    driver = neo4j.driver(stack().neo4jUrl, neo4j.auth.basic("neo4j", "not-the-password"));
    await expect(driver.verifyConnectivity()).rejects.toMatchObject({
      code: "Neo.ClientError.Security.Unauthorized",
    });
  });

  it("refuses a client without credentials", async () => {
    driver = neo4j.driver(stack().neo4jUrl);
    await expect(driver.verifyConnectivity()).rejects.toMatchObject({
      code: expect.stringMatching(/^Neo\.ClientError\.Security\./),
    });
  });
});
