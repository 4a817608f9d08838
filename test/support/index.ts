import { connectNats, natsConnectionOf } from "@ctx/service";
import type { ConnectionOptions, NatsConnection } from "@nats-io/transport-node";
import { inject } from "vitest";
import type { StackEndpoints } from "./endpoints.ts";

export type { StackEndpoints, StoreLogin, ValkeyRole } from "./endpoints.ts";
export type { EventuallyOptions } from "./eventually.ts";
export { eventually } from "./eventually.ts";
export { freePort } from "./local-stack.ts";
export { metricSum, sumOfSamples } from "./metric-samples.ts";
export type {
  NatsServerOptions,
  TestNatsCluster,
  TestNatsNode,
  TestNatsServer,
} from "./nats-server.ts";
export { startNatsCluster, startNatsServer } from "./nats-server.ts";
export type { Neo4jServer } from "./neo4j-server.ts";
export { startNeo4jServer } from "./neo4j-server.ts";
export type { TestCertificate, TestPki } from "./pki.ts";
export { createTestPki } from "./pki.ts";
export type { ValkeyLogin } from "./store-logins.ts";
export { neo4jEnv, storeEnv, valkeyEnv, valkeyLogin } from "./store-logins.ts";
export type { TcpProxy } from "./tcp-proxy.ts";
export { startTcpProxy } from "./tcp-proxy.ts";
export { uniqueName } from "./unique-name.ts";
export type { ValkeyServer } from "./valkey-server.ts";
export { startValkeyServer } from "./valkey-server.ts";

/** The servers of this test run (from the global setup). */
export function stack(): StackEndpoints {
  return inject("stack");
}
export type { SignOptions, TestAuth, TestKey } from "./test-auth.ts";
export { createTestAuth, sendTestToken, signJwt, testAuth } from "./test-auth.ts";

/**
 * A connection to the test run's NATS as its test identity (see StackEndpoints.natsEnv); `options`
 * adds name, reconnects, timeouts. `url` connects elsewhere (a proxy) with the same credentials.
 */
export function connectTestNats(
  options: Omit<ConnectionOptions, "servers" | "authenticator" | "tls" | "inboxPrefix"> & {
    readonly url?: string;
  } = {},
): Promise<NatsConnection> {
  const { url, ...rest } = options;
  const env = stack().natsEnv;
  return connectNats(natsConnectionOf(url === undefined ? env : { ...env, NATS_URL: url }), rest);
}
export { type CtxRun, runCtx } from "./run-ctx.ts";
export { runVerifyChain } from "./verify-chain.ts";
