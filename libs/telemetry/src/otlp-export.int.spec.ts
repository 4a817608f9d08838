import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger } from "@ctx/config";
import { SpanKind } from "@opentelemetry/api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTracing } from "./start-tracing.ts";
import { inSpan, traceCarrierOf, tracer, tracing } from "./trace-context.ts";

// The OTLP/HTTP export a service gets from the standard variables (withTracing calls startTracing
// as here), against a collector's receiver on loopback that keeps what it is sent.

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

let collector: Server;
let endpoint = "";
const received: Received[] = [];
const logger = createLogger({ name: "otlp-export", level: "silent", pretty: false });
const saved = { ...process.env };

beforeAll(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": req.headers["content-type"] ?? "" }).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));

afterEach(() => {
  received.length = 0;
  for (const key of Object.keys(process.env)) if (key.startsWith("OTEL_")) delete process.env[key];
  Object.assign(process.env, saved);
});

describe("OTLP export configured by OTEL_* variables", () => {
  it("sends spans as OTLP/HTTP JSON, with the resource and headers the variables name", async () => {
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20collector-token",
      OTEL_SERVICE_NAME: "renamed-service",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test",
      OTEL_BSP_SCHEDULE_DELAY: "50",
    });
    const t = await startTracing({ serviceName: "command-service", logger });
    expect(t.enabled).toBe(true);
    expect(tracing.enabled).toBe(true);
    let traceparent = "";
    await inSpan("exported", { kind: SpanKind.INTERNAL }, async () => {
      traceparent = traceCarrierOf()?.traceparent ?? "";
    });
    await t.shutdown();
    expect(tracing.enabled).toBe(false);

    expect(received.map((r) => r.path)).toEqual(["/v1/traces"]);
    const [request] = received as [Received];
    expect(request.headers["content-type"]).toContain("application/json");
    expect(request.headers.authorization).toBe("Bearer collector-token");
    const body = JSON.parse(request.body.toString("utf8")) as {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeSpans: { scope: { name: string }; spans: { name: string; traceId: string }[] }[];
      }[];
    };
    const [resourceSpans] = body.resourceSpans;
    const attribute = (key: string) =>
      resourceSpans?.resource.attributes.find((a) => a.key === key)?.value.stringValue;
    // The variables win over the name the service gives itself.
    expect(attribute("service.name")).toBe("renamed-service");
    expect(attribute("deployment.environment.name")).toBe("test");
    const [scope] = resourceSpans?.scopeSpans ?? [];
    expect(scope?.scope.name).toBe("context-service");
    expect(scope?.spans.map((s) => s.name)).toEqual(["exported"]);
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(traceparent).toContain(scope?.spans[0]?.traceId);
  });

  it("sends OTLP/HTTP protobuf by default, to the traces endpoint named for traces", async () => {
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/custom/traces`,
      OTEL_BSP_SCHEDULE_DELAY: "50",
    });
    const t = await startTracing({ serviceName: "query-service", logger });
    tracer().startSpan("one").end();
    await t.forceFlush();
    await t.shutdown();
    expect(received.map((r) => r.path)).toEqual(["/custom/traces"]);
    expect(received[0]?.headers["content-type"]).toBe("application/x-protobuf");
    // The span's name is in the encoded request.
    expect(received[0]?.body.includes(Buffer.from("one"))).toBe(true);
  });

  it("leaves tracing off, and registers nothing, when no exporter is asked for", async () => {
    const t = await startTracing({ serviceName: "projector", logger });
    expect(t.enabled).toBe(false);
    expect(tracing.enabled).toBe(false);
    // No propagator registered: nothing would be written into a call's or an event's headers.
    const span = tracer().startSpan("not recorded");
    expect(span.isRecording()).toBe(false);
    span.end();
    expect(traceCarrierOf()).toBeUndefined();
    await t.shutdown();
    expect(received).toEqual([]);
  });

  it("stops cleanly when the collector cannot be reached, dropping the spans", async () => {
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1",
      OTEL_EXPORTER_OTLP_TIMEOUT: "500",
    });
    const t = await startTracing({ serviceName: "command-service", logger });
    tracer().startSpan("lost").end();
    await expect(t.shutdown()).resolves.toBeUndefined();
  });
});
