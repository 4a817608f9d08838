import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { eventually, startTcpProxy, type TcpProxy, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContextClientOptions, createContextClient } from "./client.ts";
import {
  ConcurrencyError,
  type ContextServiceError,
  NotFoundError,
  ValidationError,
} from "./errors.ts";
import type { GetContextResponse } from "./gen/context/v1/query_service_pb.js";

// The SDK against the real command and query services (in-process, on the test run's NATS, Valkey
// and Neo4j), over every transport it offers: Node's HTTP/2 and HTTP/1.1 (Connect, gRPC,
// gRPC-Web) and fetch (Connect-Web, gRPC-Web). Connections are cut with a TCP proxy in front of
// the services, which keep running.

let s: QueryStack;
let commandUrl: string;
let queryUrl: string;
let commandProxy: TcpProxy;
let queryProxy: TcpProxy;

beforeAll(async () => {
  s = await startQueryStack();
  queryUrl = (await s.startQuery()).baseUrl;
  commandUrl = (await s.startCommand()).baseUrl;
  commandProxy = await startTcpProxy({
    host: "127.0.0.1",
    port: Number(new URL(commandUrl).port),
  });
  queryProxy = await startTcpProxy({
    host: "127.0.0.1",
    port: Number(new URL(queryUrl).port),
  });
});

afterAll(async () => {
  await commandProxy?.close();
  await queryProxy?.close();
  await s?.stop();
});

const transports: readonly [
  string,
  Pick<ContextClientOptions, "transport" | "protocol" | "httpVersion">,
][] = [
  ["node Connect HTTP/2", { transport: "node", protocol: "connect", httpVersion: "2" }],
  ["node Connect HTTP/1.1", { transport: "node", protocol: "connect", httpVersion: "1.1" }],
  ["node gRPC HTTP/2", { transport: "node", protocol: "grpc", httpVersion: "2" }],
  ["node gRPC-Web HTTP/1.1", { transport: "node", protocol: "grpc-web", httpVersion: "1.1" }],
  ["web Connect (fetch)", { transport: "web", protocol: "connect" }],
  ["web gRPC-Web (fetch)", { transport: "web", protocol: "grpc-web" }],
];

