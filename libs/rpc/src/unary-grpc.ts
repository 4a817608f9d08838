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
import { toNodeHeaders, unaryResponseHeaders } from "./response-headers.ts";

/** The shortest grpc-timeout a call can be held to; Node's timers have millisecond resolution. */
const minTimeoutMs = 1;

/** A unary method as the router registered it: its implementation and descriptor. */
export type UnaryImplSpec = MethodImplSpec & { readonly kind: "unary" };

export interface UnaryGrpcOptions {
  readonly interceptors: readonly Interceptor[];
  readonly acceptCompression: readonly Compression[];
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
 */
export function createUnaryGrpc(options: UnaryGrpcOptions) {
  const opt = validateUniversalHandlerOptions({
    interceptors: [...options.interceptors],
    acceptCompression: [...options.acceptCompression],
  });

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
      const timeout = parseTimeout(header.get("grpc-timeout"), opt.maxTimeoutMs);
      const context = handlerContext(spec, stream, header, url, call.signal, timeout.timeoutMs);
      let deadline: ReturnType<typeof setTimeout> | undefined;
      if (timeout.timeoutMs !== undefined && timeout.timeoutMs >= minTimeoutMs) {
        deadline = setTimeout(() => call.abort(deadlineExceeded()), timeout.timeoutMs);
      }
      const compression = negotiateResponseCompression(
        opt.acceptCompression,
        header.get("grpc-accept-encoding"),
      );
      if (compression) context.responseHeader.set("grpc-encoding", compression.name);
      let frame: Uint8Array | undefined;
      try {
        if (timeout.error) throw timeout.error;
        if (timeout.timeoutMs !== undefined && timeout.timeoutMs < minTimeoutMs) {
          // Node's timers count whole milliseconds: a shorter deadline would fire only after a
          // call that may already have done its work. It has passed before any work could start.
          throw new ConnectError(
            `deadline of ${timeout.timeoutMs} ms is shorter than the server can keep (${minTimeoutMs} ms)`,
            Code.DeadlineExceeded,
          );
        }
        const input = parse(spec, unwrap(await readBody(stream, opt.readMaxBytes), spec));
        const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
        const data = toBinary(spec.method.output, output);
        if (data.byteLength > opt.writeMaxBytes) {
          throw new ConnectError(
            `message size ${data.byteLength} is larger than configured writeMaxBytes ${opt.writeMaxBytes}`,
            Code.ResourceExhausted,
          );
        }
        const env = await envelopeCompress({ flags: 0, data }, compression, opt.compressMinBytes);
        frame = encodeEnvelope(env.flags, env.data);
      } catch (e) {
        setTrailerStatus(context.responseTrailer, errorOf(e));
      } finally {
        clearTimeout(deadline);
      }
      call.finish();
      respond(stream, context, frame);
    },
  };
}

/** The call a unary request arrived on, as the fast path needs it. */
export interface UnaryCall {
  /** Aborted when the client cancels or goes away, or by `abort` (the deadline). */
  readonly signal: AbortSignal;
  abort(reason: ConnectError): void;
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

function deadlineExceeded(): ConnectError {
  return new ConnectError("the operation timed out", Code.DeadlineExceeded);
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

/** What the call ends with, as Connect reports it. */
function errorOf(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

/**
 * The request message. Bytes that are no valid message are the caller's error: INVALID_ARGUMENT
 * (Connect says INTERNAL, which the adapter corrects on its own path).
 */
function parse(spec: UnaryImplSpec, bytes: Uint8Array) {
  try {
    return fromBinary(spec.method.input, bytes);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new ConnectError(
      `invalid request message: parse binary: ${message}`,
      Code.InvalidArgument,
    );
  }
}

/** The one uncompressed message of a unary request body. */
function unwrap(body: Uint8Array, spec: UnaryImplSpec): Uint8Array {
  if (body.byteLength < 5) {
    throw new ConnectError(
      body.byteLength === 0
        ? `protocol error: missing input message for unary method`
        : "protocol error: premature end of stream",
      body.byteLength === 0 ? Code.Unimplemented : Code.InvalidArgument,
    );
  }
  const flags = body[0] as number;
  if ((flags & 0b01) !== 0) {
    throw new ConnectError(
      `protocol error: received compressed message for ${spec.method.name} without grpc-encoding`,
      Code.Internal,
    );
  }
  const length = new DataView(body.buffer, body.byteOffset + 1, 4).getUint32(0);
  if (5 + length > body.byteLength) {
    throw new ConnectError("protocol error: premature end of stream", Code.InvalidArgument);
  }
  if (5 + length < body.byteLength) {
    throw new ConnectError(
      "protocol error: received extra input message for unary method",
      Code.Unimplemented,
    );
  }
  return body.subarray(5, 5 + length);
}

/** The whole request body (a unary request is one small message). */
function readBody(stream: http2.ServerHttp2Stream, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > maxBytes) {
        done(
          new ConnectError(
            `message size is larger than configured readMaxBytes ${maxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done();
    const onClose = () => {
      if (!settled) done(new ConnectError("the client closed the call", Code.Canceled));
    };
    let settled = false;
    const done = (e?: ConnectError) => {
      if (settled) return;
      settled = true;
      if (e) {
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("close", onClose);
        reject(e);
      } else {
        // The body has ended: no data follows, and the close listener finds the call settled.
        // Not removing them saves three listener searches per call.
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      }
    };
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onClose);
  });
}

/** Headers, then the message (when the call succeeded), then the status in the trailers. */
function respond(
  stream: http2.ServerHttp2Stream,
  context: HandlerContext,
  frame: Uint8Array | undefined,
): void {
  if (stream.destroyed) return;
  const head = toNodeHeaders(context.responseHeader);
  head[":status"] = 200;
  stream.respond(head, { waitForTrailers: true });
  stream.once("wantTrailers", () => {
    if (!stream.destroyed) stream.sendTrailers(toNodeHeaders(context.responseTrailer));
  });
  if (frame) stream.end(frame);
  else stream.end();
}
