import { create } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLogger } from "@ctx/config";
import {
  commandSnapshotNames,
  provisionCommandSnapshotStream,
  provisionEventStream,
} from "@ctx/event-store";
import { ContextCommandService, CreateContextRequestSchema } from "@ctx/proto";
import { connectTestNats, sendTestToken, stack, testAuth, uniqueName } from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CommandApp, startCommandApp } from "./app.ts";
import { eventStreamSettingsOf, loadCommandConfig } from "./config.ts";

// The command service runs the RPC server with its RPC_* settings (libs/rpc's own specs cover
// each limit; this one checks that the service passes them on).

let app: CommandApp;
let nc: NatsConnection;
let stream: string;
let client: ReturnType<typeof createClient<typeof ContextCommandService>>;

beforeAll(async () => {
  stream = uniqueName("CMD_RPC");
  const config = loadCommandConfig({
    ...stack().natsEnv,
    COMMAND_LISTEN: "127.0.0.1:0",
    COMMAND_OPS_LISTEN: "127.0.0.1:0",
    EVENT_STREAM: stream,
    EVENT_SUBJECT_PREFIX: stream.toLowerCase(),
    SHUTDOWN_GRACE_MS: "2000",
    RPC_MAX_REQUEST_BYTES: "2048",
    ...testAuth().env,
  });
  nc = await connectTestNats();
  const jsm = await jetstreamManager(nc);
  await provisionEventStream(jsm, eventStreamSettingsOf(config));
  await provisionCommandSnapshotStream(jsm, commandSnapshotNames(eventStreamSettingsOf(config)));
  app = await startCommandApp(
    config,
    createLogger({ name: "cmd-rpc", level: "silent", pretty: false }),
  );
  client = createClient(
    ContextCommandService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${app.rpcPort}`,
      interceptors: [sendTestToken],
    }),
  );
});

afterAll(async () => {
  await app?.stop();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(stream).catch(() => undefined);
  await jsm.streams
    .delete(commandSnapshotNames({ stream, subjectPrefix: "" }).stream)
    .catch(() => undefined);
  await nc?.close();
});

describe("the command service's RPC limits", () => {
  it("given RPC_MAX_REQUEST_BYTES=2048, when a larger request arrives, then RESOURCE_EXHAUSTED, counted on /metrics", async () => {
    const request = create(CreateContextRequestSchema, { storyId: uniqueName("s"), title: "T" });
    const data = new BinaryWriter().bytes(new Uint8Array(4096)).finish();
    request.$unknown = [{ no: 99, wireType: WireType.LengthDelimited, data }];
    const error = await client.createContext(request).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.rawMessage).toMatch(/limit of 2048 bytes/);
    const metrics = await (await fetch(`http://127.0.0.1:${app.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/ctx_rpc_refused_total\{reason="request_too_large"\} 1/);
  });
});
