import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  type ConfigError,
  defaultCallsPerTurn,
  env,
  eventStreamSchema,
  isConfigError,
  loadConfig,
  rpcServerDefaults,
  rpcServerSchema,
  splitUrls,
  storesSchema,
} from "./index.ts";

describe("loadConfig", () => {
  it("applies defaults when variables are unset or empty", () => {
    const config = loadConfig(storesSchema, { NATS_URL: "" });
    expect(config.NATS_URL).toBe("nats://127.0.0.1:4222");
    expect(config.LOG_LEVEL).toBe("info");
  });

  it("writes envelope version 2 by default, 1 when asked, and refuses any other by name", () => {
    expect(loadConfig(eventStreamSchema, {}).EVENT_ENVELOPE_VERSION).toBe(2);
    expect(
      loadConfig(eventStreamSchema, { EVENT_ENVELOPE_VERSION: "1" }).EVENT_ENVELOPE_VERSION,
    ).toBe(1);
    for (const bad of ["3", "0", "two"]) {
      let error: unknown;
      try {
        loadConfig(eventStreamSchema, { EVENT_ENVELOPE_VERSION: bad });
      } catch (e) {
        error = e;
      }
      expect(isConfigError(error)).toBe(true);
      expect((error as ConfigError).message).toContain("EVENT_ENVELOPE_VERSION");
    }
  });

  it("parses ports, booleans and listen addresses", () => {
    const schema = z.object({
      PORT: env.port(1),
      ON: env.bool(false),
      LISTEN: env.listen("127.0.0.1:50051"),
    });
    expect(loadConfig(schema, { PORT: "8080", ON: "yes", LISTEN: "0.0.0.0:9" })).toEqual({
      PORT: 8080,
      ON: true,
      LISTEN: { host: "0.0.0.0", port: 9 },
    });
    expect(loadConfig(schema, {}).LISTEN).toEqual({ host: "127.0.0.1", port: 50051 });
  });

  it("takes 0 calls per turn (no limit) and refuses fewer or parts of calls", () => {
    expect(loadConfig(rpcServerSchema, {}).RPC_CALLS_PER_TURN).toBe(defaultCallsPerTurn);
    expect(loadConfig(rpcServerSchema, { RPC_CALLS_PER_TURN: "0" }).RPC_CALLS_PER_TURN).toBe(0);
    for (const bad of ["-1", "1.5"]) {
      expect(() => loadConfig(rpcServerSchema, { RPC_CALLS_PER_TURN: bad })).toThrow(
        /RPC_CALLS_PER_TURN/,
      );
    }
  });

  it("gives the RPC server's documented limits by default and refuses bad ones by name", () => {
    const config = loadConfig(rpcServerSchema, {});
    expect(config).toMatchObject({
      RPC_MAX_REQUEST_BYTES: rpcServerDefaults.maxRequestBytes,
      RPC_MAX_RESPONSE_BYTES: 4 * 1024 * 1024,
      RPC_MAX_DEADLINE_MS: 30_000,
      RPC_MAX_STREAM_DEADLINE_MS: 0,
      RPC_REQUEST_READ_TIMEOUT_MS: 10_000,
      RPC_MAX_QUEUED_CALLS: 1_000,
      RPC_MAX_CONCURRENT_STREAMS: 512,
      RPC_MAX_CONNECTIONS: 1_000,
      RPC_HANDSHAKE_TIMEOUT_MS: 10_000,
      RPC_IDLE_TIMEOUT_MS: 60_000,
      RPC_KEEPALIVE_INTERVAL_MS: 10_000,
      RPC_KEEPALIVE_TIMEOUT_MS: 5_000,
    });
    // 0 turns off what may be off; nothing else.
    expect(loadConfig(rpcServerSchema, { RPC_IDLE_TIMEOUT_MS: "0" }).RPC_IDLE_TIMEOUT_MS).toBe(0);
    for (const [name, bad] of [
      ["RPC_MAX_REQUEST_BYTES", "0"],
      ["RPC_MAX_DEADLINE_MS", "0"],
      ["RPC_MAX_QUEUED_CALLS", "-1"],
      ["RPC_KEEPALIVE_TIMEOUT_MS", "1.5"],
      ["RPC_HANDSHAKE_TIMEOUT_MS", String(2 ** 31)],
      ["RPC_MAX_REQUEST_BYTES", String(2 ** 32)],
    ] as const) {
      expect(() => loadConfig(rpcServerSchema, { [name]: bad }), `${name}=${bad}`).toThrow(
        new RegExp(name),
      );
    }
  });

  it("takes CORS origins as exact web origins or *, none by default, and names a bad one", () => {
    expect(loadConfig(rpcServerSchema, {}).RPC_CORS_ORIGINS).toEqual([]);
    expect(
      loadConfig(rpcServerSchema, {
        RPC_CORS_ORIGINS: "https://app.example.com, http://localhost:5173",
      }).RPC_CORS_ORIGINS,
    ).toEqual(["https://app.example.com", "http://localhost:5173"]);
    expect(loadConfig(rpcServerSchema, { RPC_CORS_ORIGINS: "*" }).RPC_CORS_ORIGINS).toEqual(["*"]);
    for (const bad of [
      "app.example.com",
      "https://app.example.com/",
      "ftp://x.example",
      "https://a/b",
    ]) {
      expect(() => loadConfig(rpcServerSchema, { RPC_CORS_ORIGINS: bad }), bad).toThrow(
        /RPC_CORS_ORIGINS: .* is not an origin/,
      );
    }
  });

  it("takes a comma-separated list of NATS URLs (a cluster's seeds) and refuses a bad entry", () => {
    const list = "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224";
    expect(loadConfig(storesSchema, { NATS_URL: list }).NATS_URL).toBe(list);
    expect(splitUrls(list)).toEqual([
      "nats://127.0.0.1:4222",
      "nats://127.0.0.1:4223",
      "nats://127.0.0.1:4224",
    ]);
    expect(() =>
      loadConfig(storesSchema, { NATS_URL: "nats://127.0.0.1:4222,http://127.0.0.1:4223" }),
    ).toThrow(/NATS_URL: must be a URL with scheme nats or tls, or a comma-separated list/);
    expect(() => loadConfig(storesSchema, { NATS_URL: " , " })).toThrow(
      /NATS_URL: must name at least one URL/,
    );
  });

  it("fails naming every bad variable", () => {
    const schema = z.object({ PORT: env.port(1), NATS_URL: storesSchema.shape.NATS_URL });
    let error: unknown;
    try {
      loadConfig(schema, { PORT: "70000", NATS_URL: "http://x" });
    } catch (e) {
      error = e;
    }
    expect(isConfigError(error)).toBe(true);
    const problems = (error as ConfigError).problems.map((p) => p.variable);
    expect(problems).toEqual(["PORT", "NATS_URL"]);
    expect((error as Error).message).toMatch(/PORT: .*; NATS_URL: must be a URL with scheme nats/);
  });
});
