import type * as http2 from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  encodeEnvelope,
  envelopeCompress,
  invokeUnaryImplementation,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import {
  contentTypeProto,
  grpcStatusOk,
  parseContentType,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { callContextValues } from "./call-connection.ts";
import { malformedRequest, responseTooLarge } from "./errors.ts";
import { type BodyEvents, closeUnread, readUnaryBody, unwrapUnary } from "./request-body.ts";
import { toNodeHeaders, unaryResponseHeaders } from "./response-headers.ts";
import { RefusalReason } from "./server-metrics.ts";

/** The shortest grpc-timeout a call can be held to; Node's timers have millisecond resolution. */
const minTimeoutMs = 1;

/** A unary method as the router registered it: its implementation and descriptor. */
export type UnaryImplSpec = MethodImplSpec & { readonly kind: "unary" };

export interface UnaryGrpcOptions {
  readonly interceptors: readonly Interceptor[];
  readonly acceptCompression: readonly Compression[];
  /** Largest request message; larger: RESOURCE_EXHAUSTED, read no further. */
  readonly readMaxBytes: number;
  /** Largest response message; larger is not sent: RESOURCE_EXHAUSTED. */
  readonly writeMaxBytes: number;
  /** The longest deadline a call is held to, and the deadline of one that sends none. */
  readonly maxDeadlineMs: number;
}

/**
 * Serves unary gRPC calls with binary (protobuf) messages and an uncompressed request, the calls
 * services take most, without Connect's streaming pipeline: Connect serves every call, unary ones
 * too, as a chain of async iterables (split, decompress, parse, invoke, serialize, compress, join),
 * which costs more CPU than the handler behind it, and aborts each finished call's signal with a
 * fresh DOMException, twice.
 *
 * The call still goes through Connect's own pieces: its interceptors (`invokeUnaryImplementation`),
 * its error trailers (`setTrailerStatus`) and response compression, with a handler context made
 * like Connect's (see handlerContext). `accepts` says which requests it serves; the rest
 * (gRPC with JSON or a compressed request, gRPC-Web, Connect) go to Connect's handler.
 *
 * Its limits are Connect's, applied earlier: the body is bounded as it arrives (see readUnaryBody),
 * the response before it is compressed. Its deadline is the client's, or the server's longest when
 * the client sends none or a longer one; an expired call is answered by the call itself (see
 * UnaryCall.startDeadline) even when its handler ignores its signal.
 */
export function createUnaryGrpc(options: UnaryGrpcOptions) {
  const opt = validateUniversalHandlerOptions({
    interceptors: [...options.interceptors],
    acceptCompression: [...options.acceptCompression],
    readMaxBytes: options.readMaxBytes,
    writeMaxBytes: options.writeMaxBytes,
  });
  const maxDeadlineMs = options.maxDeadlineMs;

  return {
    /** Whether this request is one the fast path serves (the method is unary). */
    accepts(headers: http2.IncomingHttpHeaders): boolean {
      if (headers[":method"] !== "POST") return false;
      const type = parseContentType(headers["content-type"] ?? null);
      if (type === undefined || !type.binary) return false;
      const encoding = headers["grpc-encoding"];
      return encoding === undefined || encoding === "identity";
    },

    async serve(
      spec: UnaryImplSpec,
      stream: http2.ServerHttp2Stream,
      header: Headers,
      url: string,
      call: UnaryCall,
    ): Promise<void> {
      const timeout = parseTimeout(header.get("grpc-timeout"), Number.MAX_SAFE_INTEGER);
      const clientMs = timeout.error ? undefined : timeout.timeoutMs;
      const context = handlerContext(
        spec,
        stream,
        header,
        url,
        call.signal,
        clientMs === undefined ? maxDeadlineMs : Math.min(clientMs, maxDeadlineMs),
      );
      const compression = negotiateResponseCompression(
        opt.acceptCompression,
        header.get("grpc-accept-encoding"),
      );
      if (compression) context.responseHeader.set("grpc-encoding", compression.name);
      let frame: Uint8Array | undefined;
      try {
        if (timeout.error) throw timeout.error;
        if (clientMs !== undefined && clientMs < minTimeoutMs) {
          // Node's timers count whole milliseconds: a shorter deadline would fire only after a
          // call that may already have done its work. It has passed before any work could start.
          throw new ConnectError(
            `deadline of ${clientMs} ms is shorter than the server can keep (${minTimeoutMs} ms)`,
            Code.DeadlineExceeded,
          );
        }
        call.startDeadline(clientMs);
        const body = await readUnaryBody(
          stream,
          header.get("content-length") ?? undefined,
          opt.readMaxBytes,
          call,
        );
        let input: ReturnType<typeof parse>;
        try {
          input = parse(spec, unwrapUnary(body, spec.method.name));
        } catch (e) {
          call.refused(RefusalReason.malformed);
          throw e;
        }
        const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
        const data = toBinary(spec.method.output, output);
        if (data.byteLength > opt.writeMaxBytes) {
          call.refused(RefusalReason.responseTooLarge);
          throw responseTooLarge(opt.writeMaxBytes, data.byteLength);
        }
        const env = await envelopeCompress({ flags: 0, data }, compression, opt.compressMinBytes);
        frame = encodeEnvelope(env.flags, env.data);
      } catch (e) {
        setTrailerStatus(context.responseTrailer, errorOf(e));
      }
      call.finish();
      respond(stream, context, frame);
    },
  };
}

/** The call a unary request arrived on, as the fast path needs it. */
export interface UnaryCall extends BodyEvents {
  /** Aborted when the client cancels or goes away, or when the call expires. */
  readonly signal: AbortSignal;
  /**
   * Holds the call to the client's deadline (ms; undefined: none), or to the server's longest if
   * that is sooner. When it passes, the signal is aborted and the call is answered
   * DEADLINE_EXCEEDED at once; the handler's answer, if it comes later, is dropped.
   */
  startDeadline(clientMs: number | undefined): void;
  /** Counts a refusal of the call. */
  refused(reason: RefusalReason): void;
  /** The response is decided: a stream closed from now on is no cancellation. */
  finish(): void;
}

/**
 * The handler context of a unary call, as Connect's `createHandlerContext` makes it, without what a
 * unary call does not need: Connect links a deadline signal, the request signal and its own into a
 * third (three AbortControllers, listeners added and removed), copies the request headers again,
 * and aborts the signal once more when the call ends. Here the call's one signal is the context's:
 * the client's cancellation and the deadline abort it, as Connect documents; a finished call leaves
 * it as it is.
 */
function handlerContext(
  spec: UnaryImplSpec,
  stream: http2.ServerHttp2Stream,
  requestHeader: Headers,
  url: string,
  signal: AbortSignal,
  timeoutMs: number | undefined,
): HandlerContext {
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const responseHeader = unaryResponseHeaders("content-type", contentTypeProto);
  const responseTrailer = unaryResponseHeaders("grpc-status", grpcStatusOk);
  return {
    method: spec.method,
    service: spec.method.parent,
    signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    requestMethod: "POST",
    requestHeader,
    responseHeader,
    responseTrailer,
    protocolName: "grpc",
    values: callContextValues(stream),
    url,
  };
}

/** Connect's response compression choice: the first of the caller's accepted encodings we have. */
function negotiateResponseCompression(
  available: readonly Compression[],
  accepted: string | null,
): Compression | null {
  if (accepted === null || accepted === "") return null;
  for (const name of accepted.split(",")) {
    const found = available.find((c) => c.name === name.trim());
    if (found) return found;
  }
  return null;
}

/**
 * What the call ends with. Errors of the handler went through the error edge (an interceptor);
 * these are the ones around it (reading, parsing, encoding the response).
 */
function errorOf(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

/** The request message. Bytes that are no valid message are the caller's error: INVALID_ARGUMENT. */
function parse(spec: UnaryImplSpec, bytes: Uint8Array) {
  try {
    return fromBinary(spec.method.input, bytes);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw malformedRequest(`parse binary: ${message}`, e);
  }
}

/** Headers, then the message (when the call succeeded), then the status in the trailers. */
function respond(
  stream: http2.ServerHttp2Stream,
  context: HandlerContext,
  frame: Uint8Array | undefined,
): void {
  // Answered already: the call expired (see UnaryCall.startDeadline).
  if (stream.destroyed || stream.headersSent) return;
  const head = toNodeHeaders(context.responseHeader);
  head[":status"] = 200;
  stream.respond(head, { waitForTrailers: true });
  stream.once("wantTrailers", () => {
    if (stream.destroyed) return;
    stream.sendTrailers(toNodeHeaders(context.responseTrailer));
    closeUnread(stream);
  });
  if (frame) stream.end(frame);
  else stream.end();
}
