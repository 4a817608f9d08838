import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { defaultCallsPerTurn, type Logger } from "@ctx/config";
import { tracing } from "@ctx/telemetry";
import type { Registry } from "prom-client";
import { abortInterceptor } from "./abort-edge.ts";
import type { AccessPolicy } from "./access-policy.ts";
import { authInterceptor } from "./auth-interceptor.ts";
import type { Authenticator } from "./authenticator.ts";
import { correlationInterceptor } from "./correlation.ts";
import { createCors } from "./cors.ts";
import { errorInterceptor } from "./error-edge.ts";
import type { ErrorClassifier } from "./errors.ts";
import { type HealthRegistry, registerHealthService } from "./health.ts";
import { type RpcLimits, resolveRpcLimits } from "./limits.ts";
import { metricsInterceptor } from "./metrics.ts";
import { createNodeAdapter } from "./node-adapter.ts";
import { registerReflectionService } from "./reflection.ts";
import { createRegexMatcher } from "./regex-match.ts";
import {
  createServerMetrics,
  RefusalReason,
  type ServerMetrics,
  SessionCloseReason,
} from "./server-metrics.ts";
import { createSessionGuard } from "./session-guard.ts";
import { tracingInterceptor } from "./tracing.ts";
import { turnBudgetInterceptor } from "./turn-budget.ts";

/** Who may call what: the authenticator and the roles each method needs. */
export interface RpcAuth {
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
}

/** TLS on the listener (PEM contents). With `clientCa`, client certificates are asked for and verified. */
export interface RpcTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly clientCa?: string | Buffer;
}

export interface RpcServerOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly routes: (router: ConnectRouter) => void;
  readonly classify: ErrorClassifier;
  readonly logger: Logger;
  readonly health: HealthRegistry;
  readonly registry: Registry;
  /** Extra interceptors, run inside the standard ones. */
  readonly interceptors?: readonly Interceptor[];
  /** Services to describe through gRPC server reflection (none: reflection is not served). */
  readonly reflection?: readonly DescService[];
  /**
   * Calls whose handlers start per event-loop turn; the others wait for the next turns (see
   * turnBudgetInterceptor). 0: no limit. Default: `defaultCallsPerTurn` (@ctx/config).
   */
  readonly callsPerTurn?: number;
  /** Sizes, times and counts the server holds calls and connections to; unset ones: defaults. */
  readonly limits?: Partial<RpcLimits>;
  /** Authentication and authorization of every call (unset: every caller is served, AUTH=off). */
  readonly auth?: RpcAuth;
  /** TLS (ALPN h2 and http/1.1) instead of cleartext. */
  readonly tls?: RpcTls;
  /**
   * Origins whose browser pages may call the services (exact origins, or `*`); none: cross-origin
   * calls are refused (see createCors).
   */
  readonly corsOrigins?: readonly string[];
}

