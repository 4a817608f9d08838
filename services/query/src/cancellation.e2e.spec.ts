import { Code, ConnectError } from "@connectrpc/connect";
import type { StoryId } from "@ctx/domain";
import {
  eventually,
  metricSum,
  stack,
  startTcpProxy,
  type TcpProxy,
  uniqueName,
} from "@ctx/test-support";
import neo4j, { type Driver } from "neo4j-driver";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// A call whose deadline passes or that its client cancels must stop the work behind it and say
// so (DEADLINE_EXCEEDED / CANCELLED), never run on unobserved. The query service here reaches
// Neo4j and Valkey through TCP proxies that can hold back the servers' answers: the servers have
// done their part, the service waits, and the call ends meanwhile.

let s: QueryStack;
let query: RunningQuery;
let commands: CommandClient;
let neo4jProxy: TcpProxy;
let valkeyProxy: TcpProxy;
let direct: Driver;
let story: StoryId;

beforeAll(async () => {
  s = await startQueryStack();
  const { neo4jUrl, valkeyUrl, neo4jUser, neo4jPassword } = stack();
  const neo4jTarget = new URL(neo4jUrl);
  const valkeyTarget = new URL(valkeyUrl);
  neo4jProxy = await startTcpProxy({
    host: neo4jTarget.hostname,
    port: Number(neo4jTarget.port),
  });
  valkeyProxy = await startTcpProxy({
    host: valkeyTarget.hostname,
    port: Number(valkeyTarget.port),
  });
  direct = neo4j.driver(neo4jUrl, neo4j.auth.basic(neo4jUser, neo4jPassword));
  query = await s.startQuery({
    SNAPSHOTTER: "off",
    NEO4J_URL: `bolt://127.0.0.1:${neo4jProxy.port}`,
    VALKEY_URL: `redis://127.0.0.1:${valkeyProxy.port}`,
  });
  commands = (await s.startCommand()).client;
  story = newStory();
  await commands.createContext({ storyId: story, title: "Cut short" });
  await commands.addSubtask({ storyId: story, subtaskId: "api", title: "API" });
  await commands.addSubtask({ storyId: story, subtaskId: "ui", title: "UI", dependsOn: ["api"] });
  await s.project(story);
});

afterEach(() => {
  neo4jProxy?.release();
  valkeyProxy?.release();
});

afterAll(async () => {
  await s?.stop();
  await direct?.close();
  await neo4jProxy?.close();
  await valkeyProxy?.close();
});

async function codeOf(call: Promise<unknown>): Promise<Code | "OK"> {
  try {
    await call;
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

/** Neo4j transactions open for the call with this correlation id (the service tags them). */
async function openTransactions(correlationId: string): Promise<number> {
  const result = await direct.executeQuery(
    "SHOW TRANSACTIONS YIELD metaData WHERE metaData.correlation_id = $id RETURN count(*) AS open",
    { id: correlationId },
  );
  return Number(result.records[0]?.get("open"));
}

const handled = (method: string, code: string) =>
  metricSum(query.app.opsPort, "grpc_server_handled_total", {
    grpc_method: method,
    grpc_code: code,
  });

describe("cancellation and deadlines", () => {
  it("ends a graph query at Neo4j when the call's deadline passes, and answers DEADLINE_EXCEEDED", async () => {
    const warm = await query.client.getBlockers({ storyId: story, subtaskId: "ui" });
    expect(warm.blockers.map((b) => b.subtaskId)).toEqual(["api"]);
    neo4jProxy.hold();
    const correlationId = uniqueName("deadline");
    const call = query.client.getBlockers(
      { storyId: story, subtaskId: "ui" },
      { timeoutMs: 1_000, headers: { "x-correlation-id": correlationId } },
    );
    expect(await codeOf(call)).toBe(Code.DeadlineExceeded);
    // The server answered so too (not the client alone), and Neo4j holds no transaction of it.
    await eventually(async () => expect(await handled("GetBlockers", "DeadlineExceeded")).toBe(1));
    await eventually(async () => expect(await openTransactions(correlationId)).toBe(0));
    expect(await handled("GetBlockers", "Internal")).toBe(0);
  });

  it("ends a graph query at Neo4j when the client cancels the call", async () => {
    // A call that goes through first: the driver's connection that the last test cut short is only
    // handed out again once Neo4j's answers reach it.
    await query.client.getBlockers({ storyId: story, subtaskId: "ui" });
    neo4jProxy.hold();
    const correlationId = uniqueName("cancel");
    const controller = new AbortController();
    const call = query.client.getAffectedSubtasks(
      { storyId: story, decisionId: "none" },
      { signal: controller.signal, headers: { "x-correlation-id": correlationId } },
    );
    await eventually(async () => expect(await openTransactions(correlationId)).toBe(1));
    controller.abort();
    expect(await codeOf(call)).toBe(Code.Canceled);
    await eventually(async () => expect(await handled("GetAffectedSubtasks", "Canceled")).toBe(1));
    await eventually(async () => expect(await openTransactions(correlationId)).toBe(0));
  });

  it("answers DEADLINE_EXCEEDED when a Valkey read outlives the deadline, instead of going on", async () => {
    const warm = await query.client.getContext({ storyId: story });
    expect(warm.version).toBe(3);
    valkeyProxy.hold();
    // The deadline goes to the server only: a client-side timeout of the same length could cut
    // the call first, and the server would then count a cancellation, not its own deadline.
    const call = query.client.getContext(
      { storyId: story },
      { headers: { "grpc-timeout": "500m" } },
    );
    expect(await codeOf(call)).toBe(Code.DeadlineExceeded);
    await eventually(async () => expect(await handled("GetContext", "DeadlineExceeded")).toBe(1));
    valkeyProxy.release();
    // The read that was cut short left nothing behind: no fallback, and Valkey serves again.
    expect(
      await metricSum(query.app.opsPort, "ctx_query_read_model_fallbacks_total", {
        reason: "unavailable",
      }),
    ).toBe(0);
    expect((await query.client.getContext({ storyId: story })).version).toBe(3);
  });
});
