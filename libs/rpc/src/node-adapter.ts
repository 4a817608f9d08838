import type * as http from "node:http";
import * as http2 from "node:http2";
import type { Readable, Writable } from "node:stream";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createConnectRouter,
  createMethodImplSpec,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  createMethodUrl,
  encodeEnvelope,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamFromJson,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
  parseTimeout as parseConnectTimeout,
} from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import {
  setTrailerStatus,
  trailerFlag,
  trailerParse,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Logger } from "@ctx/config";
import { callContextValues, type Http1Exchange } from "./call-connection.ts";
import type { Cors } from "./cors.ts";
import { deadlineExceeded, normalizeConnectError, requestReadTimeout } from "./errors.ts";
import { createExpiryQueue, type ExpiryHandle, type ExpiryQueue } from "./expiry-queue.ts";
import type { RpcLimits } from "./limits.ts";
import { type BodyEvents, closeUnread, envelopeBytes, RequestBody } from "./request-body.ts";
import { http2RequestHeaders } from "./request-headers.ts";
import { toNodeHeaders } from "./response-headers.ts";
import { RefusalReason, type ServerMetrics } from "./server-metrics.ts";
import type { GuardedSession } from "./session-guard.ts";
import { createUnaryGrpc, type UnaryCall, type UnaryImplSpec } from "./unary-grpc.ts";

export interface NodeAdapterOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** Interceptors of calls served by Connect's handlers. */
  readonly interceptors: Interceptor[];
  /** Interceptors of unary gRPC calls on the fast path (which answers expired calls itself). */
  readonly fastInterceptors: Interceptor[];
  readonly logger: Logger;
  readonly limits: RpcLimits;
  readonly metrics: ServerMetrics;
  /** Cross-origin calls from browsers: preflights answered, answers marked (see createCors). */
  readonly cors: Cors;
}

