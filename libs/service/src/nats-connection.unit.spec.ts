import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "@ctx/config";
import { configProblems } from "@ctx/config/testing";
import { nkeys } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import {
  definesNatsConnection,
  natsConnectionOf,
  natsConnectionSchema,
  natsConnectOptions,
  prefixedNatsConnectionSchema,
} from "./nats-connection.ts";

const dir = mkdtempSync(join(tmpdir(), "ctx-nats-config-"));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
const files = {
  password: file("password", "s3cret\n"),
  token: file("token", "t0ken\n"),
  seed: file("user.nk", `${seed}\n`),
  creds: file(
    "user.creds",
    `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
  ),
  ca: file("ca.pem", "CA"),
  cert: file("cert.pem", "CERT"),
  key: file("key.pem", "KEY"),
};

const settingsOf = (env: Record<string, string>, prefix = "") =>
  natsConnectionOf(
    loadConfig(
      prefix === ""
        ? natsConnectionSchema
        : natsConnectionSchema.extend(prefixedNatsConnectionSchema(prefix).shape),
      env,
    ),
    prefix,
  );

/** The variables a ConfigError names, or the error when it is not one. */
const problemsOf = (env: Record<string, string>, prefix = ""): string[] =>
  configProblems(() => settingsOf(env, prefix));

describe("the NATS connection configuration", () => {
  it("connects anonymously over plain TCP when nothing else is set", () => {
    const s = settingsOf({});
    expect(s).toEqual({
      url: "nats://127.0.0.1:4222",
      auth: { kind: "none" },
      tls: undefined,
      inboxPrefix: undefined,
      pingIntervalMs: 10_000,
      maxPingsOut: 2,
    });
    expect(natsConnectOptions(s)).toEqual({
      servers: ["nats://127.0.0.1:4222"],
      pingInterval: 10_000,
      maxPingOut: 2,
      timeout: 5_000,
    });
  });

  it("pings the server every NATS_PING_INTERVAL_MS and reconnects after NATS_MAX_PINGS_OUT unanswered, for every identity", () => {
    const env = {
      NATS_PING_INTERVAL_MS: "3000",
      NATS_MAX_PINGS_OUT: "3",
      SNAPSHOTTER_NATS_TOKEN_FILE: files.token,
    };
    const config = loadConfig(
      natsConnectionSchema.extend(prefixedNatsConnectionSchema("SNAPSHOTTER_").shape),
      env,
    );
    for (const prefix of ["", "SNAPSHOTTER_"]) {
      expect(natsConnectOptions(natsConnectionOf(config, prefix))).toMatchObject({
        pingInterval: 3_000,
        maxPingOut: 3,
      });
    }
    // Not an identity's variable: setting it names no second identity.
    expect(definesNatsConnection({ SNAPSHOTTER_NATS_PING_INTERVAL_MS: "1" }, "SNAPSHOTTER_")).toBe(
      false,
    );
    expect(problemsOf({ NATS_PING_INTERVAL_MS: "0" })).toEqual(["NATS_PING_INTERVAL_MS"]);
  });

  it("reads each authentication method from its file", () => {
    expect(settingsOf({ NATS_USER: "svc", NATS_PASSWORD_FILE: files.password }).auth).toEqual({
      kind: "password",
      user: "svc",
      passwordFile: files.password,
    });
    expect(settingsOf({ NATS_TOKEN_FILE: files.token }).auth.kind).toBe("token");
    expect(settingsOf({ NATS_NKEY_SEED_FILE: files.seed }).auth.kind).toBe("nkey");
    expect(settingsOf({ NATS_CREDS: files.creds }).auth.kind).toBe("creds");
  });

  it("turns every method into a nats.js authenticator that answers with the file's secret", () => {
    const nonce = "bm9uY2U";
    const auth = (env: Record<string, string>) => {
      const authenticator = natsConnectOptions(settingsOf(env)).authenticator;
      if (typeof authenticator !== "function") throw new Error("no authenticator");
      return authenticator(nonce);
    };
    expect(auth({ NATS_USER: "svc", NATS_PASSWORD_FILE: files.password })).toEqual({
      user: "svc",
      pass: "s3cret",
    });
    expect(auth({ NATS_TOKEN_FILE: files.token })).toEqual({ auth_token: "t0ken" });
    const publicKey = nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
    expect(auth({ NATS_NKEY_SEED_FILE: files.seed })).toMatchObject({ nkey: publicKey });
    // A .creds file: its JWT is sent, the nonce signed with its seed.
    expect(auth({ NATS_CREDS: files.creds })).toMatchObject({
      jwt: "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig",
      sig: expect.any(String),
    });
  });

  it("turns TLS on with a tls:// URL or a CA, and passes a client certificate with its key", () => {
    expect(settingsOf({ NATS_URL: "tls://nats.example:4222" }).tls).toEqual({});
    const s = settingsOf({
      NATS_TLS_CA: files.ca,
      NATS_TLS_CERT: files.cert,
      NATS_TLS_KEY: files.key,
      NATS_INBOX_PREFIX: "_INBOX_query",
    });
    expect(natsConnectOptions(s)).toMatchObject({
      tls: { caFile: files.ca, certFile: files.cert, keyFile: files.key },
      inboxPrefix: "_INBOX_query",
    });
  });

  it("gives nats.js every server of a comma-separated NATS_URL (a cluster's seeds)", () => {
    const s = settingsOf({ NATS_URL: "tls://n0.example:4222,tls://n1.example:4222" });
    expect(s.tls).toEqual({});
    expect(natsConnectOptions(s).servers).toEqual([
      "tls://n0.example:4222",
      "tls://n1.example:4222",
    ]);
  });

  it("refuses two authentication methods, naming the second", () => {
    expect(problemsOf({ NATS_TOKEN_FILE: files.token, NATS_NKEY_SEED_FILE: files.seed })).toEqual([
      "NATS_NKEY_SEED_FILE",
    ]);
  });

  it("refuses a user without a password file and the other way round", () => {
    expect(problemsOf({ NATS_USER: "svc" })).toEqual(["NATS_PASSWORD_FILE"]);
    expect(problemsOf({ NATS_PASSWORD_FILE: files.password })).toEqual(["NATS_USER"]);
  });

  it("refuses a certificate without its key, and a key without its certificate", () => {
    expect(problemsOf({ NATS_TLS_CERT: files.cert })).toEqual(["NATS_TLS_KEY"]);
    expect(problemsOf({ NATS_TLS_KEY: files.key })).toEqual(["NATS_TLS_CERT"]);
  });

  it("names a secret file it cannot read", () => {
    expect(problemsOf({ NATS_NKEY_SEED_FILE: join(dir, "missing.nk") })).toEqual([
      "NATS_NKEY_SEED_FILE",
    ]);
  });

  it("refuses a URL of another scheme and an inbox prefix with wildcards", () => {
    expect(() => settingsOf({ NATS_URL: "http://127.0.0.1:4222" })).toThrow(/NATS_URL/);
    expect(() => settingsOf({ NATS_INBOX_PREFIX: "_INBOX.>" })).toThrow(/NATS_INBOX_PREFIX/);
  });

  it("reads a second identity under a prefix, on the unprefixed URL unless it has its own", () => {
    const env = {
      NATS_URL: "nats://10.0.0.1:4222",
      NATS_NKEY_SEED_FILE: files.seed,
      SNAPSHOTTER_NATS_TOKEN_FILE: files.token,
      SNAPSHOTTER_NATS_INBOX_PREFIX: "_INBOX_snapshotter",
    };
    const config = loadConfig(
      natsConnectionSchema.extend(prefixedNatsConnectionSchema("SNAPSHOTTER_").shape),
      env,
    );
    expect(definesNatsConnection(config, "SNAPSHOTTER_")).toBe(true);
    expect(definesNatsConnection(config, "OTHER_")).toBe(false);
    expect(natsConnectionOf(config, "SNAPSHOTTER_")).toEqual({
      url: "nats://10.0.0.1:4222",
      auth: { kind: "token", tokenFile: files.token },
      tls: undefined,
      inboxPrefix: "_INBOX_snapshotter",
      pingIntervalMs: 10_000,
      maxPingsOut: 2,
    });
    expect(
      problemsOf(
        { SNAPSHOTTER_NATS_USER: "snap", SNAPSHOTTER_NATS_TOKEN_FILE: files.token },
        "SNAPSHOTTER_",
      ),
    ).toEqual(["SNAPSHOTTER_NATS_PASSWORD_FILE"]);
  });
});
