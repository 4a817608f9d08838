import {
  ConnectError,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { uuidv7 } from "@ctx/ids";
import { tracing } from "@ctx/telemetry";
import { trace } from "@opentelemetry/api";

/** Request headers that carry the ids tying a call to the events and logs it causes. */
export const correlationHeaders = {
  correlationId: "x-correlation-id",
  causationId: "x-causation-id",
} as const;

export interface Correlation {
  /** Shared by everything one user action causes; generated when the caller sends none. */
  readonly correlationId: string;
  /** What directly caused this call (e.g. an event id); empty when the caller sends none. */
  readonly causationId: string;
}

const correlationKey = createContextKey<Correlation>(
  { correlationId: "", causationId: "" },
  { description: "correlation and causation ids of the call" },
);

const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const clean = (value: string | null) => (value !== null && ID.test(value) ? value : undefined);

/** Reads (or creates) the correlation ids of every call and echoes the correlation id back. */
export function correlationInterceptor(): Interceptor {
  return (next) => async (req) => {
    const correlation: Correlation = {
      correlationId: clean(req.header.get(correlationHeaders.correlationId)) ?? uuidv7(),
      causationId: clean(req.header.get(correlationHeaders.causationId)) ?? "",
    };
    req.contextValues.set(correlationKey, correlation);
    // Tied to the trace: the call's span names the ids its events and log lines carry.
    const span = tracing.enabled ? trace.getActiveSpan() : undefined;
    if (span?.isRecording()) {
      span.setAttributes({
        "ctx.correlation_id": correlation.correlationId,
        ...(correlation.causationId ? { "ctx.causation_id": correlation.causationId } : {}),
      });
    }
    try {
      const res = await next(req);
      res.header.set(correlationHeaders.correlationId, correlation.correlationId);
      return res;
    } catch (e) {
      // A failed call is the one whose logs are looked for: echo the id with the error too.
      const error = ConnectError.from(e);
      error.metadata.set(correlationHeaders.correlationId, correlation.correlationId);
      throw error;
    }
  };
}

/** The correlation ids of the call being handled. */
export function correlationOf(ctx: Pick<HandlerContext, "values">): Correlation {
  return ctx.values.get(correlationKey);
}
