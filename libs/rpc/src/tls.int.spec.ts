import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import { Health } from "@ctx/proto/grpc";
import { createTestPki, type TestCertificate, type TestPki, testAuth } from "@ctx/test-support";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccessPolicy } from "./access-policy.ts";
import { createAuthenticator } from "./authenticator.ts";
import { startOpsListeners } from "./ops-server.ts";
import { Role } from "./principal.ts";
import {
  bearer,
  type Protocol,
  protocols,
  startTestServer,
  type TestServer,
} from "./testing/rpc-test-server.ts";

// TLS on the gRPC listener, and client certificates as credentials (AUTH=jwt,mtls): the subject
// CN is the principal, the OUs its roles. Certificates from the private CA of deploy/local/pki.sh.

let pki: TestPki;
let otherPki: TestPki;
let server: TestCertificate;
let alice: TestCertificate;
let nobody: TestCertificate;
let stranger: TestCertificate;
let t: TestServer;

beforeAll(async () => {
  pki = await createTestPki();
  otherPki = await createTestPki();
  server = await pki.server("rpc");
  alice = await pki.client("alice", "alice", [Role.writer, Role.reader]);
  nobody = await pki.client("nobody");
  stranger = await otherPki.client("stranger", "alice", [Role.admin]);
  const auth = testAuth();
  t = await startTestServer({
    tls: { cert: server.cert, key: server.key, clientCa: pki.ca },
    auth: {
      authenticator: await createAuthenticator({
        mtls: true,
        jwt: { jwksFile: auth.jwksFile, issuer: auth.issuer, audience: auth.audience },
      }),
      policy: createAccessPolicy([
        { service: ContextCommandService, roles: [Role.writer] },
        { service: ContextQueryService, roles: [Role.reader] },
      ]),
    },
  });
}, 60_000);
afterAll(async () => {
  await t?.close();
});

/** A transport over TLS that trusts the private CA, with a client certificate or not. */
function transport(
  protocol: Protocol,
  client?: TestCertificate,
  authorization?: string,
  httpVersion: "1.1" | "2" = "2",
) {
  const options = {
    baseUrl: t.url,
    nodeOptions: { ca: pki.ca, ...(client ? { cert: client.cert, key: client.key } : {}) },
    ...(authorization ? { interceptors: [bearer(authorization)] } : {}),
  };
  if (protocol === "grpc") return createGrpcTransport(options);
  if (protocol === "grpc-web") return createGrpcWebTransport({ ...options, httpVersion });
  return createConnectTransport({ ...options, httpVersion });
}

async function codeOf(call: () => Promise<unknown>): Promise<Code | undefined> {
  try {
    await call();
    return undefined;
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("TLS on the gRPC listener", () => {
  it("serves https URLs", () => {
    expect(t.url).toMatch(/^https:/);
  });

  for (const protocol of protocols) {
    it(`given a bearer token over TLS, over ${protocol}, then the call is served`, async () => {
      const client = createClient(
        ContextQueryService,
        transport(protocol, undefined, testAuth().authorization),
      );
      expect((await client.getContext({ storyId: "tls" })).context?.storyId).toBe("tls");
    });

    it(`given a client certificate with the role, over ${protocol}, then its CN is the principal`, async () => {
      const story = `mtls-${protocol}`;
      const client = createClient(ContextCommandService, transport(protocol, alice));
      expect((await client.createContext({ storyId: story, title: "T" })).result?.version).toBe(1);
      expect(t.principals.get(story)).toEqual({
        id: "mtls:alice",
        method: "mtls",
        roles: new Set([Role.writer, Role.reader]),
      });
    });
  }

  // Browsers and plain HTTP clients over TLS: ALPN picks HTTP/1.1 on the same port.
  for (const protocol of ["connect", "grpc-web"] as const) {
    it(`given ${protocol} over HTTP/1.1 and TLS, then a token and a client certificate work as over HTTP/2`, async () => {
      const reader = createClient(
        ContextQueryService,
        transport(protocol, undefined, testAuth().authorization, "1.1"),
      );
      expect((await reader.getContext({ storyId: "tls-h1" })).context?.storyId).toBe("tls-h1");
      const story = `mtls-h1-${protocol}`;
      const writer = createClient(
        ContextCommandService,
        transport(protocol, alice, undefined, "1.1"),
      );
      expect((await writer.createContext({ storyId: story, title: "T" })).result?.version).toBe(1);
      expect(t.principals.get(story)?.id).toBe("mtls:alice");
      const denied = createClient(
        ContextCommandService,
        transport(protocol, nobody, undefined, "1.1"),
      );
      expect(await codeOf(() => denied.createContext({ storyId: "s", title: "T" }))).toBe(
        Code.PermissionDenied,
      );
    });
  }

  it("given a client certificate without the role, then the call is PERMISSION_DENIED", async () => {
    const client = createClient(ContextCommandService, transport("grpc", nobody));
    expect(await codeOf(() => client.createContext({ storyId: "s", title: "T" }))).toBe(
      Code.PermissionDenied,
    );
  });

  it("given neither certificate nor token, then calls are UNAUTHENTICATED and health is open", async () => {
    const client = createClient(ContextQueryService, transport("grpc"));
    expect(await codeOf(() => client.getContext({ storyId: "s" }))).toBe(Code.Unauthenticated);
    const health = createClient(Health, transport("grpc"));
    expect(await codeOf(() => health.check({ service: "" }))).toBeUndefined();
  });

  it("given a certificate of another CA (even with admin in its OU), then the call is UNAUTHENTICATED", async () => {
    const before = await t.metric("ctx_rpc_auth_refused_total", {
      reason: "untrusted_certificate",
    });
    const client = createClient(ContextQueryService, transport("grpc", stranger));
    expect(await codeOf(() => client.getContext({ storyId: "s" }))).toBe(Code.Unauthenticated);
    expect(await t.metric("ctx_rpc_auth_refused_total", { reason: "untrusted_certificate" })).toBe(
      before + 1,
    );
  });

  it("given a certificate and a bad token, then the token decides (UNAUTHENTICATED)", async () => {
    const client = createClient(ContextCommandService, transport("grpc", alice, "Bearer bad"));
    expect(await codeOf(() => client.createContext({ storyId: "s", title: "T" }))).toBe(
      Code.Unauthenticated,
    );
  });
});

describe("the ops listeners", () => {
  it("given TLS and METRICS_LISTEN, then probes answer over HTTPS on one port and /metrics on the other only", async () => {
    const ops = await startOpsListeners({
      host: "127.0.0.1",
      port: 0,
      registry: new Registry(),
      ready: () => true,
      tls: { cert: server.cert, key: server.key },
      metricsListen: { host: "127.0.0.1", port: 0 },
    });
    try {
      expect(ops.metricsPort).not.toBe(ops.port);
      expect(await pki.httpsStatus(ops.port, "/healthz")).toBe(200);
      expect(await pki.httpsStatus(ops.port, "/readyz")).toBe(200);
      expect(await pki.httpsStatus(ops.port, "/metrics")).toBe(404);
      expect(await pki.httpsStatus(ops.metricsPort, "/metrics")).toBe(200);
      expect(await pki.httpsStatus(ops.metricsPort, "/readyz")).toBe(404);
    } finally {
      await ops.close();
    }
  });
});