/** Serves the HTTP/2 streams and HTTP/1.1 requests of a server's connections. */
export interface NodeAdapter {
  /** Handles one HTTP/2 stream of a guarded connection (the session's "stream" event). */
  handle(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    session: GuardedSession,
  ): void;
  /** Handles one HTTP/1.1 request (the HTTP/1.1 server's "request" event). */
  handleHttp1(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** Stops the adapter's timers (the server is closing). */
  close(): void;
}

/**
 * Serves our routes from Node's HTTP/2 streams with Connect's universal handlers (connect-node's
 * adapter goes through the http1-style compatibility API, which costs a request and a response
 * object, header copies and stream wrappers per call). Unary gRPC calls with protobuf messages take
 * a shorter path through Connect's pieces (see createUnaryGrpc). HTTP/1.1 requests (gRPC-Web and
 * Connect from browsers, curl, `buf curl`) go to Connect's handlers with the same bounds. Around
 * all of them:
 *
 * - **sizes**: a request message over `maxRequestBytes`, counted after decompression, is refused
 *   RESOURCE_EXHAUSTED; so is the body of a one-message request that brings more than that (read
 *   no further; see RequestBody); a response message over `maxResponseBytes` is not sent
 *   (RESOURCE_EXHAUSTED instead). Connect applies its `readMaxBytes` to the envelope's announced
 *   length before it reads the message and to the decompressed size while it inflates (zlib stops
 *   at the limit), so a gzip bomb never inflates past it;
 * - **time**: a one-message request must arrive in full within `requestReadTimeoutMs`; a unary call
 *   ends at `maxDeadlineMs` at the latest (the client's deadline, if shorter, otherwise the
 *   server's), a stream at `maxStreamDeadlineMs` (0: none). An expired call is answered at once,
 *   whether or not its handler notices (see abortInterceptor), and its signal is aborted;
 * - **bad bytes**: Connect's own errors for what a client sent become INVALID_ARGUMENT in our words,
 *   on every protocol (see normalizeConnectError and Call.respond);
 * - **browsers**: a CORS preflight (OPTIONS) is answered from `cors`, and an answer to an allowed
 *   origin says so.
 *
 * A call's signal is aborted when its stream closes before the response was sent (the client
 * cancelled or went away), with a ConnectError: not on every close, which would build an unused
 * DOMException per call.
 */
export function createNodeAdapter(options: NodeAdapterOptions): NodeAdapter {
  const { limits, metrics } = options;
  const acceptCompression = [compressionGzip, compressionBrotli];
  const sizes = { readMaxBytes: limits.maxRequestBytes, writeMaxBytes: limits.maxResponseBytes };
  const router = createConnectRouter({
    interceptors: options.interceptors,
    acceptCompression,
    ...sizes,
  });
  const unary = new Map<string, UnaryImplSpec>();
  options.routes(recordingUnary(router, unary));
  const unaryGrpc = createUnaryGrpc({
    interceptors: options.fastInterceptors,
    acceptCompression,
    ...sizes,
    maxDeadlineMs: limits.maxDeadlineMs,
  });
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);
  const env: CallEnv = {
    metrics,
    limits,
    reads: createExpiryQueue(limits.requestReadTimeoutMs, (call: Call) => call.readTimedOut()),
    deadlines: createExpiryQueue(limits.maxDeadlineMs, (call: Call) => call.deadlinePassed()),
  };
  const { cors } = options;
  return {
    handle(stream, headers, session) {
      const path = headers[":path"] ?? "";
      const query = path.indexOf("?");
      const pathname = query < 0 ? path : path.slice(0, query);
      // A stream can fail (reset by the client, session gone) at any time; an unhandled "error"
      // event would end the process. Failures reach the call through its signal instead.
      stream.on("error", () => undefined);
      if (headers[":method"] === "OPTIONS") {
        const answer = cors.preflight(headers.origin);
        if (!stream.destroyed) {
          stream.respond({ ...answer.headers, ":status": answer.status }, { endStream: true });
        }
        return;
      }
      const handler = paths.get(pathname);
      if (!handler) {
        if (!stream.destroyed) stream.respond({ ":status": 404 }, { endStream: true });
        return;
      }
      const spec = unary.get(pathname);
      const fast = spec !== undefined && unaryGrpc.accepts(headers);
      const kind = handler.method.methodKind;
      const call = new H2Call(
        stream,
        env,
        session,
        kind === "unary" || kind === "server_streaming",
        // Browsers never call with gRPC's own protocol, which the fast path serves.
        fast ? undefined : cors.responseHeaders(headers.origin),
      );
      const url = `http://${headers[":authority"] ?? headers.host ?? "localhost"}${path}`;
      let served: Promise<void>;
      if (fast) {
        // The fast path reads a few headers; Connect's handler copies them all.
        served = unaryGrpc.serve(spec, stream, http2RequestHeaders(headers), url, call);
      } else {
        const header = webHeaders(headers);
        limitDeadline(header, handler.method, limits);
        const request = call.request(
          header,
          url,
          headers[":method"] ?? "",
          headers["content-length"],
        );
        served = handler(request).then((res) => call.respond(res));
      }
      served.catch((reason: unknown) => {
        call.finish();
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, method: handler.method.name }, "handler failed");
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
    },
    handleHttp1(req, res) {
      const path = req.url ?? "/";
      const query = path.indexOf("?");
      const pathname = query < 0 ? path : path.slice(0, query);
      // As above: failures reach the call through its signal, never as an unhandled "error".
      req.on("error", () => undefined);
      res.on("error", () => undefined);
      if (req.method === "OPTIONS") {
        const answer = cors.preflight(req.headers.origin);
        res.writeHead(answer.status, answer.headers).end();
        return;
      }
      const handler = paths.get(pathname);
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      const kind = handler.method.methodKind;
      const call = new H1Call(
        { req, res },
        env,
        kind === "unary" || kind === "server_streaming",
        cors.responseHeaders(req.headers.origin),
      );
      const url = `http://${req.headers.host ?? "localhost"}${path}`;
      const header = webHeaders(req.headers);
      limitDeadline(header, handler.method, limits);
      const request = call.request(header, url, req.method ?? "", req.headers["content-length"]);
      handler(request)
        .then((answer) => call.respond(answer))
        .catch((reason: unknown) => {
          call.finish();
          if (ConnectError.from(reason).code === Code.Aborted) return;
          options.logger.error({ err: reason, method: handler.method.name }, "handler failed");
          res.destroy();
        });
    },
    close() {
      env.reads.clear();
      env.deadlines.clear();
    },
  };
}

/** What the calls of one server share. */
interface CallEnv {
  readonly metrics: ServerMetrics;
  readonly limits: RpcLimits;
  /** Calls whose one-message request is still arriving. */
  readonly reads: ExpiryQueue<Call>;
  /** Fast-path calls held to the server's longest deadline. */
  readonly deadlines: ExpiryQueue<Call>;
}

