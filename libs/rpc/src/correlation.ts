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
  /** The caller sent no correlation id: this one was generated (a handler may adopt a better one). */
  readonly generated: boolean;
}

const correlationKey = createContextKey<Correlation>(
  { correlationId: "", causationId: "", generated: true },
  { description: "correlation and causation ids of the call" },
);

const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const clean = (value: string | null) => (value !== null && ID.test(value) ? value : undefined);

/** Reads (or creates) the correlation ids of every call and echoes the correlation id back. */
export function correlationInterceptor(): Interceptor {
  return (next) => async (req) => {
    const given = clean(req.header.get(correlationHeaders.correlationId));
    const correlation: Correlation = {
      correlationId: given ?? uuidv7(),
      causationId: clean(req.header.get(correlationHeaders.causationId)) ?? "",
      generated: given === undefined,
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
    // The id the call ended with: a handler may have adopted another (adoptCorrelationId).
    const final = () => req.contextValues.get(correlationKey).correlationId;
    try {
      const res = await next(req);
      res.header.set(correlationHeaders.correlationId, final());
      return res;
    } catch (e) {
      // A failed call is the one whose logs are looked for: echo the id with the error too.
      const error = ConnectError.from(e);
      error.metadata.set(correlationHeaders.correlationId, final());
      throw error;
    }
  };
}

/** The correlation ids of the call being handled. */
export function correlationOf(ctx: Pick<HandlerContext, "values">): Correlation {
  return ctx.values.get(correlationKey);
}

/**
 * Makes `id` the correlation id of a call whose caller sent none (a generated one is replaced; one
 * the caller sent is kept), and returns the call's correlation: the command service adopts the
 * command id, which its events then need not store twice (envelope version 2). The caller sees it
 * in the x-correlation-id answer header.
 */
export function adoptCorrelationId(ctx: Pick<HandlerContext, "values">, id: string): Correlation {
  const current = ctx.values.get(correlationKey);
  if (!current.generated || !ID.test(id)) return current;
  const adopted: Correlation = { ...current, correlationId: id, generated: false };
  ctx.values.set(correlationKey, adopted);
  // The call's span named the generated id: it names the one its events and answer carry.
  const span = tracing.enabled ? trace.getActiveSpan() : undefined;
  if (span?.isRecording()) span.setAttribute("ctx.correlation_id", id);
  return adopted;
}
