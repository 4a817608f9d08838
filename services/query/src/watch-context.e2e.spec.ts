import * as http2 from "node:http2";
import * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { fold, type StoryId, toContextMessage } from "@ctx/domain";
import {
  ContextQueryService,
  WatchContextRequestSchema,
  type WatchContextResponse,
} from "@ctx/proto";
import { eventually, metricSum, sendTestToken, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryClient,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// WatchContext over a real gRPC stream: the current state first, then every version in order while
// writers append, until the client cancels, the deadline passes or the service stops; bounded per
// process and per client, and a client that stops reading is ended. (Many watches at once:
// watch-flood.e2e.spec.ts.)

let s: QueryStack;
let q: QueryClient;
let commands: CommandClient;

beforeAll(async () => {
  s = await startQueryStack();
  q = (await s.startQuery({ SNAPSHOT_INTERVAL: "5" })).client;
  commands = (await s.startCommand()).client;
});

afterAll(async () => {
  await s?.stop();
});

async function createStory(): Promise<StoryId> {
  const story = newStory();
  await commands.createContext({ storyId: story, title: "Watched" });
  await commands.addSubtask({ storyId: story, subtaskId: "a", title: "A" });
  return story;
}

/** Appends `count` events: assignee changes, with an atomic three-event change in the middle. */
async function write(story: StoryId, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 2)) {
      await commands.applyChanges({
        storyId: story,
        changes: [
          { change: { case: "addSubtask", value: { subtaskId: "b", title: "B" } } },
          { change: { case: "addSubtask", value: { subtaskId: "c", title: "C" } } },
          {
            change: {
              case: "addSubtaskDependency",
              value: { subtaskId: "c", dependsOnSubtaskId: "b" },
            },
          },
        ],
      });
      i += 2;
    } else {
      await commands.updateSubtask({ storyId: story, subtaskId: "a", assignee: `dev-${i}` });
    }
  }
}

async function consumers(): Promise<number> {
  return (await s.jsm.streams.info(s.settings.stream)).state.consumer_count;
}

