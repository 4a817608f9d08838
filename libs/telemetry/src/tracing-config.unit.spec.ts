import { isConfigError } from "@ctx/config";
import { describe, expect, it } from "vitest";
import { loadTracingConfig } from "./tracing-config.ts";

const problemsOf = (env: Record<string, string>) => {
  try {
    loadTracingConfig(env);
  } catch (e) {
    if (isConfigError(e)) return e.problems.map((p) => p.variable);
    throw e;
  }
  return [];
};

describe("tracing configuration (the standard OTEL_* variables)", () => {
  it("is off until an exporter or an OTLP endpoint is asked for", () => {
    expect(loadTracingConfig({}).enabled).toBe(false);
    expect(loadTracingConfig({ OTEL_SERVICE_NAME: "x" }).enabled).toBe(false);
  });

  it("exports over OTLP/HTTP (protobuf) once an endpoint is set", () => {
    const c = loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" });
    expect(c).toMatchObject({ enabled: true, exporters: ["otlp"], protocol: "http/protobuf" });
    const traces = loadTracingConfig({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "HTTP/JSON",
    });
    expect(traces).toMatchObject({ enabled: true, protocol: "http/json" });
  });

  it("follows OTEL_TRACES_EXPORTER, and OTEL_SDK_DISABLED over everything", () => {
    expect(loadTracingConfig({ OTEL_TRACES_EXPORTER: "console" })).toMatchObject({
      enabled: true,
      exporters: ["console"],
    });
    expect(loadTracingConfig({ OTEL_TRACES_EXPORTER: "otlp, console" }).exporters).toEqual([
      "otlp",
      "console",
    ]);
    // Named exporters win over an endpoint: `none` keeps tracing off.
    expect(
      loadTracingConfig({
        OTEL_TRACES_EXPORTER: "none",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      }).enabled,
    ).toBe(false);
    expect(
      loadTracingConfig({ OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "TRUE" }).enabled,
    ).toBe(false);
  });

  it("reads the sampler, the propagators and the batch limits", () => {
    const c = loadTracingConfig({
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_PROPAGATORS: "tracecontext",
      OTEL_BSP_MAX_QUEUE_SIZE: "100",
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "512",
    });
    expect(c.sampler).toEqual({ name: "parentbased_traceidratio", ratio: 0.25 });
    expect(c.baggage).toBe(false);
    // A batch never larger than the queue it is taken from.
    expect(c.batch).toMatchObject({ maxQueueSize: 100, maxExportBatchSize: 100 });
    expect(loadTracingConfig({}).sampler).toEqual({ name: "parentbased_always_on", ratio: 1 });
  });

  it("stops the service on a bad variable, naming it", () => {
    expect(problemsOf({ OTEL_TRACES_EXPORTER: "jaeger" })).toEqual(["OTEL_TRACES_EXPORTER"]);
    expect(problemsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318:x" })).toEqual([
      "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]);
    expect(problemsOf({ OTEL_TRACES_SAMPLER: "sometimes", OTEL_TRACES_SAMPLER_ARG: "2" })).toEqual([
      "OTEL_TRACES_SAMPLER",
      "OTEL_TRACES_SAMPLER_ARG",
    ]);
    expect(problemsOf({ OTEL_BSP_SCHEDULE_DELAY: "-1" })).toEqual(["OTEL_BSP_SCHEDULE_DELAY"]);
    expect(problemsOf({ OTEL_SDK_DISABLED: "maybe" })).toEqual(["OTEL_SDK_DISABLED"]);
    expect(problemsOf({ OTEL_PROPAGATORS: "b3" })).toEqual(["OTEL_PROPAGATORS"]);
  });

  it("says how to export when the grpc protocol is asked for", () => {
    try {
      loadTracingConfig({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
      expect.unreachable();
    } catch (e) {
      expect(String(e)).toContain("OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not built in");
      expect(String(e)).toContain("http/protobuf");
    }
  });
});
