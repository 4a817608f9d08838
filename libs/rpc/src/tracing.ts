import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { contextFromHeaders, endSpanWithError, startSpan } from "@ctx/telemetry";
import { context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";

/**
 * The codes a server span counts as its own failure (OpenTelemetry's gRPC conventions); the others
 * (NOT_FOUND, INVALID_ARGUMENT, ...) are the caller's, and leave the span's status unset.
 */
const serverErrors = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/**
 * A SERVER span for every call (installed only with tracing on), named and labelled as
 * OpenTelemetry's RPC conventions say (`context.v1.ContextQueryService/GetContextAtTime`,
 * `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`). It continues the trace of the
 * caller's W3C `traceparent`/`tracestate` headers, whatever the protocol (gRPC, gRPC-Web, Connect),
 * and is the active span while the handler runs, so what the handler does (an append, a read)
 * belongs to the caller's trace. A server stream's span lasts until the stream ends.
 */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const parent = contextFromHeaders((name) => req.header.get(name));
    const span = startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": "grpc",
          "rpc.service": req.service.typeName,
          "rpc.method": req.method.name,
        },
      },
      parent,
    );
    const active = trace.setSpan(parent, span);
    try {
      const res = await context.with(active, () => next(req));
      if (!res.stream) {
        end(span, 0);
        return res;
      }
      return { ...res, message: endingWith(res, span) } as typeof res;
    } catch (e) {
      failed(span, e);
      throw e;
    }
  };
}

/** Ends the span of a call that failed: as failed when the code says it is the server's fault. */
function failed(span: Span, e: unknown): void {
  const error = ConnectError.from(e);
  span.setAttribute("rpc.grpc.status_code", error.code);
  if (serverErrors.has(error.code)) endSpanWithError(span, error);
  else span.end();
}

function end(span: Span, code: number): void {
  span.setAttribute("rpc.grpc.status_code", code);
  span.end();
}

/** The stream's messages, ending `span` with the stream. */
async function* endingWith(res: StreamResponse, span: Span): AsyncIterable<unknown> {
  try {
    yield* res.message;
    end(span, 0);
  } catch (e) {
    failed(span, e);
    throw e;
  } finally {
    // Cancelled by the client (the iterator's return): the span still ends.
    if (span.isRecording()) {
      span.setStatus({ code: SpanStatusCode.UNSET });
      end(span, Code.Canceled);
    }
  }
}