describe.each(transports)("over %s", (_name, transport) => {
  const client = (extra: Partial<ContextClientOptions> = {}) =>
    createContextClient({
      commandUrl,
      queryUrl,
      getToken: () => testAuth().token,
      retry: { initialDelayMs: 20, maxDelayMs: 200 },
      ...transport,
      ...extra,
    });

  it("creates a story and reads it back, with a command id of its own", async () => {
    const c = client();
    const storyId = newStory();
    const created = await c.commands.createContext({ storyId, title: "SDK" });
    expect(created).toMatchObject({ version: 1, deduplicated: false });
    await c.commands.addSubtask({ storyId, subtaskId: "a", title: "A" });
    const state = await c.queries.getContextAtVersion({ storyId, version: 2 });
    expect(state.context?.title).toBe("SDK");
    expect(state.context?.subtasks.map((t) => t.subtaskId)).toEqual(["a"]);
    const { events } = await c.queries.listEvents({ storyId });
    expect(events).toHaveLength(2);
  });

  it("retries a command whose answer was lost with the same command id: stored once", async () => {
    const sent: string[] = [];
    let lost = false;
    // The service handles the first attempt; its answer is lost on the way back (UNAVAILABLE).
    const loseFirstAnswer: Interceptor = (next) => async (req) => {
      sent.push((req.message as { commandId?: string }).commandId ?? "");
      const res = await next(req);
      if (!lost) {
        lost = true;
        throw new ConnectError("connection reset", Code.Unavailable);
      }
      return res;
    };
    const c = client({ interceptors: [loseFirstAnswer] });
    const storyId = newStory();
    const result = await c.commands.createContext({ storyId, title: "once" });
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent[1]).toBe(sent[0]);
    expect(result).toMatchObject({ version: 1, deduplicated: true });
    const { events } = await client().queries.listEvents({ storyId });
    expect(events).toHaveLength(1);
  });

  it("retries a command while the service cannot be reached, and it lands once", async () => {
    const storyId = newStory();
    await client().commands.createContext({ storyId, title: "reach" });
    let attempts = 0;
    // The first attempt meets a refused connection; the service is reachable again for the second.
    const reopenOnSecond: Interceptor = (next) => (req) => {
      if (++attempts === 2) commandProxy.up();
      return next(req);
    };
    commandProxy.down();
    try {
      const c = client({ commandUrl: commandProxy.url, interceptors: [reopenOnSecond] });
      const result = await c.commands.addSubtask({ storyId, subtaskId: "x", title: "X" });
      expect(result).toMatchObject({ version: 2, deduplicated: false });
      expect(attempts).toBe(2);
    } finally {
      commandProxy.up();
    }
  });

  it("answers with typed errors", async () => {
    const c = client();
    const storyId = newStory();
    const missing = await c.queries.getContext({ storyId }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);

    const invalid = (await c.commands
      .createContext({ storyId: "not a story id!", title: "" })
      .catch((e: unknown) => e)) as ValidationError;
    expect(invalid).toBeInstanceOf(ValidationError);
    expect(Object.keys(invalid.byField).sort()).toEqual(["story_id", "title"]);
    expect(invalid.violations.find((v) => v.field === "story_id")?.ruleId).toBe("string.pattern");

    await c.commands.createContext({ storyId, title: "typed" });
    const conflict = (await c.commands
      .addSubtask({ storyId, subtaskId: "a", title: "A", expectedVersion: 5 })
      .catch((e: unknown) => e)) as ConcurrencyError;
    expect(conflict).toBeInstanceOf(ConcurrencyError);
    expect(conflict).toMatchObject({ expectedVersion: 5, actualVersion: 1 });

    const exists = (await c.commands
      .createContext({ storyId, title: "again" })
      .catch((e: unknown) => e)) as ContextServiceError;
    expect(exists).toMatchObject({ name: "ContextServiceError", code: Code.AlreadyExists });
  });

  it("update() decides again on a fresh state when another writer got there first", async () => {
    const c = client();
    const rival = client();
    const storyId = newStory();
    const nothing = await c.commands.update(storyId, () => []);
    expect(nothing).toBeUndefined();

    const seen: (readonly string[] | undefined)[] = [];
    const result = await c.commands.update(storyId, async (state) => {
      seen.push(state?.context?.subtasks.map((t) => t.subtaskId));
      if (state === undefined) {
        // Another writer creates the story between this read and this write.
        await rival.commands.createContext({ storyId, title: "rival's" });
        return [{ change: { case: "createContext", value: { title: "mine" } } }];
      }
      if (state.context?.subtasks.length === 0) {
        await rival.commands.addSubtask({ storyId, subtaskId: "rival", title: "R" });
      }
      return [{ change: { case: "addSubtask", value: { subtaskId: "mine", title: "M" } } }];
    });
    // Not there; there without subtasks (v1); there with the rival's subtask (v2).
    expect(seen).toEqual([undefined, [], ["rival"]]);
    expect(result).toMatchObject({ version: 3, deduplicated: false });
    const now = await c.queries.getContextAtVersion({ storyId, version: 3 });
    expect(now.context?.title).toBe("rival's");
    expect(now.context?.subtasks.map((t) => t.subtaskId)).toEqual(["rival", "mine"]);

    // A story that keeps moving: the ConcurrencyError once maxConflicts attempts are spent.
    let n = 0;
    const failure = await c.commands
      .update(
        storyId,
        async () => {
          n++;
          await rival.commands.addSubtask({ storyId, subtaskId: `r${n}`, title: "R" });
          return [{ change: { case: "archiveContext", value: { reason: "done" } } }];
        },
        { maxConflicts: 2 },
      )
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConcurrencyError);
    expect(n).toBe(2);
  });

  it("watch sees every version once, in order, across dropped connections", async () => {
    const c = client();
    // Through the proxy, patient enough to outlast the outage below.
    const w = client({ queryUrl: queryProxy.url, retry: { maxAttempts: 100, maxDelayMs: 50 } });
    const storyId = newStory();
    await c.commands.createContext({ storyId, title: "watched" });
    const seen: GetContextResponse[] = [];
    const versions = () => seen.map((state) => state.version);
    const watching = (async () => {
      for await (const state of w.watch(storyId)) {
        seen.push(state);
        if (state.version === 6) break;
      }
    })();
    await eventually(() => expect(versions()).toEqual([1]));
    await c.commands.addSubtask({ storyId, subtaskId: "a", title: "A" });
    await eventually(() => expect(versions()).toEqual([1, 2]));

    // Versions 3 to 5 land while the watch cannot reach the service: read one by one afterwards.
    queryProxy.down();
    for (const id of ["b", "c", "d"]) {
      await c.commands.addSubtask({ storyId, subtaskId: id, title: id });
    }
    queryProxy.up();
    await eventually(() => expect(versions()).toEqual([1, 2, 3, 4, 5]));

    // A drop with nothing missed: the new stream's first state (5) is not repeated.
    queryProxy.down();
    queryProxy.up();
    await c.commands.addSubtask({ storyId, subtaskId: "e", title: "E" });
    await watching;
    expect(versions()).toEqual([1, 2, 3, 4, 5, 6]);
    for (const state of seen) {
      const stored = await c.queries.getContextAtVersion({ storyId, version: state.version });
      expect(state.context).toEqual(stored.context);
    }
  });

  it("watch starts at fromVersion, and return() or the signal ends it", async () => {
    const c = client();
    const storyId = newStory();
    await c.commands.createContext({ storyId, title: "history" });
    await c.commands.addSubtask({ storyId, subtaskId: "a", title: "A" });
    await c.commands.addSubtask({ storyId, subtaskId: "b", title: "B" });

    const watch = c.watch(storyId, { fromVersion: 2 });
    expect((await watch.next()).value?.version).toBe(2);
    expect((await watch.next()).value?.context?.subtasks).toHaveLength(2);
    expect(await watch.return()).toEqual({ done: true, value: undefined });

    const controller = new AbortController();
    const versions: number[] = [];
    const ended = (async () => {
      for await (const state of c.watch(storyId, { signal: controller.signal })) {
        versions.push(state.version);
      }
    })();
    await eventually(() => expect(versions).toEqual([3]));
    controller.abort();
    await ended;
    expect(versions).toEqual([3]);

    await expect(c.watch(newStory()).next()).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe.each([transports[0], transports[4]])("over %s, a query service", (_name, transport) => {
  it("stopped and started again: the watch carries on with every version once", async () => {
    const first = await s.startQuery();
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: first.app.rpcPort });
    try {
      const c = createContextClient({
        commandUrl,
        queryUrl,
        token: testAuth().token,
        ...transport,
      });
      const w = createContextClient({
        queryUrl: proxy.url,
        token: testAuth().token,
        retry: { maxAttempts: 500, maxDelayMs: 50 },
        ...transport,
      });
      const storyId = newStory();
      await c.commands.createContext({ storyId, title: "restarted" });
      const versions: number[] = [];
      const watching = (async () => {
        for await (const state of w.watch(storyId)) {
          versions.push(state.version);
          if (state.version === 4) break;
        }
      })();
      await eventually(() => expect(versions).toEqual([1]));

      // The service stops (its watches end with UNAVAILABLE); versions 2 and 3 land meanwhile.
      await first.app.stop();
      await c.commands.addSubtask({ storyId, subtaskId: "a", title: "A" });
      await c.commands.addSubtask({ storyId, subtaskId: "b", title: "B" });
      const second = await s.startQuery();
      proxy.retarget(second.app.rpcPort);
      await eventually(() => expect(versions).toEqual([1, 2, 3]), { timeout: 30_000 });

      await c.commands.addSubtask({ storyId, subtaskId: "c", title: "C" });
      await watching;
      expect(versions).toEqual([1, 2, 3, 4]);
    } finally {
      await proxy.close();
    }
  });
});
