import type { Logger } from "@ctx/config";
import {
  checkCommandSnapshotStream,
  checkEventStream,
  commandSnapshotNames,
  createEventStore,
  signingKeyFromConfig,
} from "@ctx/event-store";
import { ContextCommandService } from "@ctx/proto";
import { loadRpcSecurity, Role, rpcLimitsOf } from "@ctx/rpc";
import { natsConnectionOf, openServiceShell, waitForProvisioning } from "@ctx/service";
import { jetstreamManager } from "@nats-io/jetstream";
import { Counter, Gauge, Histogram } from "prom-client";
import {
  type CommandConfig,
  checkLimitsFit,
  eventStreamSettingsOf,
  storyLimitsOf,
} from "./config.ts";
import { createCommandHandler } from "./handling/command-handler.ts";
import { classifyCommandError } from "./rpc/classify-error.ts";
import { registerCommandService } from "./rpc/command-service.ts";
import { createCommandSnapshotStore } from "./snapshots/command-snapshot-store.ts";
import {
  type CommandSnapshotter,
  createCommandSnapshotter,
} from "./snapshots/command-snapshotter.ts";

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
  // First: a bad key set, certificate or signing key stops the start before any connection is made.
  const security = await loadRpcSecurity(config, {
    rules: [{ service: ContextCommandService, roles: [Role.writer] }],
    logger,
  });
  const signingKey = signingKeyFromConfig(config.EVENT_SIGNING_KEY_FILE, "EVENT_SIGNING_KEY_FILE");
  const shell = await openServiceShell({
    name: "context-command-service",
    logger,
    nats: natsConnectionOf(config),
    // nats.js otherwise builds two Errors per request up front, only for their stack traces.
    natsOptions: { noAsyncTraces: true },
    ops: { ...config.COMMAND_OPS_LISTEN, ...security.ops },
    shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
  });
  const { nc, registry } = shell;
  try {
    checkLimitsFit(config, nc.info?.max_payload ?? Number.POSITIVE_INFINITY);
  } catch (e) {
    await shell.stop();
    throw e;
  }
  const settings = eventStreamSettingsOf(config);
  // Alive (and not ready) from here: the stream may not be provisioned yet. The command user may
  // append to the stream but not create or change it: `ctx provision` does.
  let provisioned = false;
  shell.readyWhen(() => provisioned);
  const jsm = await jetstreamManager(nc);
  await waitForProvisioning(() => checkEventStream(jsm, settings), {
    what: `stream ${settings.stream}`,
    logger,
  });
  const snapshotNames = commandSnapshotNames(settings);
  const useSnapshots = config.COMMAND_SNAPSHOT_READ || config.COMMAND_SNAPSHOT_EVERY > 0;
  if (useSnapshots) {
    await waitForProvisioning(() => checkCommandSnapshotStream(jsm, snapshotNames), {
      what: `stream ${snapshotNames.stream}`,
      logger,
    });
  }
  provisioned = true;
  const appendSeconds = new Histogram({
    name: "ctx_event_store_append_seconds",
    help: "Time to append a command's events to JetStream (server-acknowledged)",
    labelNames: ["events"],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const store = createEventStore(nc, {
    names: settings,
    registry,
    logger,
    envelopeVersion: config.EVENT_ENVELOPE_VERSION,
    ...(signingKey ? { signingKey } : {}),
  });
  if (config.EVENT_ENVELOPE_VERSION !== 2) {
    logger.info({ envelopeVersion: config.EVENT_ENVELOPE_VERSION }, "writing envelope version 1");
  }
  if (signingKey) logger.info({ keyId: signingKey.id }, "signing every appended event");
  const snapshots = useSnapshots ? createCommandSnapshotStore(nc, snapshotNames) : undefined;
  const coldLoads = new Counter({
    name: "ctx_command_cold_loads_total",
    help: "Loads of stories the command service did not hold, by where from (snapshot: newest snapshot and the events after it; events: from the first event) and, for a snapshot not used, why",
    labelNames: ["from", "fallback"],
    registers: [registry],
  });
  const coldLoadEvents = new Counter({
    name: "ctx_command_cold_load_events_total",
    help: "Events read from the event stream by loads of stories the command service did not hold",
    labelNames: ["from"],
    registers: [registry],
  });
  const coldLoadSeconds = new Histogram({
    name: "ctx_command_cold_load_seconds",
    help: "Time to load a story the command service did not hold",
    labelNames: ["from"],
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const snapshotWrites = new Counter({
    name: "ctx_command_snapshot_writes_total",
    help: "Snapshots the command service wrote (written), could not write (failed, too-large) or dropped because its queue was full",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const snapshotSeconds = new Histogram({
    name: "ctx_command_snapshot_write_seconds",
    help: "Time to write a command snapshot (its new pages of command ids and its state)",
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  let snapshotter: CommandSnapshotter | undefined;
  if (snapshots && config.COMMAND_SNAPSHOT_EVERY > 0) {
    snapshotter = createCommandSnapshotter(snapshots, {
      every: config.COMMAND_SNAPSHOT_EVERY,
      queue: config.COMMAND_SNAPSHOT_QUEUE,
      onWritten: (outcome, seconds) => {
        snapshotWrites.inc({ outcome });
        if (outcome === "written") snapshotSeconds.observe(seconds);
      },
      onFailed: (storyId, err) => {
        snapshotWrites.inc({ outcome: "failed" });
        logger.warn(
          { storyId, err },
          "could not write a command snapshot; the story loads from its events until the next one",
        );
      },
      onDropped: () => snapshotWrites.inc({ outcome: "dropped" }),
    });
    const queued = snapshotter;
    new Gauge({
      name: "ctx_command_snapshot_queue",
      help: "Stories waiting for a command snapshot (bounded by COMMAND_SNAPSHOT_QUEUE)",
      registers: [registry],
      collect() {
        this.set(queued.queued);
      },
    });
  }
  const handler = createCommandHandler(store, {
    cacheSize: config.STORY_CACHE_SIZE,
    cacheEvents: config.STORY_CACHE_EVENTS,
    limits: storyLimitsOf(config),
    onAppend: (seconds, events) =>
      appendSeconds.observe({ events: events > 1 ? "many" : "one" }, seconds),
    ...(snapshots && config.COMMAND_SNAPSHOT_READ ? { snapshots } : {}),
    ...(snapshotter ? { snapshotter } : {}),
    onColdLoad: (load) => {
      coldLoads.inc({ from: load.from, fallback: load.fallback ?? "" });
      coldLoadEvents.inc({ from: load.from }, load.events);
      coldLoadSeconds.observe({ from: load.from }, load.seconds);
      if (load.fallback === "unusable" || load.fallback === "unavailable") {
        logger.warn(
          { storyId: load.storyId, err: load.problem },
          "command snapshot not used; the story was read from its first event",
        );
      } else if (load.fallback === "unlinked" || load.fallback === "index") {
        logger.warn(
          { storyId: load.storyId, fallback: load.fallback },
          "command snapshot does not match the event stream; the story was read from its first event",
        );
      }
    },
  });

  new Gauge({
    name: "ctx_command_story_cache_stories",
    help: "Stories whose state the command service holds in memory",
    registers: [registry],
    collect() {
      this.set(handler.cached().stories);
    },
  });
  new Gauge({
    name: "ctx_command_story_cache_events",
    help: "Events the cached stories hold in all (bounded by STORY_CACHE_EVENTS)",
    registers: [registry],
    collect() {
      this.set(handler.cached().events);
    },
  });

  const rpc = await shell.serveRpc({
    listen: config.COMMAND_LISTEN,
    security,
    services: [ContextCommandService],
    routes: (router) => registerCommandService(router, handler),
    classify: classifyCommandError,
    callsPerTurn: config.RPC_CALLS_PER_TURN,
    limits: rpcLimitsOf(config),
    corsOrigins: config.RPC_CORS_ORIGINS,
  });
  logger.info(
    {
      grpc: `${config.COMMAND_LISTEN.host}:${rpc.port}`,
      ops: `${config.COMMAND_OPS_LISTEN.host}:${shell.opsPort}`,
      stream: settings.stream,
    },
    "command service ready",
  );

  return {
    rpcPort: rpc.port,
    opsPort: shell.opsPort,
    async stop() {
      // Snapshots are a cache: the queue is dropped, the write under way finishes over NATS.
      await snapshotter?.stop();
      await shell.stop();
    },
  };
}
