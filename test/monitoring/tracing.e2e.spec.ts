import { randomBytes } from "node:crypto";
import { createLogger } from "@ctx/config";
import type { ProjectorApp } from "@ctx/projector-service";
import {
  type CommandClient,
  newStory,
  type QueryClient,
  type QueryStack,
  startQueryStack,
} from "@ctx/query-service/testing";
import {
  type InMemoryTracing,
  type ReadableSpan,
  startInMemoryTracing,
} from "@ctx/telemetry/testing";
import { eventually } from "@ctx/test-support";
import { SpanKind } from "@opentelemetry/api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startValkeyProjector } from "./valkey-projector.ts";

// Issue #24: a caller's W3C trace context reaches, through the command service and the stored
// event, the projector's write and the snapshotter; the query service continues it too. The
// services run in this process with an in-memory exporter (the OTLP path from the OTEL_*
// variables is libs/telemetry's otlp-export spec).

const logger = createLogger({ name: "tracing-e2e", level: "silent", pretty: false });

let tracing: InMemoryTracing;
let s: QueryStack;
let command: CommandClient;
let query: QueryClient;
let projector: ProjectorApp;

/** A caller's span: a fresh trace id and span id, sampled. */
function callerSpan() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

const ofTrace = (traceId: string) =>
  tracing.spans().filter((span) => span.spanContext().traceId === traceId);
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan) => span.spanContext().spanId;

beforeAll(async () => {
  // First: the RPC servers decide at start whether they trace.
  tracing = await startInMemoryTracing("tracing-e2e");
  s = await startQueryStack();
  command = (await s.startCommand()).client;
  query = (await s.startQuery({ SNAPSHOT_INTERVAL: "2" })).client;
  projector = await startValkeyProjector(s, "tracing-0", logger);
}, 120_000);

afterAll(async () => {
  await projector?.stop();
  await s?.stop();
  await tracing?.shutdown();
});

beforeEach(() => tracing.reset());

describe("a command's trace", () => {
  it("runs from the gRPC call through the append to the projector's write", async () => {
    const caller = callerSpan();
    const story = newStory();
    let correlationId = "";
    await command.createContext(
      { storyId: story, title: "Traced" },
      {
        headers: { traceparent: caller.traceparent },
        onHeader: (h) => {
          correlationId = h.get("x-correlation-id") ?? "";
        },
      },
    );

    const write = await eventually(() => {
      const found = ofTrace(caller.traceId).find((span) => span.name === "write valkey");
      expect(found, "the projector's write in the caller's trace").toBeDefined();
      return found as ReadableSpan;
    });
    const spans = ofTrace(caller.traceId);
    const server = spans.find(
      (span) => span.name === "context.v1.ContextCommandService/CreateContext",
    );
    const send = spans.find((span) => span.name === `send ${s.settings.stream}`);
    const process = spans.find((span) => span.name === `process ${s.settings.stream}`);
    expect(server?.kind).toBe(SpanKind.SERVER);
    expect(send?.kind).toBe(SpanKind.PRODUCER);
    expect(process?.kind).toBe(SpanKind.CONSUMER);
    expect(write.kind).toBe(SpanKind.CLIENT);
    // caller → server → send → (stored event) → process → write
    expect(parentOf(server as ReadableSpan)).toBe(caller.spanId);
    expect(parentOf(send as ReadableSpan)).toBe(idOf(server as ReadableSpan));
    expect(parentOf(process as ReadableSpan)).toBe(idOf(send as ReadableSpan));
    expect(process?.links.map((l) => l.context.spanId)).toEqual([idOf(send as ReadableSpan)]);
    expect(parentOf(write)).toBe(idOf(process as ReadableSpan));

    expect(server?.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "context.v1.ContextCommandService",
      "rpc.method": "CreateContext",
      "rpc.grpc.status_code": 0,
      "ctx.correlation_id": correlationId,
    });
    expect(correlationId).not.toBe("");
    expect(send?.attributes).toMatchObject({ "ctx.story_id": story, "ctx.version": 1 });
    expect(write.attributes).toMatchObject({ "db.system.name": "valkey", "ctx.events": 1 });
  });

  it("is stored with the event, in its NATS headers", async () => {
    const caller = callerSpan();
    const story = newStory();
    await command.createContext(
      { storyId: story, title: "Stored" },
      { headers: { traceparent: caller.traceparent, tracestate: "vendor=value" } },
    );
    const stored = await s.jsm.streams.getMessage(s.settings.stream, {
      last_by_subj: `${s.settings.subjectPrefix}.*.${story}.>`,
    });
    const send = ofTrace(caller.traceId).find((span) => span.kind === SpanKind.PRODUCER);
    expect(stored?.header.get("traceparent")).toBe(
      `00-${caller.traceId}-${send?.spanContext().spanId}-01`,
    );
    expect(stored?.header.get("tracestate")).toBe("vendor=value");
  });

  it("starts a trace of its own when the caller sends none, or a malformed one", async () => {
    for (const headers of [{}, { traceparent: "00-not-a-trace-01" }]) {
      tracing.reset();
      const story = newStory();
      await command.createContext({ storyId: story, title: "Untraced" }, { headers });
      const server = tracing
        .spans()
        .find((span) => span.name === "context.v1.ContextCommandService/CreateContext");
      expect(server).toBeDefined();
      expect(server?.parentSpanContext).toBeUndefined();
    }
  });

  it("marks a refused call with its code, as the caller's failure", async () => {
    const caller = callerSpan();
    const story = newStory();
    await command.createContext({ storyId: story, title: "Once" });
    await expect(
      command.createContext(
        { storyId: story, title: "Twice" },
        { headers: { traceparent: caller.traceparent } },
      ),
    ).rejects.toThrow();
    const [server] = ofTrace(caller.traceId).filter((span) => span.kind === SpanKind.SERVER);
    // ALREADY_EXISTS / FAILED_PRECONDITION: the caller's mistake, not the server's.
    expect(server?.attributes["rpc.grpc.status_code"]).toBeGreaterThan(0);
    expect(server?.status.code).toBe(0);
  });
});

