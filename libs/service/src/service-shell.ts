import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "@ctx/config";
import {
  createHealthRegistry,
  type ErrorClassifier,
  type OpsSecurity,
  type RpcLimits,
  type RpcSecurity,
  type RpcServer,
  ServingStatus,
  startOpsListeners,
  startRpcServer,
} from "@ctx/rpc";
import type { ConnectionOptions, NatsConnection } from "@nats-io/transport-node";
import { collectDefaultMetrics, Registry } from "prom-client";
import { connectNats, type NatsConnectionSettings } from "./nats-connection.ts";

type Listen = { readonly host: string; readonly port: number };

/** NATS options a service may set beside its identity (the shell sets name and reconnects). */
export type ShellNatsOptions = Omit<
  ConnectionOptions,
  "servers" | "authenticator" | "tls" | "inboxPrefix" | "name"
>;

export interface ServiceShellOptions {
  /** The process's name: its NATS connections' names and its logs (`context-command-service`). */
  readonly name: string;
  readonly logger: Logger;
  /** Its NATS identity (natsConnectionOf) and connection options. */
  readonly nats: NatsConnectionSettings;
  readonly natsOptions?: ShellNatsOptions;
  /** The ops listener (/healthz, /readyz, /metrics) and its TLS / metrics listener (loadOpsSecurity). */
  readonly ops: Listen & OpsSecurity;
  /** How long a stop lets the gRPC calls in flight finish (default 10 s). */
  readonly shutdownGraceMs?: number;
}

export interface ServeRpcOptions {
  readonly listen: Listen;
  /** What AUTH_*, RPC_TLS_* and RPC_REFLECTION configure (loadRpcSecurity). */
  readonly security: RpcSecurity;
  /** The services served: their health entries, and reflection when the security allows it. */
  readonly services: readonly DescService[];
  readonly routes: (router: ConnectRouter) => void;
  readonly classify: ErrorClassifier;
  readonly callsPerTurn?: number;
  readonly limits?: Partial<RpcLimits>;
  /** Origins whose browser pages may call (RPC_CORS_ORIGINS); none: cross-origin calls refused. */
  readonly corsOrigins?: readonly string[];
}

/**
 * What every process of the context service does the same way, written once: its NATS connection
 * (and readiness while NATS is away), its Prometheus registry, its ops listeners with their TLS,
 * its gRPC listener with authentication, TLS and limits, gRPC health that follows readiness, and a
 * graceful stop in a fixed order. A security or ops setting therefore exists in one place.
 */
export interface ServiceShell {
  readonly nc: NatsConnection;
  readonly registry: Registry;
  readonly opsPort: number;
  /** Aborted when the stop begins: work that runs until then watches it. */
  readonly stopping: AbortSignal;
  /** Another NATS connection (same identity unless `settings` is given); drained at stop. */
  connectNats(
    suffix: string,
    settings?: NatsConnectionSettings,
    options?: ShellNatsOptions,
  ): Promise<NatsConnection>;
  /** A condition readiness needs beside NATS being connected and the process not stopping. */
  readyWhen(check: () => boolean): void;
  ready(): boolean;
  /** Called on every status change of the main NATS connection (after the shell's own handling). */
  onNatsStatus(listener: (status: { readonly type: string }) => void): void;
  /** Starts the gRPC listener; one per process. Its health answers SERVING while ready(). */
  serveRpc(options: ServeRpcOptions): Promise<RpcServer>;
  /** Runs at stop, after the gRPC listener has closed; the last registered runs first. */
  onStop(task: () => Promise<void> | void): void;
  /** Not ready, gRPC calls finish (up to the grace), stop tasks, ops listeners, NATS drained. */
  stop(): Promise<void>;
}

/**
 * Opens the shell: connects to NATS, starts the ops listeners (alive, and not ready until the
 * service's own checks pass) and watches the connection. A service then adds its readiness
 * checks, its work and, if it has one, its gRPC listener.
 */
export async function openServiceShell(options: ServiceShellOptions): Promise<ServiceShell> {
  const { logger, name } = options;
  const connectionOptions = (suffix: string, more: ShellNatsOptions | undefined) => ({
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    ...more,
    name: suffix === "" ? name : `${name}-${suffix}`,
  });
  const nc = await connectNats(options.nats, connectionOptions("", options.natsOptions));
  const extraConnections: NatsConnection[] = [];
  const stopTasks: (() => Promise<void> | void)[] = [];
  const checks: (() => boolean)[] = [];
  const statusListeners: ((status: { readonly type: string }) => void)[] = [];
  const stopping = new AbortController();
  let natsUp = true;
  let rpc: RpcServer | undefined;
  let setHealth: ((status: ServingStatus) => void) | undefined;

  const ready = () => !stopping.signal.aborted && natsUp && checks.every((check) => check());
  const updateHealth = () =>
    setHealth?.(ready() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let ops: Awaited<ReturnType<typeof startOpsListeners>>;
  try {
    ops = await startOpsListeners({ ...options.ops, registry, ready });
  } catch (e) {
    await nc.close();
    throw e;
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") natsUp = false;
      if (status.type === "reconnect") natsUp = true;
      logger.info({ nats: status.type }, "NATS connection status");
      updateHealth();
      for (const listener of statusListeners) listener(status);
    }
  })();

  return {
    nc,
    registry,
    opsPort: ops.port,
    stopping: stopping.signal,
    async connectNats(suffix, settings, more) {
      const connection = await connectNats(
        settings ?? options.nats,
        connectionOptions(suffix, more ?? options.natsOptions),
      );
      extraConnections.push(connection);
      return connection;
    },
    readyWhen(check) {
      checks.push(check);
      updateHealth();
    },
    ready,
    onNatsStatus(listener) {
      statusListeners.push(listener);
    },
    async serveRpc(serve) {
      if (rpc) throw new Error("serveRpc: this shell serves gRPC already");
      const health = createHealthRegistry(serve.services.map((s) => s.typeName));
      setHealth = (status) => health.setAll(status);
      rpc = await startRpcServer({
        host: serve.listen.host,
        port: serve.listen.port,
        routes: serve.routes,
        classify: serve.classify,
        logger,
        health,
        registry,
        ...(serve.callsPerTurn === undefined ? {} : { callsPerTurn: serve.callsPerTurn }),
        ...(serve.limits ? { limits: serve.limits } : {}),
        ...(serve.corsOrigins ? { corsOrigins: serve.corsOrigins } : {}),
        ...(serve.security.reflection ? { reflection: serve.services } : {}),
        ...serve.security.server,
      });
      updateHealth();
      return rpc;
    },
    onStop(task) {
      stopTasks.push(task);
    },
    async stop() {
      if (stopping.signal.aborted) return;
      stopping.abort();
      updateHealth();
      await rpc?.close(options.shutdownGraceMs ?? 10_000);
      for (const task of stopTasks.reverse()) await task();
      await ops.close();
      await nc.drain();
      for (const connection of extraConnections) await connection.drain();
      logger.info(`${name} stopped`);
    },
  };
}
