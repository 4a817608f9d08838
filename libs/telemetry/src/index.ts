export { startTracing, type Tracing, type TracingOptions, withTracing } from "./start-tracing.ts";
export {
  consumerParentage,
  contextFromHeaders,
  endSpanWithError,
  inSpan,
  instrumentationScope,
  spanContextOf,
  startSpan,
  type TraceCarrier,
  traceCarrierOf,
  traceHeaders,
  tracer,
  tracing,
} from "./trace-context.ts";
export { loadTracingConfig, type SamplerName, type TracingConfig } from "./tracing-config.ts";
