import { trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";

export type { Logger } from "pino";

export interface LoggerOptions {
  /** Service or component name, on every line. */
  readonly name: string;
  readonly level?: string;
  /** Human-readable output; defaults to "stdout is a terminal". JSON otherwise. */
  readonly pretty?: boolean;
}

/** A pino logger: JSON lines for machines, pretty output on a terminal. */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pino({
    name: options.name,
    level: options.level ?? "info",
    // A line written inside a traced call names its trace, so logs and traces find each other.
    mixin: traceIds,
    ...(pretty
      ? { transport: { target: "pino-pretty", options: { colorize: true, singleLine: true } } }
      : {}),
  });
}

/** The trace and span ids of the active span (none before tracing starts, or outside a span). */
function traceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
