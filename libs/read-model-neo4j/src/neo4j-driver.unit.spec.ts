import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, storesSchema } from "@ctx/config";
import { configProblems } from "@ctx/config/testing";
import { describe, expect, it } from "vitest";
import { neo4jConnection } from "./neo4j-driver.ts";

const dir = mkdtempSync(join(tmpdir(), "neo4j-config-"));
const passwordFile = join(dir, "password");
writeFileSync(passwordFile, "s3cret\n");
const caFile = join(dir, "ca.pem");
writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");

const connectionOf = (env: Record<string, string>) =>
  neo4jConnection(loadConfig(storesSchema, env));

describe("neo4jConnection", () => {
  it("takes the password from NEO4J_PASSWORD_FILE and the CA's path from NEO4J_TLS_CA", () => {
    expect(
      connectionOf({
        NEO4J_URL: "bolt+s://127.0.0.1:7687",
        NEO4J_PASSWORD_FILE: passwordFile,
        NEO4J_TLS_CA: caFile,
      }),
    ).toEqual({
      url: "bolt+s://127.0.0.1:7687",
      user: "neo4j",
      password: "s3cret",
      tlsCaFile: caFile,
    });
  });

  it("refuses two passwords, and a CA with a plain URL", () => {
    expect(
      configProblems(() =>
        connectionOf({
          NEO4J_PASSWORD: "x",
          NEO4J_PASSWORD_FILE: passwordFile,
          NEO4J_TLS_CA: caFile,
        }),
      ),
    ).toEqual(["NEO4J_PASSWORD", "NEO4J_TLS_CA"]);
  });
});
