import { loadConfig, rpcServerSchema } from "@ctx/config";
import { describe, expect, it } from "vitest";
import { defaultRpcLimits, resolveRpcLimits, rpcLimitsOf } from "./limits.ts";

describe("the RPC server's limits", () => {
  it("given no settings, then the documented defaults", () => {
    expect(rpcLimitsOf(loadConfig(rpcServerSchema, {}))).toEqual(defaultRpcLimits);
    expect(resolveRpcLimits()).toEqual(defaultRpcLimits);
  });

  it("given each RPC_* setting, then the limit it names takes its value", () => {
    const settings = {
      RPC_MAX_REQUEST_BYTES: ["maxRequestBytes", 1],
      RPC_MAX_RESPONSE_BYTES: ["maxResponseBytes", 2],
      RPC_MAX_DEADLINE_MS: ["maxDeadlineMs", 3],
      RPC_MAX_STREAM_DEADLINE_MS: ["maxStreamDeadlineMs", 4],
      RPC_REQUEST_READ_TIMEOUT_MS: ["requestReadTimeoutMs", 5],
      RPC_MAX_QUEUED_CALLS: ["maxQueuedCalls", 6],
      RPC_MAX_CONCURRENT_STREAMS: ["maxConcurrentStreams", 7],
      RPC_MAX_CONNECTIONS: ["maxConnections", 8],
      RPC_HANDSHAKE_TIMEOUT_MS: ["handshakeTimeoutMs", 9],
      RPC_IDLE_TIMEOUT_MS: ["idleTimeoutMs", 10],
      RPC_KEEPALIVE_INTERVAL_MS: ["keepaliveIntervalMs", 11],
      RPC_KEEPALIVE_TIMEOUT_MS: ["keepaliveTimeoutMs", 12],
    } as const;
    const env = Object.fromEntries(Object.entries(settings).map(([k, [, v]]) => [k, String(v)]));
    const limits = rpcLimitsOf(loadConfig(rpcServerSchema, env));
    expect(limits).toEqual(Object.fromEntries(Object.values(settings)));
  });

  it("given a limit that is not a whole number, or 0 where 0 does not mean off, then a RangeError naming it", () => {
    expect(() => resolveRpcLimits({ maxRequestBytes: 0 })).toThrow(/maxRequestBytes/);
    expect(() => resolveRpcLimits({ maxDeadlineMs: 1.5 })).toThrow(/maxDeadlineMs/);
    expect(resolveRpcLimits({ idleTimeoutMs: 0, keepaliveIntervalMs: 0 })).toMatchObject({
      idleTimeoutMs: 0,
      keepaliveIntervalMs: 0,
    });
  });
});
