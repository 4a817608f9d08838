import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// The query service runs the RPC server with its RPC_* settings (libs/rpc's own specs cover each
// limit; this one checks that the service passes them on).

let s: QueryStack;
let query: RunningQuery;
let commands: CommandClient;

beforeAll(async () => {
  s = await startQueryStack();
  query = await s.startQuery({
    SNAPSHOTTER: "off",
    RPC_MAX_RESPONSE_BYTES: "2048",
    RPC_MAX_STREAM_DEADLINE_MS: "500",
  });
  commands = (await s.startCommand()).client;
});

afterAll(async () => {
  await s?.stop();
});

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

describe("the query service's RPC limits", () => {
  it("given RPC_MAX_RESPONSE_BYTES=2048, when a context is larger, then RESOURCE_EXHAUSTED, counted on /metrics", async () => {
    const storyId = newStory();
    await commands.createContext({ storyId, title: "Large", description: "d".repeat(5_000) });
    const error = await failure(query.client.getContext({ storyId }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toMatch(/limit of 2048 bytes/);
    const opsPort = query.app.opsPort;
    const metrics = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
    expect(metrics).toMatch(/ctx_rpc_refused_total\{reason="response_too_large"\} 1/);
  });

  it("given RPC_MAX_STREAM_DEADLINE_MS=500, when a watch outlives it, then DEADLINE_EXCEEDED after its first answer", async () => {
    const storyId = newStory();
    await commands.createContext({ storyId, title: "Watched" });
    const answers: unknown[] = [];
    const error = await failure(
      (async () => {
        for await (const answer of query.client.watchContext({ storyId })) answers.push(answer);
      })(),
    );
    expect(answers).toHaveLength(1);
    expect(error.code).toBe(Code.DeadlineExceeded);
  });
});