async function codeOf(run: () => Promise<unknown>): Promise<Code | "OK"> {
  try {
    await run();
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("WatchContext", () => {
  it("sends the current state, then every version in order while a writer appends", async () => {
    const story = await createStory();
    const baseline = await consumers();
    const controller = new AbortController();
    const received: WatchContextResponse[] = [];
    const stream = q.watchContext({ storyId: story }, { signal: controller.signal });
    const writing = (async () => {
      // Write once the watch has answered with the state it started from.
      await eventually(() => expect(received.length).toBeGreaterThan(0));
      await write(story, 40);
    })();
    const final = 2 + 40;
    await expect(
      (async () => {
        for await (const answer of stream) {
          received.push(answer);
          if (answer.state?.version === final) controller.abort();
        }
      })(),
    ).rejects.toThrow(/abort|cancel/i);
    await writing;

    const versions = received.map((r) => r.state?.version);
    expect(versions[0]).toBe(2);
    expect(versions).toEqual(Array.from({ length: final - 1 }, (_, i) => i + 2));
    const history = await s.store.read(story);
    for (const answer of received) {
      const version = answer.state?.version ?? 0;
      expect(answer.state?.context).toEqual(
        toContextMessage(fold(story, history.slice(0, version))),
      );
    }
    // The server ends its consumer when the client goes.
    await eventually(async () => expect(await consumers()).toBe(baseline));
  });

  it("starts from the state of a story written before the watch", async () => {
    const story = await createStory();
    await write(story, 12);
    const controller = new AbortController();
    for await (const answer of q.watchContext({ storyId: story }, { signal: controller.signal })) {
      expect(answer.state?.version).toBe(14);
      expect(answer.state?.context?.subtasks.map((t) => t.subtaskId)).toEqual(["a", "b", "c"]);
      controller.abort();
      break;
    }
  });

  it("says NOT_FOUND for an unknown story and INVALID_ARGUMENT for a malformed id", async () => {
    const drain = (storyId: string) => async () => {
      for await (const _ of q.watchContext({ storyId })) {
        // nothing is expected
      }
    };
    expect(await codeOf(drain(newStory()))).toBe(Code.NotFound);
    expect(await codeOf(drain("a b"))).toBe(Code.InvalidArgument);
  });

  it("ends with DEADLINE_EXCEEDED when the deadline passes, and keeps no consumer", async () => {
    const story = await createStory();
    const baseline = await consumers();
    const received: WatchContextResponse[] = [];
    const code = await codeOf(async () => {
      for await (const answer of q.watchContext({ storyId: story }, { timeoutMs: 1_500 })) {
        received.push(answer);
      }
    });
    expect(code).toBe(Code.DeadlineExceeded);
    expect(received.map((r) => r.state?.version)).toEqual([2]);
    await eventually(async () => expect(await consumers()).toBe(baseline));
  });

  it("ends every watch with UNAVAILABLE when the service stops, and keeps no subscription", async () => {
    const stories = [await createStory(), await createStory()];
    const other = await s.startQuery({ SNAPSHOTTER: "off" });
    const received: WatchContextResponse[] = [];
    const watching = [...stories, ...stories].map((storyId) =>
      codeOf(async () => {
        for await (const answer of other.client.watchContext({ storyId })) {
          received.push(answer);
        }
      }),
    );
    await eventually(() => expect(received).toHaveLength(4));
    expect(await metricSum(other.app.opsPort, "ctx_query_watches_open")).toBe(4);
    expect(await metricSum(other.app.opsPort, "ctx_query_watched_stories")).toBe(2);
    await other.app.stop();
    expect(await Promise.all(watching)).toEqual(Array(4).fill(Code.Unavailable));
  });
});

/**
 * A client of `query` whose connections come from `localAddress` (another loopback address),
 * calling as `subject` (default: the test token's).
 */
function clientFrom(query: RunningQuery, localAddress: string, subject?: string): QueryClient {
  const { port } = new URL(query.baseUrl);
  const token = subject === undefined ? undefined : testAuth().sign({ sub: subject });
  const transport = createGrpcTransport({
    baseUrl: query.baseUrl,
    interceptors: [
      token === undefined
        ? sendTestToken
        : (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
    ],
    nodeOptions: {
      createConnection: () => net.connect({ host: "127.0.0.1", port: Number(port), localAddress }),
    },
  });
  return createClient(ContextQueryService, transport);
}

/** Opens a watch and resolves once its first answer arrived; `close` cancels it. */
async function openWatch(
  client: QueryClient,
  storyId: StoryId,
): Promise<{ close: () => void; ended: Promise<Code | "OK"> }> {
  const controller = new AbortController();
  let first: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    first = resolve;
  });
  const ended = codeOf(async () => {
    for await (const _ of client.watchContext({ storyId }, { signal: controller.signal })) first();
  });
  await Promise.race([started, ended]);
  return { close: () => controller.abort(), ended };
}

describe("WatchContext limits", () => {
  it("refuses watches beyond the limits per client and per process with RESOURCE_EXHAUSTED", async () => {
    const story = await createStory();
    const limited = await s.startQuery({
      SNAPSHOTTER: "off",
      WATCH_MAX: "5",
      WATCH_MAX_PER_CLIENT: "3",
    });
    // The client is the caller (its principal), not its address.
    const a = limited.client; // from 127.0.0.1, as "test"
    const sameCallerElsewhere = clientFrom(limited, "127.0.0.3");
    const b = clientFrom(limited, "127.0.0.1", "another-caller");
    const fromA = [await openWatch(a, story), await openWatch(a, story), await openWatch(a, story)];
    const refusedA = await openWatch(sameCallerElsewhere, story);
    expect(await refusedA.ended).toBe(Code.ResourceExhausted);
    // Another client still may, up to the limit of the process.
    const fromB = [await openWatch(b, story), await openWatch(b, story)];
    const refusedB = await openWatch(b, story);
    expect(await refusedB.ended).toBe(Code.ResourceExhausted);
    const ops = limited.app.opsPort;
    expect(await metricSum(ops, "ctx_query_watches_refused_total", { limit: "client" })).toBe(1);
    expect(await metricSum(ops, "ctx_query_watches_refused_total", { limit: "process" })).toBe(1);
    expect(await metricSum(ops, "ctx_query_watches_open")).toBe(5);

    // A watch that ends gives its place back.
    fromA[0]?.close();
    expect(await fromA[0]?.ended).toBe(Code.Canceled);
    await eventually(async () => expect(await metricSum(ops, "ctx_query_watches_open")).toBe(4));
    const again = await openWatch(a, story);
    expect(await metricSum(ops, "ctx_query_watches_open")).toBe(5);
    for (const w of [...fromA, ...fromB, again]) w.close();
    await eventually(async () => expect(await metricSum(ops, "ctx_query_watches_open")).toBe(0));
    expect(await metricSum(ops, "ctx_query_watched_stories")).toBe(0);
  });

  it("ends a watch whose client stops reading, frees it, and the others go on", async () => {
    // Big answers (a 10,000-character description), so a client that reads nothing fills the
    // server's stream buffer after a few of them.
    const story = newStory();
    await commands.createContext({ storyId: story, title: "Big", description: "x".repeat(10_000) });
    await commands.addSubtask({ storyId: story, subtaskId: "a", title: "A" });
    const maxLag = 10;
    const lagging = await s.startQuery({ SNAPSHOTTER: "off", WATCH_MAX_LAG: String(maxLag) });
    const ops = lagging.app.opsPort;

    // A reader that keeps up.
    const received: number[] = [];
    const controller = new AbortController();
    const reading = codeOf(async () => {
      const watch = lagging.client.watchContext({ storyId: story }, { signal: controller.signal });
      for await (const answer of watch) received.push(answer.state?.version ?? 0);
    });
    // A client that asks and then never reads: it grants the server no flow-control window.
    const session = http2.connect(lagging.baseUrl, { settings: { initialWindowSize: 0 } });
    session.on("error", () => undefined);
    const frozen = session.request({
      ":method": "POST",
      ":path": "/context.v1.ContextQueryService/WatchContext",
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: testAuth().authorization,
    });
    frozen.on("error", () => undefined);
    const closed = new Promise<number>((resolve) =>
      frozen.on("close", () => resolve(frozen.rstCode ?? -1)),
    );
    const request = toBinary(
      WatchContextRequestSchema,
      create(WatchContextRequestSchema, { storyId: story }),
    );
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    frozen.end(frame);
    await eventually(async () => expect(await metricSum(ops, "ctx_query_watches_open")).toBe(2));
    await eventually(() => expect(received).toEqual([2]));

    // Write one event at a time, each once the reader has it: the reader never lags.
    const events = 3 * maxLag;
    for (let i = 0; i < events; i++) {
      await commands.updateSubtask({ storyId: story, subtaskId: "a", assignee: `dev-${i}` });
      await eventually(() => expect(received.at(-1)).toBe(3 + i));
    }
    expect(received).toEqual(Array.from({ length: events + 1 }, (_, i) => i + 2));

    // The frozen client was cut with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED), its watch freed.
    expect(await closed).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(await metricSum(ops, "ctx_query_watches_ended_total", { reason: "lagging" })).toBe(1);
    expect(await metricSum(ops, "ctx_query_watches_open")).toBe(1);
    controller.abort();
    expect(await reading).toBe(Code.Canceled);
    session.destroy();
  });
});
