import { loadConfig } from "@ctx/config";
import { z } from "zod";

/**
 * Tracing settings, read from the standard OpenTelemetry variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). The OTLP
 * exporter reads its own (`OTEL_EXPORTER_OTLP_*` endpoint, headers, timeout, compression,
 * certificates) and the resource its own (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`); these
 * are the ones that decide what is set up, checked here so that a typo stops the service at start.
 *
 * Unlike the SDK's default (export to localhost:4318 unless told otherwise), tracing is off until
 * it is asked for: `OTEL_TRACES_EXPORTER=otlp` (or `console`), or an OTLP endpoint is set. Off, it
 * costs nothing: no context manager, no spans, no trace headers on calls or stored events.
 */
export interface TracingConfig {
  readonly enabled: boolean;
  readonly exporters: readonly ("otlp" | "console")[];
  readonly protocol: "http/protobuf" | "http/json";
  readonly sampler: { readonly name: SamplerName; readonly ratio: number };
  /**
   * Whether the caller's baggage is read (`OTEL_PROPAGATORS`; it is never stored). The W3C trace
   * context is always used: it is how a stored event names the trace that wrote it.
   */
  readonly baggage: boolean;
  readonly batch: {
    readonly scheduledDelayMillis: number;
    readonly exportTimeoutMillis: number;
    readonly maxQueueSize: number;
    readonly maxExportBatchSize: number;
  };
}

const samplerNames = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type SamplerName = (typeof samplerNames)[number];

/** A comma-separated list whose entries all belong to `allowed`. */
const list = <T extends string>(allowed: readonly T[], what: string) =>
  z
    .string()
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim().toLowerCase())
        .filter((s) => s !== ""),
    )
    .refine((entries) => entries.every((e) => (allowed as readonly string[]).includes(e)), {
      message: `must be a comma-separated list of ${what}: ${allowed.join(", ")}`,
    })
    .transform((entries) => entries as T[]);

const protocol = z
  .string()
  .transform((v) => v.trim().toLowerCase())
  .refine((v) => v !== "grpc", {
    message:
      "grpc is not built in: use http/protobuf (the collector's port 4318) or http/json instead",
  })
  .refine((v) => v === "http/protobuf" || v === "http/json", {
    message: "must be http/protobuf or http/json",
  })
  .transform((v) => v as "http/protobuf" | "http/json");

const positive = z.coerce.number().int().positive();

const httpUrl = z
  .string()
  .refine((v) => URL.canParse(v) && ["http:", "https:"].includes(new URL(v).protocol), {
    message: "must be an http or https URL (the collector's OTLP/HTTP receiver)",
  });

const schema = z.object({
  OTEL_SDK_DISABLED: z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .refine((v) => v === "true" || v === "false", { message: "must be true or false" })
    .transform((v) => v === "true")
    .default(false),
  OTEL_TRACES_EXPORTER: list(["otlp", "console", "none"] as const, "exporters").optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol.optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol.optional(),
  OTEL_TRACES_SAMPLER: z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .refine((v) => (samplerNames as readonly string[]).includes(v), {
      message: `must be one of ${samplerNames.join(", ")}`,
    })
    .transform((v) => v as SamplerName)
    .default("parentbased_always_on"),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
  OTEL_PROPAGATORS: list(["tracecontext", "baggage", "none"] as const, "propagators").default([
    "tracecontext",
    "baggage",
  ]),
  OTEL_BSP_SCHEDULE_DELAY: positive.default(5_000),
  OTEL_BSP_EXPORT_TIMEOUT: positive.default(30_000),
  OTEL_BSP_MAX_QUEUE_SIZE: positive.default(2_048),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: positive.default(512),
});

/** Reads and checks the tracing variables (ConfigError naming each bad one). */
export function loadTracingConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
): TracingConfig {
  const c = loadConfig(schema, env);
  const named = (c.OTEL_TRACES_EXPORTER ?? []).filter((e) => e !== "none");
  const endpoint =
    c.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ||
    c.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined;
  // An endpoint alone asks for OTLP export, unless the exporters were named (`none` included).
  const exporters = (
    c.OTEL_TRACES_EXPORTER === undefined && endpoint ? ["otlp"] : named
  ) as TracingConfig["exporters"];
  return {
    enabled: !c.OTEL_SDK_DISABLED && exporters.length > 0,
    exporters,
    protocol:
      c.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? c.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf",
    sampler: { name: c.OTEL_TRACES_SAMPLER, ratio: c.OTEL_TRACES_SAMPLER_ARG ?? 1 },
    baggage: c.OTEL_PROPAGATORS.includes("baggage"),
    batch: {
      scheduledDelayMillis: c.OTEL_BSP_SCHEDULE_DELAY,
      exportTimeoutMillis: c.OTEL_BSP_EXPORT_TIMEOUT,
      maxQueueSize: c.OTEL_BSP_MAX_QUEUE_SIZE,
      maxExportBatchSize: Math.min(c.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, c.OTEL_BSP_MAX_QUEUE_SIZE),
    },
  };
}
