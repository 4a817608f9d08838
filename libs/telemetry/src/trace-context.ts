import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  type SpanOptions,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";

/**
 * Whether this process traces. Set once by startTracing; every instrumented path tests it first,
 * so with tracing off a call costs that test and nothing else (no span objects, no headers).
 */
export const tracing: { readonly enabled: boolean } = { enabled: false };

/** startTracing's switch (the only writer of `tracing.enabled`). */
export function setTracingEnabled(enabled: boolean): void {
  (tracing as { enabled: boolean }).enabled = enabled;
}

/** The instrumentation scope of everything the product traces. */
export const instrumentationScope = "context-service";

let cachedTracer: Tracer | undefined;

/** The product's tracer (from the provider startTracing registered; a no-op one before). */
export function tracer(): Tracer {
  cachedTracer ??= trace.getTracer(instrumentationScope);
  return cachedTracer;
}

/** Forgets the tracer, so the next provider registered is used (startTracing, shutdown). */
export function resetTracer(): void {
  cachedTracer = undefined;
}

/**
 * The W3C trace context of a span, as it travels in headers (RPC metadata, NATS message headers).
 * Baggage is never part of it: it may hold what the caller chose to send along, and this is stored.
 */
export interface TraceCarrier {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/** The header names of a TraceCarrier. */
export const traceHeaders = { traceparent: "traceparent", tracestate: "tracestate" } as const;

/** The carrier of `ctx`'s span (by default the active one); undefined when it has none. */
export function traceCarrierOf(ctx: Context = context.active()): TraceCarrier | undefined {
  const out: Record<string, string> = {};
  propagation.inject(ctx, out);
  const traceparent = out[traceHeaders.traceparent];
  if (traceparent === undefined) return undefined;
  const tracestate = out[traceHeaders.tracestate];
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}

/** Reads a header through a lookup function (Fetch Headers, NATS MsgHdrs, a record). */
const lookupGetter: TextMapGetter<(name: string) => string | null | undefined> = {
  get: (lookup, key) => lookup(key) ?? undefined,
  keys: () => [traceHeaders.traceparent, traceHeaders.tracestate, "baggage"],
};

/**
 * The context a caller sent (its span as the remote parent, and its baggage), read from headers
 * by `lookup`; the root context when it sent none, or a malformed one.
 */
export function contextFromHeaders(lookup: (name: string) => string | null | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, lookup, lookupGetter);
}

/** The remote span that headers read by `lookup` name; undefined when they name none (or a malformed one). */
export function spanContextOf(
  lookup: (name: string) => string | null | undefined,
): SpanContext | undefined {
  return trace.getSpanContext(contextFromHeaders(lookup));
}

/**
 * How a span that handles several messages relates to the spans that sent them (OpenTelemetry's
 * messaging conventions): a link to each; and when they all belong to one trace (one command's
 * events), the span continues that trace as a child of the first, so a command's trace reaches
 * the work it caused. A batch that mixes traces starts a trace of its own.
 */
export function consumerParentage(
  sources: readonly { readonly spanContext: SpanContext; readonly attributes?: Attributes }[],
  maxLinks = 128,
): { readonly parent: Context; readonly links: Link[] } {
  const links: Link[] = [];
  const first = sources[0]?.spanContext;
  let oneTrace = first !== undefined;
  for (const source of sources) {
    if (first !== undefined && source.spanContext.traceId !== first.traceId) oneTrace = false;
    if (links.length < maxLinks) {
      links.push(
        source.attributes
          ? { context: source.spanContext, attributes: source.attributes }
          : { context: source.spanContext },
      );
    }
  }
  const parent =
    oneTrace && first !== undefined ? trace.setSpanContext(ROOT_CONTEXT, first) : ROOT_CONTEXT;
  return { parent, links };
}

/** Ends `span` as failed with `error`, recording it as an exception event. */
export function endSpanWithError(span: Span, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  span.recordException(error instanceof Error ? error : message);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.end();
}

/**
 * Starts a span whose attributes are set only when it is recorded (sampled): the SDK checks and
 * copies the attributes given at start before it even asks the sampler, which made most of the
 * cost of a call that is not sampled. (The product's samplers do not look at attributes.)
 */
export function startSpan(name: string, options: SpanOptions, ctx: Context): Span {
  const { attributes, ...start } = options;
  const span = tracer().startSpan(name, start, ctx);
  if (attributes !== undefined && span.isRecording()) span.setAttributes(attributes);
  return span;
}

/**
 * Runs `fn` inside a new span of `ctx` (by default the active context), active while it runs,
 * ended when it settles; a throw marks the span failed. Only call with tracing on.
 */
export async function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span) => Promise<T>,
  ctx: Context = context.active(),
): Promise<T> {
  const span = startSpan(name, options, ctx);
  try {
    const result = await context.with(trace.setSpan(ctx, span), () => fn(span));
    span.end();
    return result;
  } catch (e) {
    endSpanWithError(span, e);
    throw e;
  }
}
