import type { Logger } from "@ctx/config";
import { checkEventStream, createEventStore } from "@ctx/event-store";
import { ContextCommandService } from "@ctx/proto";
import {
  createHealthRegistry,
  loadRpcSecurity,
  Role,
  rpcLimitsOf,
  ServingStatus,
  startOpsListeners,
  startRpcServer,
} from "@ctx/rpc";
import { connectNats, natsConnectionOf, waitForProvisioning } from "@ctx/service";
import { jetstreamManager } from "@nats-io/jetstream";
import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import {
  type CommandConfig,
  checkLimitsFit,
  eventStreamSettingsOf,
  storyLimitsOf,
} from "./config.ts";
import { createCommandHandler } from "./handling/command-handler.ts";
import { classifyCommandError } from "./rpc/classify-error.ts";
import { registerCommandService } from "./rpc/command-service.ts";

export interface CommandApp {
  readonly rpcPort: number;
  readonly opsPort: number;
  /** Graceful stop: not ready, finish calls in flight, drain NATS. */
  stop(): Promise<void>;
}

/**
 * Starts the command service: NATS, the ops endpoints, the event stream (waited for until it is
 * provisioned), the gRPC server.
 */
export async function startCommandApp(config: CommandConfig, logger: Logger): Promise<CommandApp> {
  // First: a bad key set or certificate stops the start before any connection is made.
  const security = await loadRpcSecurity(config, {
    rules: [{ service: ContextCommandService, roles: [Role.writer] }],
    logger,
  });

  const nc = await connectNats(natsConnectionOf(config), {
    name: "context-command-service",
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    // nats.js otherwise builds two Errors per request up front, only for their stack traces.
    noAsyncTraces: true,
  });
  try {
    checkLimitsFit(config, nc.info?.max_payload ?? Number.POSITIVE_INFINITY);
  } catch (e) {
    await nc.close();
    throw e;
  }
  const settings = eventStreamSettingsOf(config);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let draining = false;
  let natsUp = true;
  let provisioned = false;
  // Alive (and not ready) from here: the stream may not be provisioned yet.
  const ops = await startOpsListeners({
    ...security.ops,
    host: config.COMMAND_OPS_LISTEN.host,
    port: config.COMMAND_OPS_LISTEN.port,
    registry,
    ready: () => provisioned && !draining && natsUp,
  });
  // The command user may append to the stream but not create or change it: `ctx provision` does.
  const jsm = await jetstreamManager(nc);
  await waitForProvisioning(() => checkEventStream(jsm, settings), {
    what: `stream ${settings.stream}`,
    logger,
  });
  provisioned = true;
  const appendSeconds = new Histogram({
    name: "event_store_append_seconds",
    help: "Time to append a command's events to JetStream (server-acknowledged)",
    labelNames: ["events"],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const store = createEventStore(nc, { names: settings, registry, logger });
  const handler = createCommandHandler(store, {
    cacheSize: config.STORY_CACHE_SIZE,
    cacheEvents: config.STORY_CACHE_EVENTS,
    limits: storyLimitsOf(config),
    onAppend: (seconds, events) =>
      appendSeconds.observe({ events: events > 1 ? "many" : "one" }, seconds),
  });

  new Gauge({
    name: "command_story_cache_stories",
    help: "Stories whose state the command service holds in memory",
    registers: [registry],
    collect() {
      this.set(handler.cached().stories);
    },
  });
  new Gauge({
    name: "command_story_cache_events",
    help: "Events the cached stories hold in all (bounded by STORY_CACHE_EVENTS)",
    registers: [registry],
    collect() {
      this.set(handler.cached().events);
    },
  });

  const health = createHealthRegistry([ContextCommandService.typeName]);
  const updateHealth = () =>
    health.setAll(!draining && natsUp ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") natsUp = false;
      if (status.type === "reconnect") natsUp = true;
      logger.info({ nats: status.type }, "NATS connection status");
      updateHealth();
    }
  })();

  const rpc = await startRpcServer({
    host: config.COMMAND_LISTEN.host,
    port: config.COMMAND_LISTEN.port,
    routes: (router) => registerCommandService(router, handler),
    classify: classifyCommandError,
    logger,
    health,
    registry,
    callsPerTurn: config.RPC_CALLS_PER_TURN,
    limits: rpcLimitsOf(config),
    ...(security.reflection ? { reflection: [ContextCommandService] } : {}),
    ...security.server,
  });
  updateHealth();
  logger.info(
    {
      grpc: `${config.COMMAND_LISTEN.host}:${rpc.port}`,
      ops: `${config.COMMAND_OPS_LISTEN.host}:${ops.port}`,
      stream: settings.stream,
    },
    "command service ready",
  );

  return {
    rpcPort: rpc.port,
    opsPort: ops.port,
    async stop() {
      draining = true;
      updateHealth();
      await rpc.close(config.SHUTDOWN_GRACE_MS);
      await ops.close();
      await nc.drain();
      logger.info("command service stopped");
    },
  };
}
