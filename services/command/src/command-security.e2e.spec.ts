import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLogger, isConfigError } from "@ctx/config";
import { storyId } from "@ctx/domain";
import { ContextCommandService } from "@ctx/proto";
import {
  createTestPki,
  freePort,
  stack,
  type TestPki,
  testAuth,
  uniqueName,
} from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCommandApp } from "./app.ts";
import { loadCommandConfig } from "./config.ts";
import { type CommandHarness, startCommandHarness } from "./testing/command-harness.ts";

// The command service as configured by its security variables: TLS on the gRPC and ops listeners,
// client certificates (AUTH=jwt,mtls), /metrics apart, and a configuration that is refused.

let pki: TestPki;
let h: CommandHarness;
let metricsPort: number;

beforeAll(async () => {
  pki = await createTestPki();
  const server = await pki.server("command");
  const metrics = await pki.server("metrics-port");
  metricsPort = await freePort();
  h = await startCommandHarness({
    natsUrl: stack().natsUrl,
    env: {
      AUTH: "jwt,mtls",
      RPC_TLS_CERT_FILE: server.certFile,
      RPC_TLS_KEY_FILE: server.keyFile,
      RPC_TLS_CLIENT_CA_FILE: pki.caFile,
      OPS_TLS_CERT_FILE: metrics.certFile,
      OPS_TLS_KEY_FILE: metrics.keyFile,
      METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.stop();
});

describe("TLS and client certificates from the configuration", () => {
  it("given a client certificate with the writer OU, then its commands are stored under mtls:<CN>", async () => {
    const alice = await pki.client("alice", "alice", ["writer"]);
    const client = createClient(
      ContextCommandService,
      createGrpcTransport({
        baseUrl: `https://${h.address}`,
        nodeOptions: { ca: pki.ca, cert: alice.cert, key: alice.key },
      }),
    );
    const story = uniqueName("story");
    expect((await client.createContext({ storyId: story, title: "T" })).result?.version).toBe(1);
    const [event] = await h.store.read(storyId(story));
    expect(event?.envelope.principal).toBe("mtls:alice");
  });

  it("given a bearer token over TLS, then it is served too; without either, UNAUTHENTICATED", async () => {
    const transport = (authorization?: string) =>
      createGrpcTransport({
        baseUrl: `https://${h.address}`,
        nodeOptions: { ca: pki.ca },
        ...(authorization
          ? {
              interceptors: [
                (next) => (req) => {
                  req.header.set("authorization", authorization);
                  return next(req);
                },
              ],
            }
          : {}),
      });
    const story = uniqueName("story");
    const withToken = createClient(ContextCommandService, transport(testAuth().authorization));
    expect((await withToken.createContext({ storyId: story, title: "T" })).result?.version).toBe(1);
    const without = createClient(ContextCommandService, transport());
    await expect(without.createContext({ storyId: story, title: "T" })).rejects.toSatisfy(
      (e) => ConnectError.from(e).code === Code.Unauthenticated,
    );
  });

  it("serves probes over HTTPS on the ops port and /metrics on METRICS_LISTEN only", async () => {
    expect(await pki.httpsStatus(h.app.opsPort, "/readyz")).toBe(200);
    expect(await pki.httpsStatus(h.app.opsPort, "/metrics")).toBe(404);
    expect(await pki.httpsStatus(metricsPort, "/metrics")).toBe(200);
  });
});

describe("security settings that are refused", () => {
  it("refuses to load without AUTH, naming it", () => {
    expect(() => loadCommandConfig({})).toThrow(/AUTH: must be set/);
  });

  it("refuses to start with a certificate file it cannot read, naming the variable", async () => {
    const config = loadCommandConfig({
      ...testAuth().env,
      NATS_URL: stack().natsUrl,
      COMMAND_LISTEN: "127.0.0.1:0",
      COMMAND_OPS_LISTEN: "127.0.0.1:0",
      RPC_TLS_CERT_FILE: "no-such-cert.pem",
      RPC_TLS_KEY_FILE: "no-such-key.pem",
    });
    const started = startCommandApp(
      config,
      createLogger({ name: "command-security", level: "silent", pretty: false }),
    );
    await expect(started).rejects.toSatisfy(isConfigError);
    await expect(started).rejects.toThrow(/RPC_TLS_CERT_FILE: cannot read no-such-cert.pem/);
  });
});