describe("the snapshotter", () => {
  it("links the snapshot it writes to the append of the event that called for it", async () => {
    const story = newStory();
    await command.createContext({ storyId: story, title: "Snapshot me" });
    const caller = callerSpan();
    await command.addSubtask(
      { storyId: story, subtaskId: "a", title: "A" },
      { headers: { traceparent: caller.traceparent } },
    );
    const snapshot = await eventually(() => {
      const found = ofTrace(caller.traceId).find((span) => span.name.startsWith("snapshot "));
      expect(found, "a snapshot span in the trace of version 2's command").toBeDefined();
      return found as ReadableSpan;
    });
    const send = ofTrace(caller.traceId).find((span) => span.kind === SpanKind.PRODUCER);
    expect(snapshot.links.map((l) => l.context.spanId)).toEqual([send?.spanContext().spanId]);
  });
});

describe("the query service", () => {
  it("continues the caller's trace", async () => {
    const story = newStory();
    await command.createContext({ storyId: story, title: "Read me" });
    const caller = callerSpan();
    await query.getContext({ storyId: story }, { headers: { traceparent: caller.traceparent } });
    const server = ofTrace(caller.traceId).find(
      (span) => span.name === "context.v1.ContextQueryService/GetContext",
    );
    expect(server?.kind).toBe(SpanKind.SERVER);
    expect(parentOf(server as ReadableSpan)).toBe(caller.spanId);
  });

  it("spans a watch until the stream ends, however the caller ends it", async () => {
    const story = newStory();
    await command.createContext({ storyId: story, title: "Watch me" });
    const caller = callerSpan();
    const controller = new AbortController();
    for await (const answer of query.watchContext(
      { storyId: story },
      { signal: controller.signal, headers: { traceparent: caller.traceparent } },
    )) {
      expect(answer.state?.version).toBe(1);
      // Open while the stream is: not ended, not exported.
      expect(ofTrace(caller.traceId)).toEqual([]);
      controller.abort();
      break;
    }
    const watch = await eventually(() => {
      const found = ofTrace(caller.traceId).find(
        (span) => span.name === "context.v1.ContextQueryService/WatchContext",
      );
      expect(found, "the watch's span, ended with the stream").toBeDefined();
      return found as ReadableSpan;
    });
    expect(parentOf(watch)).toBe(caller.spanId);
    expect(watch.attributes["rpc.grpc.status_code"]).toBe(1); // CANCELLED
  });
});
