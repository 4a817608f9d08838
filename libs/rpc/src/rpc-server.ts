import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { defaultCallsPerTurn, type Logger } from "@ctx/config";
import type { Registry } from "prom-client";
import { abortInterceptor } from "./abort-edge.ts";
import type { AccessPolicy } from "./access-policy.ts";
import { authInterceptor } from "./auth-interceptor.ts";
import type { Authenticator } from "./authenticator.ts";
import { correlationInterceptor } from "./correlation.ts";
import { errorInterceptor } from "./error-edge.ts";
import type { ErrorClassifier } from "./errors.ts";
import { type HealthRegistry, registerHealthService } from "./health.ts";
import { type RpcLimits, resolveRpcLimits } from "./limits.ts";
import { metricsInterceptor } from "./metrics.ts";
import { createNodeAdapter } from "./node-adapter.ts";
import { registerReflectionService } from "./reflection.ts";
import { createRegexMatcher } from "./regex-match.ts";
import { createServerMetrics, RefusalReason } from "./server-metrics.ts";
import { createSessionGuard } from "./session-guard.ts";
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
  /** HTTP/2 over TLS (ALPN h2) instead of cleartext. */
  readonly tls?: RpcTls;
}

export interface RpcServer {
  readonly port: number;
  /** Stops taking calls, lets calls in flight finish for up to graceMs, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * A Connect server on Node's http2 (cleartext, or TLS with `tls`) answering gRPC, gRPC-Web and
 * Connect. Every call goes through, outermost first: metrics, authentication and authorization
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
 * (see createSessionGuard). What it refuses and closes is counted in `rpc_server_refused_total`
 * and `rpc_server_sessions_closed_total`.
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
  });
  const settings = { maxConcurrentStreams: limits.maxConcurrentStreams };
  const tls = options.tls;
  const server = tls
    ? http2.createSecureServer({
        settings,
        cert: tls.cert,
        key: tls.key,
        ALPNProtocols: ["h2"],
        handshakeTimeout: limits.handshakeTimeoutMs,
        // Certificates are asked for, not demanded: health and bearer-token callers come without
        // one, and the auth interceptor refuses an untrusted one with a status, not a reset.
        ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
      })
    : http2.createServer({ settings });
  server.maxConnections = limits.maxConnections;
  server.on("drop", () => metrics.refused(RefusalReason.tooManyConnections));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    const guarded = guard.track(session);
    session.on("stream", (stream, headers) => adapter.handle(stream, headers, guarded));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      guard.stop();
      adapter.close();
    },
  };
}
