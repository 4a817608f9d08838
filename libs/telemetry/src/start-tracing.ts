import type { Logger, StoppableService } from "@ctx/config";
import { context, DiagLogLevel, diag, propagation, trace } from "@opentelemetry/api";
import type { SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";
import { resetTracer, setTracingEnabled } from "./trace-context.ts";
import { loadTracingConfig, type TracingConfig } from "./tracing-config.ts";

/** Tracing as started in this process. */
export interface Tracing {
  readonly enabled: boolean;
  /** Exports what is buffered now (e.g. before a test reads a collector). */
  forceFlush(): Promise<void>;
  /**
   * Exports what is buffered and turns tracing off (the service is stopping). Never rejects: spans
   * the collector does not take are dropped, with a warning.
   */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** `service.name` unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise. */
  readonly serviceName: string;
  readonly serviceVersion?: string;
  /** Where OpenTelemetry's own warnings go (an exporter that cannot reach its collector). */
  readonly logger: Logger;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Spans go to this exporter, as they end, whatever the variables say (tests: an in-memory
   * exporter). Tracing is then on.
   */
  readonly exporter?: SpanExporter;
}

const off: Tracing = {
  enabled: false,
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};

/**
 * Starts tracing as the OTEL_* variables say (see loadTracingConfig): registers the provider, the
 * W3C propagators and an AsyncLocalStorage context manager with OpenTelemetry's API, which the
 * product's instrumentation (RPC servers, event store, projectors, snapshotter) uses. Off, nothing
 * is loaded or registered. Spans are exported in batches, from a bounded queue: when the collector
 * is away, spans beyond the queue are dropped, never memory. Throws ConfigError on a bad variable.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const config = loadTracingConfig(options.env);
  if (!config.enabled && options.exporter === undefined) return off;
  const [sdk, core, resources, hooks] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/context-async-hooks"),
  ]);
  diag.setLogger(diagToPino(options.logger), DiagLogLevel.WARN);
  const processors: SpanProcessor[] = [];
  if (options.exporter !== undefined) {
    processors.push(new sdk.SimpleSpanProcessor({ exporter: options.exporter }));
  } else {
    for (const name of config.exporters) {
      const exporter = name === "console" ? new sdk.ConsoleSpanExporter() : await otlp(config);
      processors.push(new sdk.BatchSpanProcessor({ exporter, ...config.batch }));
    }
  }
  const detected = resources.detectResources({
    detectors: [resources.hostDetector, resources.processDetector, resources.envDetector],
  });
  const resource = resources
    .defaultResource()
    .merge(
      resources.resourceFromAttributes({
        "service.name": options.serviceName,
        ...(options.serviceVersion ? { "service.version": options.serviceVersion } : {}),
      }),
    )
    .merge(detected);
  const provider = new sdk.TracerProvider({
    resource,
    sampler: sampler(sdk, config.sampler),
    spanProcessors: processors,
  });
  const contextManager = new hooks.AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(
    new core.CompositePropagator({
      propagators: [
        new core.W3CTraceContextPropagator(),
        ...(config.baggage ? [new core.W3CBaggagePropagator()] : []),
      ],
    }),
  );
  trace.setGlobalTracerProvider(provider);
  resetTracer();
  setTracingEnabled(true);
  let stopped = false;
  return {
    enabled: true,
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      if (stopped) return;
      stopped = true;
      setTracingEnabled(false);
      try {
        await provider.shutdown();
      } catch (e) {
        // The collector is away: what was left is dropped, and the service stops all the same.
        options.logger.warn({ err: e }, "tracing: the last spans could not be exported");
      } finally {
        trace.disable();
        propagation.disable();
        context.disable();
        diag.disable();
        resetTracer();
      }
    },
  };
}

/**
 * `start` of a service (see runService) with tracing around it: started before the service, from
 * the OTEL_* variables, and flushed and stopped after it.
 */
export function withTracing<C>(
  serviceName: string,
  start: (config: C, logger: Logger) => Promise<StoppableService>,
): (config: C, logger: Logger) => Promise<StoppableService> {
  return async (config, logger) => {
    const tracing = await startTracing({ serviceName, logger });
    if (tracing.enabled) logger.info("tracing on: spans are exported as OTEL_* configures");
    let service: StoppableService;
    try {
      service = await start(config, logger);
    } catch (e) {
      await tracing.shutdown();
      throw e;
    }
    return {
      async stop() {
        try {
          await service.stop();
        } finally {
          await tracing.shutdown();
        }
      },
    };
  };
}

async function otlp(config: TracingConfig): Promise<SpanExporter> {
  // Both read OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION and the
  // certificate variables themselves.
  if (config.protocol === "http/json") {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
    return new OTLPTraceExporter();
  }
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter();
}

function sampler(
  sdk: typeof import("@opentelemetry/sdk-trace"),
  { name, ratio }: TracingConfig["sampler"],
) {
  const root =
    name.endsWith("always_on") || (name.endsWith("traceidratio") && ratio >= 1)
      ? new sdk.AlwaysOnSampler()
      : name.endsWith("always_off")
        ? new sdk.AlwaysOffSampler()
        : new sdk.TraceIdRatioBasedSampler(ratio);
  return name.startsWith("parentbased_") ? new sdk.ParentBasedSampler({ root }) : root;
}

function diagToPino(logger: Logger) {
  const log =
    (level: "error" | "warn" | "info" | "debug" | "trace") =>
    (message: string, ...args: unknown[]) =>
      logger[level]({ otel: args.length > 0 ? args : undefined }, `opentelemetry: ${message}`);
  return {
    error: log("error"),
    warn: log("warn"),
    info: log("info"),
    debug: log("debug"),
    verbose: log("trace"),
  };
}