/**
 * A call served by Connect's handler gets its deadline in its headers, where Connect reads it: the
 * client's if it is within the server's longest (`maxDeadlineMs` for unary calls,
 * `maxStreamDeadlineMs` for streams, 0: none), else the server's. A malformed value is left for
 * Connect to refuse (INVALID_ARGUMENT).
 */
function limitDeadline(header: Headers, method: DescMethod, limits: RpcLimits): void {
  const max = method.methodKind === "unary" ? limits.maxDeadlineMs : limits.maxStreamDeadlineMs;
  if (max <= 0) return;
  const contentType = header.get("content-type") ?? "";
  if (contentType.startsWith("application/grpc")) {
    // gRPC and gRPC-Web. At most 8 digits: seconds from 100,000 s on.
    const given = parseGrpcTimeout(header.get("grpc-timeout"), Number.MAX_SAFE_INTEGER);
    if (given.error) return;
    if (given.timeoutMs === undefined || given.timeoutMs > max) {
      header.set("grpc-timeout", max < 1e8 ? `${max}m` : `${Math.ceil(max / 1000)}S`);
    }
  } else {
    const given = parseConnectTimeout(header.get("connect-timeout-ms"), Number.MAX_SAFE_INTEGER);
    if (given.error) return;
    if (given.timeoutMs === undefined || given.timeoutMs > max) {
      header.set("connect-timeout-ms", String(max));
    }
  }
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

/** A request's headers as fetch Headers, without HTTP/2's pseudo-headers. */
function webHeaders(headers: http2.IncomingHttpHeaders | http.IncomingHttpHeaders): Headers {
  const header = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (typeof value === "string") header.append(name, value);
    else if (Array.isArray(value)) for (const v of value) header.append(name, v);
  }
  return header;
}

/**
 * One call: its signal, its deadline and the arrival of its request, and the writing of the answer
 * Connect's handler gives, with our words for Connect's own errors. What it is carried over is
 * its subclass's: an HTTP/2 stream (H2Call) or an HTTP/1.1 exchange (H1Call).
 */
abstract class Call implements BodyEvents {
  protected readonly env: CallEnv;
  readonly #abort = new AbortController();
  /** Whether the request is one message whose arrival the read timeout bounds. */
  readonly #oneMessage: boolean;
  /** CORS headers for the answer (a browser's call from an allowed origin). */
  readonly #cors: Readonly<Record<string, string>> | undefined;
  #done = false;
  #read: ExpiryHandle | undefined;
  #interruptRead: ((e: ConnectError) => void) | undefined;
  #deadline: ExpiryHandle | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineMs: number | undefined;

