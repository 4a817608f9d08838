import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, storesSchema } from "@ctx/config";
import { configProblems } from "@ctx/config/testing";
import { describe, expect, it } from "vitest";
import { valkeyConnection } from "./valkey-client.ts";

const dir = mkdtempSync(join(tmpdir(), "valkey-config-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

const connectionOf = (env: Record<string, string>) =>
  valkeyConnection(loadConfig(storesSchema, env));

describe("valkeyConnection", () => {
  it("logs in as VALKEY_USER with the password of VALKEY_PASSWORD_FILE, without its newline", () => {
    const connection = connectionOf({
      VALKEY_URL: "rediss://127.0.0.1:6380",
      VALKEY_USER: "query",
      VALKEY_PASSWORD_FILE: file("password", "s3cret\n"),
      VALKEY_TLS_CA: file("ca.pem", pem),
    });
    expect(connection).toEqual({
      url: "rediss://127.0.0.1:6380",
      user: "query",
      password: "s3cret",
      tls: { ca: pem, cert: undefined, key: undefined },
    });
  });

  it("names the variable of a missing, empty or non-PEM file", () => {
    expect(
      configProblems(() =>
        connectionOf({
          VALKEY_PASSWORD_FILE: join(dir, "absent"),
          VALKEY_TLS_CA: file("not-pem", "hello"),
        }),
      ),
    ).toEqual(["VALKEY_PASSWORD_FILE", "VALKEY_TLS_CA"]);
    expect(
      configProblems(() => connectionOf({ VALKEY_PASSWORD_FILE: file("empty", "\n") })),
    ).toEqual(["VALKEY_PASSWORD_FILE"]);
  });

  it("refuses TLS files with a plain URL, a certificate without its key, credentials in the URL", () => {
    expect(configProblems(() => connectionOf({ VALKEY_TLS_CA: file("ca2.pem", pem) }))).toEqual([
      "VALKEY_TLS_CA",
    ]);
    expect(
      configProblems(() =>
        connectionOf({ VALKEY_URL: "rediss://127.0.0.1:1", VALKEY_TLS_CERT: file("c.pem", pem) }),
      ),
    ).toEqual(["VALKEY_TLS_KEY"]);
    expect(configProblems(() => connectionOf({ VALKEY_URL: "redis://u:p@127.0.0.1:1" }))).toEqual([
      "VALKEY_URL",
    ]);
  });
});
