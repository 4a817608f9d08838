import * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  createMethodImplSpec,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  createMethodUrl,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Logger } from "@ctx/config";
import { callContextValues } from "./call-connection.ts";
import { http2RequestHeaders } from "./request-headers.ts";
import { toNodeHeaders } from "./response-headers.ts";
import { createUnaryGrpc, type UnaryCall, type UnaryImplSpec } from "./unary-grpc.ts";

export interface NodeAdapterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly logger: Logger;
}

/** Handles one HTTP/2 stream (the server's "stream" event). */
export type StreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => void;

/**
 * The HTTP/2 stream handler for our routes: Connect's universal handlers, served straight from
 * Node's HTTP/2 streams (connect-node's adapter goes through the http1-style compatibility API,
 * which costs a request and a response object, header copies and stream wrappers per call), with
 * bad protobuf input answered INVALID_ARGUMENT (see fixGrpcParseError). Unary gRPC calls with
 * protobuf messages take a shorter path through Connect's pieces (see createUnaryGrpc).
 *
 * A call's signal is aborted when its stream closes before the response was sent (the client
 * cancelled or went away), with a ConnectError: not on every close, which would build an unused
 * DOMException per call.
 */
export function createNodeAdapter(options: NodeAdapterOptions): StreamHandler {
  const acceptCompression = [compressionGzip, compressionBrotli];
  const router = createConnectRouter({ interceptors: options.interceptors, acceptCompression });
  const unary = new Map<string, UnaryImplSpec>();
  options.routes(recordingUnary(router, unary));
  const unaryGrpc = createUnaryGrpc({ interceptors: options.interceptors, acceptCompression });
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);
  return (stream, headers) => {
    const path = headers[":path"] ?? "";
    const query = path.indexOf("?");
    const pathname = query < 0 ? path : path.slice(0, query);
    const handler = paths.get(pathname);
    // A stream can fail (reset by the client, session gone) at any time; an unhandled "error" event
    // would end the process. Failures reach the call through its signal instead.
    stream.on("error", () => undefined);
    if (!handler) {
      if (!stream.destroyed) stream.respond({ ":status": 404 }, { endStream: true });
      return;
    }
    const call = new Call(stream);
    const spec = unary.get(pathname);
    const fast = spec !== undefined && unaryGrpc.accepts(headers);
    // The fast path reads a few headers; Connect's handler copies them all.
    const header = fast ? http2RequestHeaders(headers) : webHeaders(headers);
    const url = `http://${headers[":authority"] ?? headers.host ?? "localhost"}${path}`;
    const served = fast
      ? unaryGrpc.serve(spec, stream, header, url, call)
      : handler(call.request(header, url, headers[":method"] ?? "")).then((res) =>
          call.respond(res),
        );
    served.catch((reason: unknown) => {
      if (ConnectError.from(reason).code === Code.Aborted) return;
      options.logger.error({ err: reason, method: handler.method.name }, "handler failed");
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
  };
}

/**
 * A router that also remembers the unary methods registered on it (without options of their own),
 * with their implementations, for the unary gRPC path.
 */
function recordingUnary(router: ConnectRouter, unary: Map<string, UnaryImplSpec>): ConnectRouter {
  const remember = (spec: MethodImplSpec) => {
    if (spec.kind === "unary") unary.set(createMethodUrl("/", spec.method), spec);
  };
  const recording: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, opts) {
      router.service(service, implementation, opts);
      if (opts === undefined) {
        const spec = createServiceImplSpec(service, implementation);
        for (const method of Object.values(spec.methods)) remember(method);
      }
      return recording;
    },
    rpc(method, implementation, opts) {
      router.rpc(method, implementation, opts);
      if (opts === undefined) remember(createMethodImplSpec(method, implementation));
      return recording;
    },
  };
  return recording;
}

/** An HTTP/2 request's headers as fetch Headers, without the pseudo-headers. */
function webHeaders(headers: http2.IncomingHttpHeaders): Headers {
  const header = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (typeof value === "string") header.append(name, value);
    else if (Array.isArray(value)) for (const v of value) header.append(name, v);
  }
  return header;
}

/** One call on one HTTP/2 stream. */
class Call implements UnaryCall {
  readonly #stream: http2.ServerHttp2Stream;
  readonly #abort = new AbortController();
  #done = false;