  constructor(
    env: CallEnv,
    oneMessage: boolean,
    cors: Readonly<Record<string, string>> | undefined,
  ) {
    this.env = env;
    this.#oneMessage = oneMessage;
    this.#cors = cors;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Cancels the call unless it is cancelled or answered already. */
  abort(reason: ConnectError): void {
    if (!this.#done && !this.#abort.signal.aborted) this.#abort.abort(reason);
  }

  /** The response is complete: a close from now on is no cancellation. */
  finish(): void {
    this.#done = true;
    this.#clearTimers();
  }

  /** The stream or connection closed: a call not answered yet is cancelled with `reason`. */
  protected closed(reason: () => ConnectError): void {
    this.#clearTimers();
    if (!this.#done) this.#abort.abort(reason());
  }

  // --- the request's arrival (BodyEvents) ---

  reading(interrupt: (e: ConnectError) => void): void {
    this.#interruptRead = interrupt;
    if (this.#oneMessage && !this.#done) this.#read = this.env.reads.add(this);
  }

  ended(): void {
    this.#interruptRead = undefined;
    this.#read?.remove();
    this.#read = undefined;
  }

  tooLarge(): void {
    this.env.metrics.refused(RefusalReason.requestTooLarge);
  }

  refused(reason: RefusalReason): void {
    this.env.metrics.refused(reason);
  }

  readTimedOut(): void {
    this.#read = undefined;
    if (this.#done) return;
    this.env.metrics.refused(RefusalReason.readTimeout);
    const error = requestReadTimeout(this.env.limits.requestReadTimeoutMs);
    this.#interruptRead?.(error);
    this.#interruptRead = undefined;
    this.expire(error);
  }

  // --- deadlines ---

  /**
   * Holds the call (on the fast path) to the client's deadline if it is shorter than the server's
   * longest, with a timer of its own, or else to the server's, in the shared queue.
   */
  startDeadline(clientMs: number | undefined): void {
    const max = this.env.limits.maxDeadlineMs;
    if (clientMs !== undefined && clientMs < max) {
      this.#deadlineMs = clientMs;
      this.#deadlineTimer = setTimeout(() => this.deadlinePassed(), clientMs);
    } else {
      this.#deadlineMs = max;
      this.#deadline = this.env.deadlines.add(this);
    }
  }

  deadlinePassed(): void {
    this.#deadline = undefined;
    this.#deadlineTimer = undefined;
    if (this.#done) return;
    const error = deadlineExceeded(this.#deadlineMs);
    this.#interruptRead?.(error);
    this.#interruptRead = undefined;
    this.expire(error);
  }

  /** Aborts the call's signal (Connect's handler answers through abortInterceptor). */
  protected expire(error: ConnectError): void {
    this.abort(error);
  }

  #clearTimers(): void {
    this.#read?.remove();
    this.#read = undefined;
    this.#interruptRead = undefined;
    this.#deadline?.remove();
    this.#deadline = undefined;
    if (this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
  }

  // --- the wire, as the subclass carries it ---

  protected abstract readonly httpVersion: string;
  /** The request body as it arrives. */
  protected abstract body(): Readable;
  protected abstract contextValues(): ContextValues;
  /** The answer can no longer be started: the wire is gone, or the headers are out. */
  protected abstract cannotAnswer(): boolean;
  /**
   * Sends the status and headers; with `trailer`, the answer ends with trailers (given by
   * `trailer()` when the body is done, normalized).
   */
  protected abstract sendHead(
    status: number,
    head: http2.OutgoingHttpHeaders,
    endStream: boolean,
    trailer: (() => Headers) | undefined,
  ): void;
  protected abstract writeChunk(data: Uint8Array): Promise<void>;
  /** Ends an answer whose head did not end it. */
  protected abstract endAnswer(): void;
  /** The answer is out: drops what the client still sends that nobody will read. */
  protected abstract closeUnread(): void;

  // --- Connect's handler ---

  request(header: Headers, url: string, method: string, contentLength: string | undefined) {
    const limit = this.env.limits.maxRequestBytes;
    const request: UniversalServerRequest = {
      httpVersion: this.httpVersion,
      method,
      url,
      header,
      body: new RequestBody(
        this.body(),
        contentLength,
        this.#oneMessage ? limit + envelopeBytes : undefined,
        limit,
        this,
      ),
      signal: this.#abort.signal,
      contextValues: this.contextValues(),
    };
    return request;
  }

  async respond(res: UniversalServerResponse): Promise<void> {
    const fixed = await this.#normalized(res);
    const it = fixed.body?.[Symbol.asyncIterator]();
    const webTrailers = isGrpcWeb(fixed.header);
    let finished = false;
    try {
      // The first chunk comes before the headers: implementations may still set headers.
      let chunk = await it?.next();
      if (this.cannotAnswer()) return;
      const trailer = fixed.trailer;
      const head = toNodeHeaders(fixed.header);
      if (this.#cors !== undefined) Object.assign(head, this.#cors);
      const endStream = (chunk === undefined || chunk.done === true) && trailer === undefined;
      this.sendHead(
        fixed.status,
        head,
        endStream,
        trailer === undefined
          ? undefined
          : () => {
              this.#normalizeTrailer(trailer);
              return trailer;
            },
      );
      while (chunk !== undefined && chunk.done !== true) {
        const data = webTrailers ? this.#normalizeWebTrailer(chunk.value) : chunk.value;
        await this.writeChunk(data);
        chunk = await it?.next();
      }
      finished = true;
      this.finish();
      if (!endStream) this.endAnswer();
      if (trailer === undefined) this.closeUnread();
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

  /*
   * Connect reports some of a client's mistakes that it finds before any interceptor runs in its
   * own words and codes (see normalizeConnectError); these put ours on the wire instead, for each
   * protocol's way of carrying a status. They look only at failed calls.
   */

  /** gRPC: the status is in the trailers. */
  #normalizeTrailer(trailer: Headers): void {
    const status = trailer.get("grpc-status");
    if (status === null || status === "0") return;
    const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
    const normalized = normalizeConnectError(Number(status) as Code, message);
    if (normalized === undefined) return;
    this.env.metrics.refused(normalized.reason);
    trailer.delete("grpc-status-details-bin");
    setTrailerStatus(trailer, new ConnectError(normalized.message, normalized.code));
  }

  /** gRPC-Web: the status is in the trailers frame that ends the body. */
  #normalizeWebTrailer(chunk: Uint8Array): Uint8Array {
    const flags = chunk[0] ?? 0;
    // An uncompressed trailers frame (Connect compresses only frames of 1 KiB and more).
    if ((flags & trailerFlag) !== trailerFlag || (flags & 0b01) !== 0) return chunk;
    const trailer = trailerParse(chunk.subarray(envelopeBytes));
    const before = trailer.get("grpc-message");
    this.#normalizeTrailer(trailer);
    if (trailer.get("grpc-message") === before) return chunk;
    return encodeEnvelope(trailerFlag, trailerSerialize(trailer));
  }

  /** The Connect protocol: a unary error is a JSON body; a stream's is in its end-stream message. */
  async #normalized(res: UniversalServerResponse): Promise<UniversalServerResponse> {
    const contentType = res.header?.get("content-type") ?? "";
    if (res.status !== 200 && res.body && contentType === "application/json") {
      const bytes = await readAll(res.body);
      const error = safely(() => errorFromJsonBytes(bytes, undefined, unknownError));
      const normalized = error && normalizeConnectError(error.code, error.rawMessage);
      if (!error || !normalized) return { ...res, body: once(bytes) };
      this.env.metrics.refused(normalized.reason);
      const body = errorToJsonBytes(new ConnectError(normalized.message, normalized.code), {});
      const header = new Headers(res.header);
      // Connect set the length of the body it wrote: a different body needs its own.
      header.set("content-length", String(body.byteLength));
      return { ...res, status: codeToHttpStatus(normalized.code), header, body: once(body) };
    }
    if (contentType.startsWith("application/connect+") && res.body) {
      return { ...res, body: this.#normalizedEndStream(res.body) };
    }
    return res;
  }

  async *#normalizedEndStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of body) {
      const flags = chunk[0] ?? 0;
      if ((flags & endStreamFlag) !== endStreamFlag || (flags & 0b01) !== 0) {
        yield chunk;
        continue;
      }
      const end = safely(() => endStreamFromJson(chunk.subarray(envelopeBytes)));
      const error = end?.error;
      const normalized = error && normalizeConnectError(error.code, error.rawMessage);
      if (!end || !normalized) {
        yield chunk;
        continue;
      }
      this.env.metrics.refused(normalized.reason);
      const fixed = new ConnectError(normalized.message, normalized.code);
      const json = JSON.stringify(endStreamToJson(end.metadata, fixed, undefined));
      yield encodeEnvelope(endStreamFlag, new TextEncoder().encode(json));
    }
  }
}

/** A call on an HTTP/2 stream: every protocol, and the only kind the fast path serves. */
class H2Call extends Call implements UnaryCall {
  readonly #stream: http2.ServerHttp2Stream;
  /** The fast path: an expired call is answered here, with gRPC trailers. */
  #answersExpiry = false;
  protected readonly httpVersion = "2.0";

  constructor(
    stream: http2.ServerHttp2Stream,
    env: CallEnv,
    session: GuardedSession,
    oneMessage: boolean,
    cors: Readonly<Record<string, string>> | undefined,
  ) {
    super(env, oneMessage, cors);
    this.#stream = stream;
    session.streamOpened();
    stream.once("close", () => {
      session.streamClosed();
      this.closed(() => closedError(stream.rstCode ?? 0));
    });
  }

  override startDeadline(clientMs: number | undefined): void {
    this.#answersExpiry = true;
    super.startDeadline(clientMs);
  }

  /** Aborts the call's signal and, on the fast path, answers it now with the error. */
  protected override expire(error: ConnectError): void {
    this.abort(error);
    if (!this.#answersExpiry) return;
    // Connect's handler answers through abortInterceptor; the fast path's handler may still be
    // running, and its answer, when it comes, finds the stream answered.
    this.finish();
    const stream = this.#stream;
    if (stream.destroyed || stream.headersSent) return;
    const trailer = new Headers();
    setTrailerStatus(trailer, error);
    stream.respond(
      { ":status": 200, "content-type": "application/grpc+proto" },
      { waitForTrailers: true },
    );
    stream.once("wantTrailers", () => {
      if (stream.destroyed) return;
      stream.sendTrailers(toNodeHeaders(trailer));
      closeUnread(stream);
    });
    stream.end();
  }

  protected body(): Readable {
    return this.#stream;
  }

  protected contextValues(): ContextValues {
    return callContextValues(this.#stream);
  }

  protected cannotAnswer(): boolean {
    return this.#stream.destroyed || this.#stream.headersSent;
  }

  protected sendHead(
    status: number,
    head: http2.OutgoingHttpHeaders,
    endStream: boolean,
    trailer: (() => Headers) | undefined,
  ): void {
    const stream = this.#stream;
    head[":status"] = status;
    stream.respond(head, { waitForTrailers: trailer !== undefined, endStream });
    if (trailer === undefined) return;
    stream.once("wantTrailers", () => {
      if (stream.destroyed) return;
      stream.sendTrailers(toNodeHeaders(trailer()));
      closeUnread(stream);
    });
  }

  protected writeChunk(data: Uint8Array): Promise<void> {
    return write(this.#stream, data);
  }

  protected endAnswer(): void {
    if (!this.#stream.destroyed) this.#stream.end();
  }

  protected closeUnread(): void {
    closeUnread(this.#stream);
  }
}

/**
 * A call over HTTP/1.1: gRPC-Web and Connect (unary and server streams), as browsers and plain
 * HTTP clients send them. One call per connection at a time, so no stream bookkeeping; a request
 * whose body was not read to its end (refused for its size) closes its connection after the answer.
 */
class H1Call extends Call {
  readonly #exchange: Http1Exchange;
  /** The trailers the answer ends with (gRPC over HTTP/1.1, chunked), when it has some. */
  #trailer: (() => Headers) | undefined;
  protected readonly httpVersion = "1.1";

  constructor(
    exchange: Http1Exchange,
    env: CallEnv,
    oneMessage: boolean,
    cors: Readonly<Record<string, string>> | undefined,
  ) {
    super(env, oneMessage, cors);
    this.#exchange = exchange;
    exchange.res.once("close", () => this.closed(connectionClosedError));
  }

  protected body(): Readable {
    return this.#exchange.req;
  }

  protected contextValues(): ContextValues {
    return callContextValues(this.#exchange);
  }

  protected cannotAnswer(): boolean {
    return this.#exchange.res.destroyed || this.#exchange.res.headersSent;
  }

  protected sendHead(
    status: number,
    head: http2.OutgoingHttpHeaders,
    endStream: boolean,
    trailer: (() => Headers) | undefined,
  ): void {
    const { req, res } = this.#exchange;
    // What the client still sends would be read (and dropped) before the next request.
    if (!req.complete) res.shouldKeepAlive = false;
    if (trailer !== undefined) {
      // HTTP/1.1 carries trailers after a chunked body (see endAnswer).
      head.trailer = "grpc-status, grpc-message, grpc-status-details-bin";
      this.#trailer = trailer;
    }
    res.writeHead(status, head as http.OutgoingHttpHeaders);
    if (endStream) res.end();
  }

  protected writeChunk(data: Uint8Array): Promise<void> {
    return write(this.#exchange.res, data);
  }

  protected endAnswer(): void {
    const res = this.#exchange.res;
    if (res.destroyed) return;
    if (this.#trailer !== undefined) res.addTrailers(toNodeHeaders(this.#trailer()));
    res.end();
  }

  /**
   * Nothing to do: an answer sent before its request was read says `Connection: close` (see
   * sendHead), and Node closes the connection once the answer is out.
   */
  protected closeUnread(): void {}
}

const unknownError = new ConnectError("unreadable error", Code.Unknown);

function isGrpcWeb(header: Headers | undefined): boolean {
  return header?.get("content-type")?.startsWith("application/grpc-web") === true;
}

function safely<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/**
 * Why a call whose stream closed early ends: the client reset it (any code: it gave up on the
 * call) or the connection went. REFUSED_STREAM and ENHANCE_YOUR_CALM come from the server's own
 * HTTP/2 stack refusing the stream.
 */
function closedError(rstCode: number): ConnectError {
  const code =
    rstCode === http2.constants.NGHTTP2_REFUSED_STREAM
      ? Code.Unavailable
      : rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM
        ? Code.ResourceExhausted
        : Code.Canceled;
  return new ConnectError(`the HTTP/2 stream closed early (error code ${rstCode})`, code);
}

/** Why an HTTP/1.1 call whose connection closed before its answer ends: the client went. */
const connectionClosedError = () =>
  new ConnectError("the HTTP/1.1 connection closed before the answer", Code.Canceled);

/** What a write to a stream the client closed fails with (Aborted: not logged as a failure). */
const clientGone = () => new ConnectError("the client closed the call", Code.Aborted);

/** Writes a chunk, waiting for the stream (or response) to drain when its buffer is full. */
function write(stream: Writable, data: Uint8Array): Promise<void> {
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
