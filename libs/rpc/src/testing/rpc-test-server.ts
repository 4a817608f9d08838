import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type HandlerContext,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { createLogger } from "@ctx/config";
import {
  CommandResultSchema,
  ContextCommandService,
  ContextQueryService,
  ContextSchema,
  type CreateContextRequest,
  type GetContextRequest,
  GetContextResponseSchema,
  type WatchContextRequest,
  WatchContextResponseSchema,
} from "@ctx/proto";
import { testAuth } from "@ctx/test-support";
import { Registry } from "prom-client";
import { createAccessPolicy } from "../access-policy.ts";
import { createAuthenticator } from "../authenticator.ts";
import { createHealthRegistry } from "../health.ts";
import type { RpcLimits } from "../limits.ts";
import { type Principal, principalOf, Role } from "../principal.ts";
import {
  type RpcAuth,
  type RpcServer,
  type RpcServerOptions,
  startRpcServer,
} from "../rpc-server.ts";

/*
 * A real RPC server (startRpcServer on a free port) serving the command and query services with
 * implementations that do what a test asks through the request:
 *
 * - CreateContext: title "wait" holds the call until its signal is aborted and fails with the
 *   reason; "ignore" holds it until the test releases it, ignoring the signal; else version 1.
 * - GetContext: story "big-N" answers a context whose title holds N bytes; "fail-known" fails with
 *   an error the classifier knows (NOT_FOUND); "fail-unknown" with one it does not.
 * - WatchContext: answers a first state (with a title of N bytes for "big-N"), then: "fail-known" /
 *   "fail-unknown" fail, "ignore" waits forever ignoring its signal, anything else waits for its
 *   signal and ends.
 */

/** An error the test server's classifier knows: NOT_FOUND. */
export class KnownTestError extends Error {
  override readonly name = "KnownTestError";
}

export type Protocol = "grpc" | "grpc-web" | "connect";
export const protocols: readonly Protocol[] = ["grpc", "grpc-web", "connect"];

