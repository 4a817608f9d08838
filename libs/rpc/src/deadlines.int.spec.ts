import { Code, ConnectError } from "@connectrpc/connect";
import { eventually } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { protocols, startTestServer, type TestServer } from "./testing/rpc-test-server.ts";

// Defect 12 of issue #20 (the server's part): no server-side deadline, and an unbounded queue.
// A unary call ends at the server's longest deadline when its client sets none or a longer one,
// answered even when its handler ignores its signal; streams have their own bound (none by
// default: a watch runs until its client cancels); the turn budget's queue sheds when full.

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

/** Far beyond any test's time: a call held to it would time the test out. */
const tenMinutes = 600_000;

describe("the longest deadline of a unary call (300 ms here)", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ limits: { maxDeadlineMs: 300 } });
  });
  afterAll(() => t.close());

  it("given no deadline from the client, when the call waits, then it ends DEADLINE_EXCEEDED with its signal aborted, on every protocol", async () => {
    for (const protocol of protocols) {
      const error = await failure(
        t.commandClient(protocol).createContext({ storyId: "s", title: "wait" }),
      );
      expect(error.code, `${protocol}: ${error.message}`).toBe(Code.DeadlineExceeded);
    }
  });

  it("given a longer deadline from the client, then the server's applies", async () => {
    for (const protocol of protocols) {
      const call = t
        .commandClient(protocol)
        .createContext({ storyId: "s", title: "wait" }, { timeoutMs: tenMinutes });
      const error = await failure(call);
      expect(error.code, `${protocol}: ${error.message}`).toBe(Code.DeadlineExceeded);
    }
  });

  it("given a handler that ignores its signal, then the call is still answered DEADLINE_EXCEEDED at the deadline", async () => {
    try {
      for (const protocol of protocols) {
        const error = await failure(
          t.commandClient(protocol).createContext({ storyId: "s", title: "ignore" }),
        );
        expect(error.code, `${protocol}: ${error.message}`).toBe(Code.DeadlineExceeded);
      }
      // The handlers are still at it: the answers did not wait for them.
      expect(t.ignoring.count).toBe(protocols.length);
    } finally {
      t.ignoring.release();
    }
    await eventually(() => expect(t.ignoring.count).toBe(0));
  });

  it("given a server stream, then the unary deadline does not cut it", async () => {
    const client = t.queryClient("grpc");
    const cancel = new AbortController();
    const watch = client.watchContext({ storyId: "long-watch" }, { signal: cancel.signal });
    const it = watch[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    // A unary call started after the watch has met the deadline; the watch is still open.
    const unary = await failure(
      t.commandClient("grpc").createContext({ storyId: "s", title: "wait" }),
    );
    expect(unary.code).toBe(Code.DeadlineExceeded);
    expect(t.watches.get("long-watch")?.aborted).toBe(false);
    cancel.abort();
    await it.return?.();
    await eventually(() => expect(t.watches.get("long-watch")?.aborted).toBe(true));
  });
});

describe("the longest deadline of a stream (300 ms here)", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ limits: { maxStreamDeadlineMs: 300 } });
  });
  afterAll(() => t.close());

  it("given a watch, on every protocol, when it outlives the stream deadline, then it ends DEADLINE_EXCEEDED, even when its handler ignores its signal", async () => {
    for (const protocol of protocols) {
      for (const storyId of ["quiet", "ignore"]) {
        const error = await failure(
          (async () => {
            for await (const _ of t.queryClient(protocol).watchContext({ storyId })) {
              // The first state arrives; then the deadline passes.
            }
          })(),
        );
        expect(error.code, `${protocol} ${storyId}: ${error.message}`).toBe(Code.DeadlineExceeded);
      }
    }
  });
});

describe("the turn budget's queue (1 call per turn, 5 waiting)", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ callsPerTurn: 1, limits: { maxQueuedCalls: 5 } });
  });
  afterAll(() => t.close());

  it("given a burst of 200 calls, then the calls the queue cannot hold are shed UNAVAILABLE and the rest are served", async () => {
    const client = t.commandClient("grpc");
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => client.createContext({ storyId: `s${i}`, title: "T" })),
    );
    const codes = results.map((r) =>
      r.status === "fulfilled" ? "OK" : Code[ConnectError.from(r.reason).code],
    );
    const shed = codes.filter((c) => c === "Unavailable").length;
    expect(shed).toBeGreaterThan(0);
    expect(codes.filter((c) => c !== "OK" && c !== "Unavailable")).toEqual([]);
    expect(await t.metric("ctx_rpc_refused_total", { reason: "queue_full" })).toBe(shed);
    // Shedding is not failing: the next call is served.
    expect((await client.createContext({ storyId: "after", title: "T" })).result?.version).toBe(1);
  });

  it("given a burst over 9 connections and every protocol, then the shed calls are UNAVAILABLE on each, the shed count is exact, and every connection serves again", async () => {
    // A client per connection (each transport opens its own), three per protocol.
    const clients = protocols.flatMap((protocol) =>
      [0, 1, 2].map((n) => ({ protocol, n, client: t.commandClient(protocol) })),
    );
    const before = await t.metric("ctx_rpc_refused_total", { reason: "queue_full" });
    const burst = clients.flatMap(({ protocol, n, client }) =>
      Array.from({ length: 40 }, (_, i) =>
        client.createContext({ storyId: `flood-${protocol}-${n}-${i}`, title: "T" }),
      ),
    );
    const codes = (await Promise.allSettled(burst)).map((r) =>
      r.status === "fulfilled" ? "OK" : Code[ConnectError.from(r.reason).code],
    );
    const shed = codes.filter((c) => c === "Unavailable").length;
    expect(shed).toBeGreaterThan(0);
    expect(codes.filter((c) => c !== "OK" && c !== "Unavailable")).toEqual([]);
    expect((await t.metric("ctx_rpc_refused_total", { reason: "queue_full" })) - before).toBe(shed);
    for (const { protocol, n, client } of clients) {
      const after = await client.createContext({ storyId: `after-${protocol}-${n}`, title: "T" });
      expect(after.result?.version, `${protocol} connection ${n}`).toBe(1);
    }
  });
});
