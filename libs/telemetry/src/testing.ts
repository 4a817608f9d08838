import { createLogger } from "@ctx/config";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { startTracing, type Tracing } from "./start-tracing.ts";

export type { ReadableSpan } from "@opentelemetry/sdk-trace";

/** Tracing for a test: every span of the process, as it ends, kept in memory. */
export interface InMemoryTracing extends Tracing {
  /** The spans ended so far. */
  spans(): ReadableSpan[];
  /** Forgets the spans ended so far. */
  reset(): void;
}

export async function startInMemoryTracing(serviceName = "test"): Promise<InMemoryTracing> {
  const exporter = new InMemorySpanExporter();
  const logger = createLogger({ name: serviceName, level: "warn", pretty: false });
  const tracing = await startTracing({ serviceName, logger, exporter, env: {} });
  return {
    ...tracing,
    spans: () => exporter.getFinishedSpans() as ReadableSpan[],
    reset: () => exporter.reset(),
  };
}
