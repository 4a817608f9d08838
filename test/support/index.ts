import { inject } from "vitest";
import type { StackEndpoints } from "./endpoints.ts";

export type { StackEndpoints } from "./endpoints.ts";
export type { EventuallyOptions } from "./eventually.ts";
export { eventually } from "./eventually.ts";
export type { Neo4jServer } from "./neo4j-server.ts";
export { startNeo4jServer } from "./neo4j-server.ts";
export type { TestCertificate, TestPki } from "./pki.ts";
export { createTestPki } from "./pki.ts";
export type { TcpProxy } from "./tcp-proxy.ts";
export { startTcpProxy } from "./tcp-proxy.ts";
export { uniqueName } from "./unique-name.ts";

/** The servers of this test run (from the global setup). */
export function stack(): StackEndpoints {
  return inject("stack");
}
export type { SignOptions, TestAuth, TestKey } from "./test-auth.ts";
export { createTestAuth, sendTestToken, signJwt, testAuth } from "./test-auth.ts";
