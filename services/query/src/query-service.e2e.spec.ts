import * as http2 from "node:http2";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  timestampDate,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { fold, type StoryId, toContextMessage } from "@ctx/domain";
import type { RecordedEvent } from "@ctx/event-store";
import {
  ContextSource,
  ContextStatus,
  DecisionStatus,
  GetContextAtTimeRequestSchema,
  SubtaskStatus,
} from "@ctx/proto";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  ServerReflection,
  ServerReflectionRequestSchema,
} from "@ctx/proto/grpc";
import { eventually, metricSum, sendTestToken, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { printContextAtTwoTimes } from "./demo.ts";
import {
  type CommandClient,
  newStory,
  type QueryClient,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// context.v1.ContextQueryService end to end: stories written through the command service, read
// models brought up to date as a projector would, and every RPC called by a real gRPC client.

let s: QueryStack;
let query: RunningQuery;
let q: QueryClient;
let commands: CommandClient;
let commandUrl: string;

beforeAll(async () => {
  s = await startQueryStack();
  query = await s.startQuery({ SNAPSHOT_INTERVAL: "3" });
  q = query.client;
  const command = await s.startCommand();
  commands = command.client;
  commandUrl = command.baseUrl;
});

afterAll(async () => {
  await s?.stop();
});

async function codeOf(call: Promise<unknown>): Promise<Code | "OK"> {
  try {
    await call;
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

const events = (story: StoryId): Promise<readonly RecordedEvent[]> => s.store.read(story);

/**
 * v1 created; v2-4 (one atomic change) subtasks api and ui (ui after api) and decision d1
 * affecting api; v5 api IN_PROGRESS; v6 decision d2; v7 d1 superseded by d2; v8 ui assigned to bo.
 */
async function writeStory(): Promise<StoryId> {
  const story = newStory();
  const storyId = story as string;
  await commands.createContext({ storyId, title: "Checkout", description: "One page" });
  await commands.applyChanges({
    storyId,
    changes: [
      { change: { case: "addSubtask", value: { subtaskId: "api", title: "API" } } },
      {
        change: {
          case: "addSubtask",
          value: { subtaskId: "ui", title: "UI", dependsOn: ["api"] },
        },
      },
      {
        change: {
          case: "addDecision",
          value: { decisionId: "d1", title: "REST", madeBy: "ana", affectsSubtaskIds: ["api"] },
        },
      },
    ],
  });
  await commands.updateSubtask({ storyId, subtaskId: "api", status: SubtaskStatus.IN_PROGRESS });
  await commands.addDecision({ storyId, decisionId: "d2", title: "gRPC", madeBy: "bo" });
  await commands.supersedeDecision({ storyId, decisionId: "d1", supersededByDecisionId: "d2" });
  await commands.updateSubtask({ storyId, subtaskId: "ui", assignee: "bo" });
  return story;
}

let story: StoryId;
let history: readonly RecordedEvent[];

beforeAll(async () => {
  story = await writeStory();
  history = await events(story);
  await s.project(story);
  const snapshotter = query.app.snapshotter;
  await eventually(async () => expect(await snapshotter?.lag()).toBe(0), { timeout: 30_000 });
});

const foldTo = (version: number) => toContextMessage(fold(story, history.slice(0, version)));

describe("GetContext", () => {
  it("answers from the read model when it has the story", async () => {
    const answer = await q.getContext({ storyId: story });
    expect(answer.source).toBe(ContextSource.READ_MODEL);
    expect(answer.readModelStale).toBe(false);
    expect(answer.version).toBe(8);
    expect(answer.context).toEqual(foldTo(8));
    expect(answer.asOf && timestampDate(answer.asOf)).toEqual(history[7]?.occurredAt);
  });

  it("answers from the event stream when the read model does not have the story yet", async () => {
    const fresh = newStory();
    await commands.createContext({ storyId: fresh, title: "Fresh" });
    const answer = await q.getContext({ storyId: fresh });
    expect(answer).toMatchObject({
      source: ContextSource.EVENT_STREAM,
      readModelStale: false,
      version: 1,
    });
    expect(answer.context?.title).toBe("Fresh");
  });

  it("answers from the event stream, and says so, when the read model is stale", async () => {
    const stale = await writeStory();
    await s.project(stale);
    await s.markStale(stale, "parked event at version 9");
    await commands.archiveContext({ storyId: stale, reason: "done" });
    const answer = await q.getContext({ storyId: stale });
    expect(answer).toMatchObject({
      source: ContextSource.EVENT_STREAM,
      readModelStale: true,
      version: 9,
    });
    expect(answer.context?.status).toBe(ContextStatus.ARCHIVED);
  });

  it("says NOT_FOUND for a story without events, INVALID_ARGUMENT for a malformed id", async () => {
    expect(await codeOf(q.getContext({ storyId: newStory() }))).toBe(Code.NotFound);
    expect(await codeOf(q.getContext({ storyId: "no.dots" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(q.getContext({ storyId: "" }))).toBe(Code.InvalidArgument);
  });
});

describe("GetContextAtVersion", () => {
  it("equals the fold of the events up to every version", async () => {
    for (let v = 1; v <= history.length; v++) {
      const answer = await q.getContextAtVersion({ storyId: story, version: v });
      expect(answer.source).toBe(ContextSource.EVENT_STREAM);
      expect(answer.version).toBe(v);
      expect(answer.context).toEqual(foldTo(v));
      expect(answer.asOf && timestampDate(answer.asOf)).toEqual(history[v - 1]?.occurredAt);
    }
  });

  it("says OUT_OF_RANGE past the current version, with the current version", async () => {
    let error: ConnectError | undefined;
    try {
      await q.getContextAtVersion({ storyId: story, version: 9 });
    } catch (e) {
      error = ConnectError.from(e);
    }
    expect(error?.code).toBe(Code.OutOfRange);
    expect(error?.metadata.get("x-current-version")).toBe("8");
    expect(await codeOf(q.getContextAtVersion({ storyId: newStory(), version: 1 }))).toBe(
      Code.NotFound,
    );
    expect(await codeOf(q.getContextAtVersion({ storyId: story, version: 0 }))).toBe(
      Code.InvalidArgument,
    );
  });
});

describe("GetContextAtTime", () => {
  it("answers the state after every event that occurred by then", async () => {
    for (const event of history) {
      const t = event.occurredAt.getTime();
      const expected = history.filter((e) => e.occurredAt.getTime() <= t).length;
      const answer = await q.getContextAtTime({
        storyId: story,
        timestamp: timestampFromDate(event.occurredAt),
      });
      expect(answer.version).toBe(expected);
      expect(answer.context).toEqual(foldTo(expected));
      expect(answer.asOf && timestampDate(answer.asOf)).toEqual(history[expected - 1]?.occurredAt);
    }
  });

  it("says NOT_FOUND before the story existed and answers the present for a future time", async () => {
    const first = history[0]?.occurredAt.getTime() ?? 0;
    const before = q.getContextAtTime({
      storyId: story,
      timestamp: timestampFromDate(new Date(first - 1)),
    });
    expect(await codeOf(before)).toBe(Code.NotFound);
    const future = await q.getContextAtTime({
      storyId: story,
      timestamp: timestampFromDate(new Date(Date.now() + 86_400_000)),
    });
    expect(future.version).toBe(8);
    expect(future.context).toEqual(foldTo(8));
  });

  it("says INVALID_ARGUMENT for a missing or malformed timestamp", async () => {
    expect(await codeOf(q.getContextAtTime({ storyId: story }))).toBe(Code.InvalidArgument);
    const bad = { seconds: 1n, nanos: 2_000_000_000 };
    expect(await codeOf(q.getContextAtTime({ storyId: story, timestamp: bad }))).toBe(
      Code.InvalidArgument,
    );
    const farAway = { seconds: 999_999_999_999n, nanos: 0 };
    expect(await codeOf(q.getContextAtTime({ storyId: story, timestamp: farAway }))).toBe(
      Code.InvalidArgument,
    );
  });

  it("honours a deadline that passes while it works (DEADLINE_EXCEEDED from the server)", async () => {
    const body = toBinary(
      GetContextAtTimeRequestSchema,
      create(GetContextAtTimeRequestSchema, {
        storyId: story,
        timestamp: timestampFromDate(new Date()),
      }),
    );
    const reply = await rawGrpc(
      query.baseUrl,
      "/context.v1.ContextQueryService/GetContextAtTime",
      body,
      { "grpc-timeout": "1n" },
    );
    expect(reply.status).toBe(String(Code.DeadlineExceeded));
  });
});

describe("ListEvents", () => {
  it("pages through the story's events with opaque tokens", async () => {
    const seen: number[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await q.listEvents({ storyId: story, pageSize: 3, pageToken });
      seen.push(...page.events.map((e) => e.version));
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken !== "");
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(pages).toBe(3);
    const all = await q.listEvents({ storyId: story });
    expect(all.events).toEqual(history.map((e) => e.envelope));
    expect(all.nextPageToken).toBe("");
  });

  it("reads from a version, up to a version or up to a time", async () => {
    const from4 = await q.listEvents({ storyId: story, fromVersion: 4, pageSize: 2 });
    expect(from4.events.map((e) => e.version)).toEqual([4, 5]);
    const upTo6 = await q.listEvents({
      storyId: story,
      fromVersion: 5,
      until: { case: "toVersion", value: 6 },
    });
    expect(upTo6.events.map((e) => e.version)).toEqual([5, 6]);
    expect(upTo6.nextPageToken).toBe("");
    const t = history[4]?.occurredAt as Date;
    const untilTime = await q.listEvents({
      storyId: story,
      until: { case: "untilTime", value: timestampFromDate(t) },
    });
    expect(untilTime.events.map((e) => e.version)).toEqual(
      history.filter((e) => e.occurredAt <= t).map((e) => e.version),
    );
    const pastTheEnd = await q.listEvents({ storyId: story, fromVersion: 100 });
    expect(pastTheEnd.events).toEqual([]);
  });

  it("refuses a malformed page token or page size, and an unknown story", async () => {
    expect(await codeOf(q.listEvents({ storyId: story, pageToken: "garbage!" }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(q.listEvents({ storyId: story, pageSize: 1001 }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(q.listEvents({ storyId: newStory() }))).toBe(Code.NotFound);
  });

  it("says who wrote each event: the principal the command service authenticated, stored and returned", async () => {
    const storyId = newStory() as string;
    const as = (sub: string) => ({
      headers: { authorization: `Bearer ${testAuth().sign({ sub, roles: ["writer"] })}` },
    });
    await commands.createContext({ storyId, title: "Who", commandId: "who-1" }, as("ana"));
    // The principal is no part of a command's identity: another caller's retry is a retry.
    const retry = await commands.createContext(
      { storyId, title: "Who", commandId: "who-1" },
      as("cy"),
    );
    expect(retry.result?.deduplicated).toBe(true);
    await commands.applyChanges(
      {
        storyId,
        changes: [
          { change: { case: "addSubtask", value: { subtaskId: "a", title: "A" } } },
          { change: { case: "addSubtask", value: { subtaskId: "b", title: "B" } } },
        ],
      },
      as("bo"),
    );
    const listed = await q.listEvents({ storyId });
    expect(listed.events.map((e) => [e.version, e.principal])).toEqual([
      [1, "jwt:ana"],
      [2, "jwt:bo"],
      [3, "jwt:bo"],
    ]);
    // As stored, under the hash chain.
    const stored = await events(storyId as StoryId);
    expect(stored.map((e) => e.envelope.principal)).toEqual(["jwt:ana", "jwt:bo", "jwt:bo"]);
  });
});

describe("DiffContext", () => {
  it("says what changed between two versions, with the events responsible", async () => {
    const diff = await q.diffContext({
      storyId: story,
      from: { point: { case: "version", value: 4 } },
      to: { point: { case: "version", value: 8 } },
    });
    expect(diff.fromVersion).toBe(4);
    expect(diff.toVersion).toBe(8);
    expect(diff.decisionsAdded.map((d) => d.decisionId)).toEqual(["d2"]);
    expect(diff.decisionsSuperseded.map((d) => [d.decisionId, d.status])).toEqual([
      ["d1", DecisionStatus.SUPERSEDED],
    ]);
    expect(diff.subtasksAdded).toEqual([]);
    expect(
      diff.subtasksChanged.map((c) => [c.subtaskId, c.before?.status, c.after?.status]),
    ).toEqual([
      ["api", SubtaskStatus.TODO, SubtaskStatus.IN_PROGRESS],
      ["ui", SubtaskStatus.TODO, SubtaskStatus.TODO],
    ]);
    expect(diff.subtasksChanged[1]?.after?.assignee).toBe("bo");
    expect(diff.storyChanged).toBe(false);
    expect(diff.events).toEqual(history.slice(4).map((e) => e.envelope));
  });

  it("diffs between times too, from before the story existed", async () => {
    const diff = await q.diffContext({
      storyId: story,
      from: { point: { case: "time", value: timestampFromDate(new Date(0)) } },
      to: { point: { case: "time", value: timestampFromDate(new Date(Date.now() + 60_000)) } },
    });
    expect(diff.fromVersion).toBe(0);
    expect(diff.toVersion).toBe(8);
    expect(diff.storyChanged).toBe(true);
    expect(diff.subtasksAdded.map((t) => t.subtaskId)).toEqual(["api", "ui"]);
    expect(diff.events).toHaveLength(8);
  });

  it("refuses points in the wrong order, past the head, or missing", async () => {
    const v = (value: number) => ({ point: { case: "version" as const, value } });
    expect(await codeOf(q.diffContext({ storyId: story, from: v(6), to: v(2) }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(q.diffContext({ storyId: story, from: v(2), to: v(20) }))).toBe(
      Code.OutOfRange,
    );
    expect(await codeOf(q.diffContext({ storyId: story, from: v(2) }))).toBe(Code.InvalidArgument);
    expect(await codeOf(q.diffContext({ storyId: newStory(), from: v(1), to: v(2) }))).toBe(
      Code.NotFound,
    );
  });
});

describe("graph questions", () => {
  it("GetAffectedSubtasks: what a decision reaches, transitively", async () => {
    const { subtasks } = await q.getAffectedSubtasks({ storyId: story, decisionId: "d1" });
    expect(subtasks.map((t) => [t.subtaskId, t.depth, t.status])).toEqual([
      ["api", 1, SubtaskStatus.IN_PROGRESS],
      ["ui", 2, SubtaskStatus.TODO],
    ]);
    expect(subtasks[0]?.title).toBe("API");
  });

  it("GetBlockers: the unfinished subtasks a subtask waits for", async () => {
    const { blockers } = await q.getBlockers({ storyId: story, subtaskId: "ui" });
    expect(blockers.map((t) => [t.subtaskId, t.depth])).toEqual([["api", 1]]);
    expect((await q.getBlockers({ storyId: story, subtaskId: "api" })).blockers).toEqual([]);
  });

  it("say the graph served them, and at which version", async () => {
    for (const answer of [
      await q.getAffectedSubtasks({ storyId: story, decisionId: "d1" }),
      await q.getBlockers({ storyId: story, subtaskId: "ui" }),
    ]) {
      expect(answer).toMatchObject({
        source: ContextSource.READ_MODEL,
        readModelStale: false,
        version: 8,
      });
    }
  });

  it("answer from the event stream, and say so, when the graph is stale for the story", async () => {
    const stale = await writeStory();
    await s.project(stale);
    // A projector parks the story's next event: the graph keeps the story as it was, marked stale,
    // while the stream goes on (v9: api DONE, so ui waits for nothing; v10: qa after ui).
    await s.markStale(stale, "parked event at version 9", "neo4j");
    await commands.updateSubtask({ storyId: stale, subtaskId: "api", status: SubtaskStatus.DONE });
    await commands.addSubtask({ storyId: stale, subtaskId: "qa", title: "QA", dependsOn: ["ui"] });
    const fromStream = { source: ContextSource.EVENT_STREAM, readModelStale: true, version: 10 };

    const blockers = await q.getBlockers({ storyId: stale, subtaskId: "ui" });
    expect(blockers).toMatchObject({ ...fromStream, blockers: [] });
    const affected = await q.getAffectedSubtasks({ storyId: stale, decisionId: "d1" });
    expect(affected).toMatchObject(fromStream);
    expect(affected.subtasks.map((t) => [t.subtaskId, t.depth, t.status])).toEqual([
      ["api", 1, SubtaskStatus.DONE],
      ["ui", 2, SubtaskStatus.TODO],
      ["qa", 3, SubtaskStatus.TODO],
    ]);
    // A subtask only the stream has yet.
    const ofQa = await q.getBlockers({ storyId: stale, subtaskId: "qa" });
    expect(ofQa.blockers.map((t) => [t.subtaskId, t.depth])).toEqual([["ui", 1]]);
    expect(await codeOf(q.getBlockers({ storyId: stale, subtaskId: "nope" }))).toBe(Code.NotFound);
    expect(
      await metricSum(query.app.opsPort, "ctx_query_graph_fallbacks_total", { reason: "stale" }),
    ).toBeGreaterThanOrEqual(4);

    // Rebuilt, the graph serves it again.
    await s.project(stale);
    expect(await q.getBlockers({ storyId: stale, subtaskId: "qa" })).toMatchObject({
      source: ContextSource.READ_MODEL,
      readModelStale: false,
      version: 10,
    });
  });

  it("answer from the event stream when the graph does not have the story yet", async () => {
    const fresh = await writeStory();
    const answer = await q.getBlockers({ storyId: fresh, subtaskId: "ui" });
    expect(answer).toMatchObject({
      source: ContextSource.EVENT_STREAM,
      readModelStale: false,
      version: 8,
    });
    expect(answer.blockers.map((t) => [t.subtaskId, t.depth])).toEqual([["api", 1]]);
  });

  it("says NOT_FOUND for an unknown story, decision or subtask", async () => {
    const calls = [
      () => q.getAffectedSubtasks({ storyId: story, decisionId: "nope" }),
      () => q.getAffectedSubtasks({ storyId: newStory(), decisionId: "d1" }),
      () => q.getBlockers({ storyId: story, subtaskId: "nope" }),
    ];
    for (const call of calls) expect(await codeOf(call())).toBe(Code.NotFound);
    expect(await codeOf(q.getBlockers({ storyId: story, subtaskId: "" }))).toBe(
      Code.InvalidArgument,
    );
  });
});

describe("store outages", () => {
  it("answers GetContext from the stream while Valkey is out; UNAVAILABLE for the graph while Neo4j is", async () => {
    // Ports nothing listens on.
    const degraded = await s.startQuery({
      VALKEY_URL: "redis://127.0.0.1:1",
      NEO4J_URL: "bolt://127.0.0.1:1",
      SNAPSHOTTER: "off",
    });
    const answer = await degraded.client.getContext({ storyId: story });
    expect(answer).toMatchObject({ source: ContextSource.EVENT_STREAM, version: 8 });
    expect(answer.context).toEqual(foldTo(8));
    const blockers = degraded.client.getBlockers({ storyId: story, subtaskId: "ui" });
    expect(await codeOf(blockers)).toBe(Code.Unavailable);
  });
});

describe("the ctx demo", () => {
  it("prints a story halfway through its history and now, and the events between", async () => {
    const lines: string[] = [];
    await printContextAtTwoTimes(query.baseUrl, story, (line) => lines.push(line), [sendTestToken]);
    const text = lines.join("\n");
    expect(text).toContain("(v4):");
    expect(text).toContain("(v8):");
    expect(text).toContain("decision d1: REST (SUPERSEDED by d2)");
    expect(text).toContain("between v4 and v8: 4 events");
    expect(lines.at(-1)).toMatch(/v8 {2}SubtaskUpdated/);
  });
});

describe("grpc.health.v1", () => {
  it("reports SERVING for the server and the query service", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: query.baseUrl }));
    for (const service of ["", "context.v1.ContextQueryService"]) {
      expect((await health.check({ service })).status).toBe(
        HealthCheckResponse_ServingStatus.SERVING,
      );
    }
  });
});

describe("gRPC server reflection", () => {
  /** Asks a server over one reflection stream, as grpcurl does, and decodes what it answers. */
  async function reflect(baseUrl: string, service?: string) {
    const client = createClient(
      ServerReflection,
      createGrpcTransport({ baseUrl, interceptors: [sendTestToken] }),
    );
    async function* requests() {
      yield create(ServerReflectionRequestSchema, {
        host: "localhost",
        messageRequest: { case: "listServices", value: "" },
      });
      if (service !== undefined) {
        yield create(ServerReflectionRequestSchema, {
          messageRequest: { case: "fileContainingSymbol", value: service },
        });
      }
    }
    const answers = [];
    for await (const answer of client.serverReflectionInfo(requests())) answers.push(answer);
    const [list, files] = answers;
    const listed =
      list?.messageResponse.case === "listServicesResponse"
        ? list.messageResponse.value.service.map((x) => x.name)
        : [];
    const protos =
      files?.messageResponse.case === "fileDescriptorResponse"
        ? files.messageResponse.value.fileDescriptorProto.map((b) =>
            fromBinary(FileDescriptorProtoSchema, b),
          )
        : [];
    return { listed, registry: registryOf(protos) };
  }

  /** A registry of the files a server sent (imports first: they may come in any order). */
  function registryOf(protos: readonly FileDescriptorProto[]) {
    const byName = new Map(protos.map((p) => [p.name, p]));
    const sorted: FileDescriptorProto[] = [];
    const visit = (name: string) => {
      const proto = byName.get(name);
      if (proto === undefined) return;
      byName.delete(name);
      for (const dep of proto.dependency) visit(dep);
      sorted.push(proto);
    };
    for (const p of protos) visit(p.name);
    return createFileRegistry(create(FileDescriptorSetSchema, { file: sorted }));
  }

  it("describes the query service, without .proto files", async () => {
    const { listed, registry } = await reflect(query.baseUrl, "context.v1.ContextQueryService");
    expect(listed).toEqual([
      "context.v1.ContextAuditService",
      "context.v1.ContextQueryService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
    const service = registry.getService("context.v1.ContextQueryService");
    expect(service?.methods.map((m) => m.name)).toEqual([
      "GetContext",
      "GetContextAtTime",
      "GetContextAtVersion",
      "ListEvents",
      "ListStoredEvents",
      "DiffContext",
      "GetAffectedSubtasks",
      "GetBlockers",
      "WatchContext",
    ]);
    expect(registry.getMessage("context.v1.ContextSnapshot")?.fields).toHaveLength(6);
  });

  it("describes the command service too", async () => {
    const { listed, registry } = await reflect(commandUrl, "context.v1.ContextCommandService");
    expect(listed).toContain("context.v1.ContextCommandService");
    const service = registry.getService("context.v1.ContextCommandService");
    expect(service?.methods.map((m) => m.name)).toContain("ApplyChanges");
    expect(registry.getMessage("context.v1.CreateContextRequest")).toBeDefined();
  });
});

/** A gRPC call with hand-made headers (a deadline of a nanosecond), over plain HTTP/2. */
function rawGrpc(
  baseUrl: string,
  path: string,
  message: Uint8Array,
  extraHeaders: Record<string, string>,
): Promise<{ status: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    Buffer.from(message).copy(frame, 5);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: testAuth().authorization,
      ...extraHeaders,
    });
    let status: string | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      const v = h["grpc-status"];
      if (v !== undefined) status = Array.isArray(v) ? v[0] : v;
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => undefined);
    req.on("end", () => {
      session.close();
      resolve({ status });
    });
    req.on("error", reject);
    req.end(frame);
  });
}