export interface RpcServer {
  readonly port: number;
  /** Stops taking calls, lets calls in flight finish for up to graceMs, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * A Connect server on one port (cleartext, or TLS with `tls`) answering gRPC, gRPC-Web and Connect
 * over HTTP/2, and gRPC-Web and Connect over HTTP/1.1, for browsers and plain HTTP clients (see
 * listenBoth). Every call goes through, outermost first: metrics, a trace span (with tracing on; see
 * tracingInterceptor), authentication and authorization
 * (with `auth`; see authInterceptor), the turn budget (so the time a call
 * waits for its turn counts in its handling time), correlation ids, the error edge, and protovalidate
 * request validation (INVALID_ARGUMENT with the violations; see createRegexMatcher).
 * grpc.health.v1 is built in, and gRPC server reflection when `reflection` names the services to
 * describe.
 *
 * Bounded everywhere (`limits`, see RpcLimits): message sizes, deadlines and the time a request
 * may take to arrive (see createNodeAdapter), the calls waiting for a turn (see
 * turnBudgetInterceptor), the streams per connection (HTTP/2 SETTINGS), the connections, and the
 * life of a connection that does not complete its handshake, stops answering pings, or stays idle
 * (see createSessionGuard). What it refuses and closes is counted in `ctx_rpc_refused_total`
 * and `ctx_rpc_connections_closed_total`.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const limits = resolveRpcLimits(options.limits);
  // Read when scraped: the guard exists by then.
  const metrics = createServerMetrics(options.registry, () => guard.size);
  const guard = createSessionGuard({
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    idleTimeoutMs: limits.idleTimeoutMs,
    keepaliveIntervalMs: limits.keepaliveIntervalMs,
    keepaliveTimeoutMs: limits.keepaliveTimeoutMs,
    metrics,
  });
  const outer = [
    metricsInterceptor(options.registry),
    // Only with tracing on (see startTracing): off, a call costs nothing for it.
    ...(tracing.enabled ? [tracingInterceptor()] : []),
    // Before the turn budget: a refused call costs a header lookup (and, once, a verification).
    ...(options.auth
      ? [
          authInterceptor({
            authenticator: options.auth.authenticator,
            policy: options.auth.policy,
            registry: options.registry,
          }),
        ]
      : []),
    turnBudgetInterceptor({
      callsPerTurn: options.callsPerTurn ?? defaultCallsPerTurn,
      maxQueued: limits.maxQueuedCalls,
      onShed: () => metrics.refused(RefusalReason.queueFull),
    }),
  ];
  const inner = [
    correlationInterceptor(),
    errorInterceptor(options.classify, options.logger, metrics),
    createValidateInterceptor({
      validator: createValidator({ regexMatch: createRegexMatcher() }),
    }),
    ...(options.interceptors ?? []),
  ];
  const adapter = createNodeAdapter({
    logger: options.logger,
    routes: (router) => {
      registerHealthService(router, options.health);
      if (options.reflection) registerReflectionService(router, options.reflection);
      options.routes(router);
    },
    // Connect's handler ends expired calls through abortInterceptor, after the turn budget (which
    // drops a queued call whose signal is aborted by itself); the fast path answers them itself.
    interceptors: [...outer, abortInterceptor(), ...inner],
    fastInterceptors: [...outer, ...inner],
    limits,
    metrics,
    cors: createCors(options.corsOrigins ?? []),
  });
  const settings = { maxConcurrentStreams: limits.maxConcurrentStreams };
  const h2 = http2.createServer({ settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    const guarded = guard.track(session);
    session.on("stream", (stream, headers) => adapter.handle(stream, headers, guarded));
  });
  const h1 = http.createServer({
    // The request head must arrive as fast as an HTTP/2 preface; an idle keep-alive connection
    // closes as an idle HTTP/2 one does. A body's arrival is the adapter's (requestReadTimeoutMs).
    headersTimeout: limits.handshakeTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: limits.idleTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, limits.handshakeTimeoutMs),
  });
  // HTTP/1.1 has no GOAWAY: once the server is closing, an answer says `Connection: close`, and an
  // idle keep-alive connection is closed, so that closing does not wait the grace period for them.
  let closing = false;
  const answering = new Set<http.ServerResponse>();
  h1.on("request", (req, res) => {
    if (closing) res.shouldKeepAlive = false;
    answering.add(res);
    res.once("close", () => answering.delete(res));
    adapter.handleHttp1(req, res);
  });
  // Node starts checking its connections' timeouts when the server listens; this one never
  // does (the front listens for it), so it is told it does.
  h1.emit("listening");
  const front = listenBoth({ h1, h2, limits, metrics, tls: options.tls });
  front.maxConnections = limits.maxConnections;
  front.on("drop", () => metrics.refused(RefusalReason.tooManyConnections));
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port, options.host, () => resolve());
  });
  const port = (front.address() as net.AddressInfo).port;
  return {
    port,
    async close(graceMs = 10_000) {
      closing = true;
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      for (const session of sessions) session.close();
      for (const res of answering) {
        if (!res.headersSent) res.shouldKeepAlive = false;
        else {
          const socket = res.socket;
          res.once("finish", () => socket?.end());
        }
      }
      h1.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
        h1.closeAllConnections();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      guard.stop();
      adapter.close();
    },
  };
}

/**
 * The listening server of one port, handing each connection to the HTTP/2 or the HTTP/1.1 server.
 * Over TLS the client says which in the handshake (ALPN: h2, else HTTP/1.1). In cleartext an
 * HTTP/2 client starts with the connection preface ("PRI * HTTP/2.0…", prior knowledge, as gRPC
 * clients do); no HTTP/1.1 request starts with "PRI", so the first bytes decide, and are handed
 * on with the connection. A connection that sends nothing is closed after the handshake timeout.
 */
function listenBoth(options: {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  readonly limits: RpcLimits;
  readonly metrics: ServerMetrics;
  readonly tls: RpcTls | undefined;
}): net.Server {
  const { h1, h2, limits, metrics } = options;
  const toHttp1 = (socket: net.Socket) => {
    // Dead clients of long answers (server streams) are found by TCP keepalive: HTTP/1.1 has no ping.
    if (limits.keepaliveIntervalMs > 0) socket.setKeepAlive(true, limits.keepaliveIntervalMs);
    h1.emit("connection", socket);
  };
  const tlsOptions = options.tls;
  if (tlsOptions !== undefined) {
    const server = tls.createServer({
      cert: tlsOptions.cert,
      key: tlsOptions.key,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: limits.handshakeTimeoutMs,
      // Certificates are asked for, not demanded: health and bearer-token callers come without
      // one, and the auth interceptor refuses an untrusted one with a status, not a reset.
      ...(tlsOptions.clientCa
        ? { ca: tlsOptions.clientCa, requestCert: true, rejectUnauthorized: false }
        : {}),
    });
    server.on("secureConnection", (socket) => {
      if (socket.alpnProtocol === "h2") h2.emit("connection", socket);
      else toHttp1(socket);
    });
    // A failed handshake is the client's problem; Node closes the socket.
    server.on("tlsClientError", (e: NodeJS.ErrnoException) => {
      if (e.code === "ERR_TLS_HANDSHAKE_TIMEOUT") {
        metrics.sessionClosed(SessionCloseReason.handshakeTimeout);
      }
    });
    return server;
  }
  return net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.setTimeout(limits.handshakeTimeoutMs, () => {
      metrics.sessionClosed(SessionCloseReason.handshakeTimeout);
      socket.destroy();
    });
    let first: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      first = first.length === 0 ? chunk : Buffer.concat([first, chunk]);
      // Too short to tell ("P", "PR"): wait for more.
      if (first.length < preface.length && preface.startsWith(first.toString("latin1"))) return;
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(first);
      if (first.subarray(0, preface.length).toString("latin1") === preface) {
        h2.emit("connection", socket);
      } else {
        toHttp1(socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });
}

/** The first bytes of HTTP/2's connection preface: what no HTTP/1.1 request starts with. */
const preface = "PRI ";