export interface TestServer {
  readonly server: RpcServer;
  readonly port: number;
  readonly url: string;
  readonly registry: Registry;
  /** Errors the server logged as unexpected, with their causes. */
  readonly logged: { err: unknown; msg: string }[];
  /** Calls to CreateContext "ignore" in progress; `release()` lets them answer. */
  readonly ignoring: { count: number; release(): void };
  /** Signals of the WatchContext calls started, by story id. */
  readonly watches: Map<string, AbortSignal>;
  /** The principal of each CreateContext call, by story id (undefined: auth off). */
  readonly principals: Map<string, Principal | undefined>;
  commandClient(
    protocol: Protocol,
    options?: TransportTuning,
  ): Client<typeof ContextCommandService>;
  queryClient(protocol: Protocol, options?: TransportTuning): Client<typeof ContextQueryService>;
  /** A metric's value from /metrics' registry (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

/** Client-side options of a transport (what a misbehaving or careless client would change). */
export interface TransportTuning {
  /** Send requests gzipped. */
  readonly gzip?: boolean;
  readonly readMaxBytes?: number;
  readonly useBinaryFormat?: boolean;
  /** The authorization header to send (default: the test issuer's token, all roles; null: none). */
  readonly authorization?: string | null;
  /** HTTP/1.1 or HTTP/2 (default) for gRPC-Web and Connect; gRPC is HTTP/2 only. */
  readonly httpVersion?: "1.1" | "2";
}

/**
 * The authentication of the test server by default: bearer tokens of the shared test issuer
 * (testAuth), commands for writers and queries for readers, as the services run.
 */
export async function testServerAuth(): Promise<RpcAuth> {
  const auth = testAuth();
  return {
    authenticator: await createAuthenticator({
      jwt: { jwksFile: auth.jwksFile, issuer: auth.issuer, audience: auth.audience },
    }),
    policy: createAccessPolicy([
      { service: ContextCommandService, roles: [Role.writer] },
      { service: ContextQueryService, roles: [Role.reader] },
    ]),
  };
}

export async function startTestServer(
  options: {
    limits?: Partial<RpcLimits>;
    callsPerTurn?: number;
    /** Default: testServerAuth(); "off": every caller is served. */
    auth?: RpcAuth | "off";
    tls?: RpcServerOptions["tls"];
    reflection?: RpcServerOptions["reflection"];
    corsOrigins?: RpcServerOptions["corsOrigins"];
  } = {},
): Promise<TestServer> {
  const auth = options.auth ?? (await testServerAuth());
  const logged: { err: unknown; msg: string }[] = [];
  const logger = createLogger({ name: "rpc-test-server", level: "error" });
  // Keep what would be logged, and keep the test output quiet.
  const recordingLogger = new Proxy(logger, {
    get(target, prop, receiver) {
      if (prop === "error") {
        return (obj: { err: unknown }, msg: string) => logged.push({ err: obj.err, msg });
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  let releaseIgnored: () => void = () => undefined;
  let ignored = new Promise<void>((resolve) => {
    releaseIgnored = resolve;
  });
  const ignoring = {
    count: 0,
    release() {
      releaseIgnored();
      ignored = new Promise<void>((resolve) => {
        releaseIgnored = resolve;
      });
    },
  };
  const watches = new Map<string, AbortSignal>();
  const principals = new Map<string, Principal | undefined>();
  const registry = new Registry();
  const server = await startRpcServer({
    host: "127.0.0.1",
    port: 0,
    routes: (router) => {
      router.service(ContextCommandService, {
        async createContext(req: CreateContextRequest, ctx: HandlerContext) {
          principals.set(req.storyId, principalOf(ctx));
          if (req.title === "wait") {
            await aborted(ctx.signal);
            throw ConnectError.from(ctx.signal.reason);
          }
          if (req.title === "ignore") {
            ignoring.count++;
            await ignored;
            ignoring.count--;
          }
          return { result: create(CommandResultSchema, { version: 1 }) };
        },
      });
      router.service(ContextQueryService, {
        getContext(req: GetContextRequest) {
          if (req.storyId === "fail-known") throw new KnownTestError("no such story");
          if (req.storyId === "fail-unknown") throw new Error("a bug");
          return stateOf(req.storyId);
        },
        async *watchContext(req: WatchContextRequest, ctx: HandlerContext) {
          watches.set(req.storyId, ctx.signal);
          yield create(WatchContextResponseSchema, { state: stateOf(req.storyId) });
          if (req.storyId === "fail-known") throw new KnownTestError("the story went away");
          if (req.storyId === "fail-unknown") throw new Error("a bug in a stream");
          if (req.storyId === "ignore") await new Promise(() => undefined);
          await aborted(ctx.signal);
        },
      });
    },
    classify: (e) =>
      e instanceof KnownTestError ? new ConnectError(e.message, Code.NotFound) : undefined,
    logger: recordingLogger,
    health: createHealthRegistry([]),
    registry,
    ...(options.callsPerTurn === undefined ? {} : { callsPerTurn: options.callsPerTurn }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(auth === "off" ? {} : { auth }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.reflection === undefined ? {} : { reflection: options.reflection }),
    ...(options.corsOrigins === undefined ? {} : { corsOrigins: options.corsOrigins }),
  });
  const url = `${options.tls ? "https" : "http"}://127.0.0.1:${server.port}`;
  const sessions: Http2SessionManager[] = [];
  const transport = (protocol: Protocol, tuning: TransportTuning = {}): Transport => {
    const sessionManager = new Http2SessionManager(url);
    sessions.push(sessionManager);
    const { gzip, authorization, httpVersion = "2", ...rest } = tuning;
    const sent = authorization === undefined ? testAuth().authorization : authorization;
    const common = {
      baseUrl: url,
      sessionManager,
      ...rest,
      ...(gzip ? { sendCompression: compressionGzip } : {}),
      ...(sent === null ? {} : { interceptors: [bearer(sent)] }),
    };
    if (protocol === "grpc") return createGrpcTransport(common);
    if (protocol === "grpc-web") return createGrpcWebTransport({ ...common, httpVersion });
    return createConnectTransport({ ...common, httpVersion });
  };
  return {
    server,
    port: server.port,
    url,
    registry,
    logged,
    ignoring,
    watches,
    principals,
    commandClient: (protocol, tuning) =>
      createClient(ContextCommandService, transport(protocol, tuning)),
    queryClient: (protocol, tuning) =>
      createClient(ContextQueryService, transport(protocol, tuning)),
    async metric(name, labels = {}) {
      const metric = registry.getSingleMetric(name);
      if (!metric) return 0;
      const { values } = await metric.get();
      const found = values.find((v) =>
        Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
      );
      return found?.value ?? 0;
    },
    async close() {
      for (const s of sessions) s.abort();
      ignoring.release();
      await server.close(1_000);
    },
  };
}

/** A Connect client interceptor that sends this authorization header unless the call sets one. */
export function bearer(authorization: string): Interceptor {
  return (next) => (req) => {
    if (!req.header.has("authorization")) req.header.set("authorization", authorization);
    return next(req);
  };
}

/** A state whose title is N bytes for a story "big-N". */
function stateOf(storyId: string) {
  const big = /^big-(\d+)$/.exec(storyId);
  const title = big ? "x".repeat(Number(big[1])) : "T";
  return create(GetContextResponseSchema, {
    context: create(ContextSchema, { storyId, title }),
    version: 1,
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A gRPC-style request body: one envelope around `message`, optionally flagged compressed. */
export function envelope(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** The answer to one raw HTTP/2 request: status, headers and trailers, body. */
export interface RawAnswer {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The stream's close code (0: closed cleanly). */
  readonly rstCode: number;
}

/**
 * One request over a new HTTP/2 connection, its body given whole or written by `send` (which gets
 * the request stream and may keep writing), the whole answer collected. Settles when the answer
 * has ended (then the request is cancelled if the client is still sending, as clients do) or the
 * stream closed without one; rejects when the connection fails.
 */
export function rawRequest(
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | ((req: http2.ClientHttp2Stream) => void),
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    // The test issuer's token unless the test sends its own (or `authorization: undefined`).
    const all: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      authorization: testAuth().authorization,
      ...headers,
    };
    if (all.authorization === undefined) delete all.authorization;
    const req = session.request(all);
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      resolve({
        status: Number(head[":status"] ?? 0),
        headers: head,
        trailers,
        body: Buffer.concat(chunks),
        rstCode: req.rstCode ?? 0,
      });
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
      session.close();
    };
    req.on("response", (h) => {
      head = h;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("error", () => undefined);
    req.on("end", settle);
    req.on("close", settle);
    if (typeof body === "function") body(req);
    else req.end(body);
  });
}

/** grpc-status and grpc-message of a raw gRPC answer (trailers, or headers when trailers-only). */
export function grpcStatusOf(answer: RawAnswer): { code: number; message: string } {
  const value = (name: string) => {
    const v = answer.trailers[name] ?? answer.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  return {
    code: Number(value("grpc-status") ?? Number.NaN),
    message: decodeURIComponent(value("grpc-message") ?? ""),
  };
}

/** grpc-status and grpc-message from the trailers frame that ends a gRPC-Web body. */
export function grpcWebStatusOf(body: Buffer): { code: number; message: string } {
  let at = 0;
  while (at + 5 <= body.byteLength) {
    const flags = body[at] as number;
    const length = body.readUInt32BE(at + 1);
    const data = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if ((flags & 0x80) === 0) continue;
    const fields = new Map<string, string>();
    for (const line of data.toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    return {
      code: Number(fields.get("grpc-status")),
      message: decodeURIComponent(fields.get("grpc-message") ?? ""),
    };
  }
  return { code: Number.NaN, message: "" };
}

/**
 * The error of a Connect unary answer (its JSON body), checked to be well-formed: the body parses
 * and is as long as its content-length says.
 */
export function connectErrorOf(answer: RawAnswer): { code?: string; message?: string } {
  const length = answer.headers["content-length"];
  if (length !== undefined && Number(length) !== answer.body.byteLength) {
    throw new Error(`content-length ${length}, body of ${answer.body.byteLength} bytes`);
  }
  return JSON.parse(answer.body.toString("utf8")) as { code?: string; message?: string };
}