  constructor(stream: http2.ServerHttp2Stream) {
    this.#stream = stream;
    stream.once("close", () => {
      if (!this.#done) this.#abort.abort(closedError(stream.rstCode ?? 0));
    });
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Cancels the call (its deadline passed) unless it is cancelled or answered already. */
  abort(reason: ConnectError): void {
    if (!this.#done && !this.#abort.signal.aborted) this.#abort.abort(reason);
  }

  /** The response is complete: a close from now on is no cancellation. */
  finish(): void {
    this.#done = true;
  }

  request(header: Headers, url: string, method: string): UniversalServerRequest {
    return {
      httpVersion: "2.0",
      method,
      url,
      header,
      // destroyOnReturn: false: a handler that stops reading early must not destroy the stream
      // it still answers on.
      body: this.#stream.iterator({ destroyOnReturn: false }),
      signal: this.#abort.signal,
      contextValues: callContextValues(this.#stream),
    };
  }

  async respond(res: UniversalServerResponse): Promise<void> {
    const stream = this.#stream;
    const fixed = res.status === 500 && res.body ? await fixConnectParseError(res) : res;
    const it = fixed.body?.[Symbol.asyncIterator]();
    let finished = false;
    try {
      // The first chunk comes before the headers: implementations may still set headers.
      let chunk = await it?.next();
      if (stream.destroyed) return;
      const trailer = fixed.trailer;
      const head = toNodeHeaders(fixed.header);
      head[":status"] = fixed.status;
      const endStream = (chunk === undefined || chunk.done === true) && trailer === undefined;
      stream.respond(head, { waitForTrailers: trailer !== undefined, endStream });
      if (trailer !== undefined) {
        stream.once("wantTrailers", () => {
          fixGrpcParseError(trailer);
          if (!stream.destroyed) stream.sendTrailers(toNodeHeaders(trailer));
        });
      }
      while (chunk !== undefined && chunk.done !== true) {
        await write(stream, chunk.value);
        chunk = await it?.next();
      }
      finished = true;
      this.#done = true;
      if (!endStream && !stream.destroyed) stream.end();
    } catch (e) {
      // Writing failed (the client went away): tell the implementation, stop.
      await it?.throw?.(e).catch(() => undefined);
      throw e;
    } finally {
      // Only a body left early needs return(): Connect's runs its cleanup (and builds an
      // AbortError) again on every call that has already completed.
      if (!finished) await it?.return?.().catch(() => undefined);
    }
  }
}

/** Why a call whose stream closed early ends, from the stream's HTTP/2 error code. */
function closedError(rstCode: number): ConnectError {
  const code =
    rstCode === 0 || rstCode === 8 // NO_ERROR, CANCEL
      ? Code.Canceled
      : rstCode === 7 // REFUSED_STREAM
        ? Code.Unavailable
        : rstCode === 11 // ENHANCE_YOUR_CALM
          ? Code.ResourceExhausted
          : Code.Internal;
  return new ConnectError(`the HTTP/2 stream closed early (error code ${rstCode})`, code);
}

/** What a write to a stream the client closed fails with (Aborted: not logged as a failure). */
const clientGone = () => new ConnectError("the client closed the call", Code.Aborted);

/** Writes a chunk, waiting for the stream to drain when its buffer is full. */
function write(stream: http2.ServerHttp2Stream, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed) {
      reject(clientGone());
      return;
    }
    if (stream.write(data)) {
      resolve();
      return;
    }
    const done = (e?: unknown) => {
      stream.off("drain", done);
      stream.off("close", closed);
      if (e === undefined) resolve();
      else reject(e);
    };
    const closed = () => done(clientGone());
    stream.once("drain", done);
    stream.once("close", closed);
  });
}

/*
 * Connect parses a request's protobuf bytes before any interceptor runs, and reports bytes that are
 * no valid message as INTERNAL ("parse binary: ..."), though it is the caller's input that is bad
 * (JSON it cannot parse is already INVALID_ARGUMENT). These turn that one case into INVALID_ARGUMENT,
 * for gRPC (status in the trailers) and for the Connect protocol (status in the JSON error body).
 */

/** gRPC and gRPC-Web: the status arrives in the trailers, written after the body. */
function fixGrpcParseError(trailer: Headers): void {
  if (trailer.get("grpc-status") !== String(Code.Internal)) return;
  const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
  if (message.startsWith("parse binary:")) {
    trailer.set("grpc-status", String(Code.InvalidArgument));
    trailer.set("grpc-message", encodeURIComponent(`invalid request message: ${message}`));
  }
}

/** The Connect protocol: the error is the (small) JSON body of a 500 response. */
async function fixConnectParseError(
  res: UniversalServerResponse,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body ?? []) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const error = parseJson(bytes.toString("utf8"));
  if (error?.code === "internal" && error.message?.startsWith("parse binary:")) {
    const fixedBody = JSON.stringify({
      code: "invalid_argument",
      message: `invalid request message: ${error.message}`,
    });
    return { ...res, status: 400, body: once(new TextEncoder().encode(fixedBody)) };
  }
  return { ...res, body: once(bytes) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function parseJson(text: string): { code?: string; message?: string } | undefined {
  try {
    return JSON.parse(text) as { code?: string; message?: string };
  } catch {
    return undefined;
  }
}
