import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createLogger } from "@ctx/config";
import { CommandResultSchema, ContextCommandService, type CreateContextRequest } from "@ctx/proto";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealthRegistry } from "./health.ts";
import { type RpcServer, startRpcServer } from "./rpc-server.ts";

// The unary gRPC path's handler context, through a real HTTP/2 connection: its signal is aborted
// by the client's cancellation and by the deadline, and left alone when the call ends.

/** What the handler saw of its context, per story id. */
const seen = new Map<string, { signal: AbortSignal; reason: Promise<unknown> }>();
const started = new Map<string, () => void>();
const startedCall = (storyId: string) =>
  new Promise<void>((resolve) => started.set(storyId, resolve));

async function createContext(req: CreateContextRequest, ctx: HandlerContext) {
  const reason = new Promise<unknown>((resolve) => {
    if (ctx.signal.aborted) resolve(ctx.signal.reason);
    ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true });
  });
  seen.set(req.storyId, { signal: ctx.signal, reason });
  started.get(req.storyId)?.();
  // "wait" calls hold until their signal is aborted, then fail with its reason; the others answer.
  if (req.title === "wait") {
    await reason;
    ctx.signal.throwIfAborted();
  }
  return { result: create(CommandResultSchema, { version: 1 }) };
}

let server: RpcServer;
let sessions: Http2SessionManager;
let client: ReturnType<typeof createClient<typeof ContextCommandService>>;

beforeAll(async () => {
  server = await startRpcServer({
    host: "127.0.0.1",
    port: 0,
    routes: (router) => router.service(ContextCommandService, { createContext }),
    classify: () => undefined,
    logger: createLogger({ name: "unary-grpc-spec", level: "silent" }),
    health: createHealthRegistry([]),
    registry: new Registry(),
  });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  sessions = new Http2SessionManager(baseUrl);
  client = createClient(
    ContextCommandService,
    createGrpcTransport({ baseUrl, sessionManager: sessions }),
  );
});

afterAll(async () => {
  sessions.abort();
  await server.close(1_000);
});

describe("the unary gRPC path's signal", () => {
  it("is aborted as cancelled when the client cancels the call", async () => {
    const cancel = new AbortController();
    const running = startedCall("cancelled");
    const call = client.createContext(
      { storyId: "cancelled", title: "wait" },
      { signal: cancel.signal },
    );
    await running;
    cancel.abort();
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
    const reason = await seen.get("cancelled")?.reason;
    expect(ConnectError.from(reason).code).toBe(Code.Canceled);
  });

  it("is aborted as deadline exceeded when the call's deadline passes", async () => {
    // The deadline in the header only: the client keeps no timer of its own that could cancel first.
    const call = client.createContext(
      { storyId: "late", title: "wait" },
      { headers: { "grpc-timeout": "100m" } },
    );
    await expect(call).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    const reason = await seen.get("late")?.reason;
    expect(ConnectError.from(reason).code).toBe(Code.DeadlineExceeded);
  });

  it("is left alone when the call ends with an answer", async () => {
    const reply = await client.createContext(
      { storyId: "answered", title: "now" },
      { timeoutMs: 5_000 },
    );
    expect(reply.result?.version).toBe(1);
    expect(seen.get("answered")?.signal.aborted).toBe(false);
  });
});
