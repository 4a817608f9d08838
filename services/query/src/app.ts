import type { Logger } from "@ctx/config";
import {
  checkpointMessages,
  checkpointNames,
  createEventStore,
  type EventStreamNames,
} from "@ctx/event-store";
import { ContextAuditService, ContextQueryService } from "@ctx/proto";
import { createNeo4jDriver, createNeo4jGraphReader, neo4jConnection } from "@ctx/read-model-neo4j";
import {
  createValkeyClient,
  createValkeyContextReader,
  valkeyConnection,
} from "@ctx/read-model-valkey";
import { loadRpcSecurity, Role, rpcLimitsOf } from "@ctx/rpc";
import {
  definesNatsConnection,
  natsConnectionOf,
  openServiceShell,
  waitForProvisioning,
} from "@ctx/service";
import {
  checkSnapshotStream,
  createSnapshotStore,
  createSnapshotter,
  createTemporalReader,
  type SnapshotStore,
  type Snapshotter,
} from "@ctx/snapshots";
import { jetstreamManager } from "@nats-io/jetstream";
import { registerAuditService } from "./audit/audit-service.ts";
import type { QueryConfig } from "./config.ts";
import { createContextQueries } from "./context/context-queries.ts";
import { createGraphQueries } from "./graph/graph-queries.ts";
import { createQueryMetrics, createWatchMetrics } from "./query-metrics.ts";
import { classifyQueryError } from "./rpc/classify-error.ts";
import { registerQueryService } from "./rpc/query-service.ts";
import { createWatchHub } from "./watch/watch-hub.ts";

export interface QueryApp {
  readonly rpcPort: number;
  readonly opsPort: number;
  /** The snapshotter of this process (SNAPSHOTTER=on), e.g. for tests to wait until it caught up. */
  readonly snapshotter: Snapshotter | undefined;
  /** Graceful stop: not ready, watches end, calls in flight finish, stores closed. */
  stop(): Promise<void>;
}

/**
 * Starts the query service: NATS (events, snapshots), Valkey (current contexts), Neo4j (graph
 * questions), the snapshotter when enabled, the gRPC server and the ops endpoints.
 */
export async function startQueryApp(config: QueryConfig, logger: Logger): Promise<QueryApp> {
  // First: a bad key set or certificate stops the start before any connection is made.
  const security = await loadRpcSecurity(config, {
    rules: [
      { service: ContextQueryService, roles: [Role.reader] },
      // Every story's events at once, as stored: for auditors, not for every reader.
      { service: ContextAuditService, roles: [Role.auditor] },
    ],
    logger,
  });

  // A store setting that does not fit (ConfigError) stops the start before anything opens.
  const valkeyAt = valkeyConnection(config);
  const neo4jAt = neo4jConnection(config);
  const shell = await openServiceShell({
    name: "context-query-service",
    logger,
    nats: natsConnectionOf(config),
    // Without it nats.js builds Errors per request up front for their stack traces; with async
    // stack traces those keep the awaiting calls' frames (decoded snapshots, segments) alive
    // while a batched direct get's subscription waits out its 5 s timer.
    natsOptions: { noAsyncTraces: true },
    ops: { ...config.QUERY_OPS_LISTEN, ...security.ops },
    shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
  });
  const { nc, registry, stopping } = shell;
  const names: EventStreamNames = {
    stream: config.EVENT_STREAM,
    subjectPrefix: config.EVENT_SUBJECT_PREFIX,
  };
  // Alive (and not ready) from here: the streams may not be provisioned yet.
  let provisioned = false;
  shell.readyWhen(() => provisioned);
  // The query user reads; `ctx provision` creates the streams.
  const jsm = await jetstreamManager(nc);
  await waitForProvisioning(() => jsm.streams.info(names.stream), {
    what: `stream ${names.stream}`,
    logger,
  });
  const store = createEventStore(nc, { names, registry, logger });
  let snapshots: SnapshotStore | undefined;
  if (config.SNAPSHOTS || config.SNAPSHOTTER) {
    const snapshotNames = {
      stream: config.SNAPSHOT_STREAM,
      subjectPrefix: config.SNAPSHOT_SUBJECT_PREFIX,
    };
    await waitForProvisioning(() => checkSnapshotStream(jsm, snapshotNames), {
      what: `stream ${snapshotNames.stream}`,
      logger,
    });
    snapshots = createSnapshotStore(nc, snapshotNames, { interval: config.SNAPSHOT_INTERVAL });
  }
  const reader = createTemporalReader({
    store,
    logger,
    ...(config.SNAPSHOTS && snapshots ? { snapshots } : {}),
  });

  // The snapshotter writes snapshots with an identity of its own (SNAPSHOTTER_NATS_*), so the
  // query service's stays read-only; without one it shares the query service's connection.
  const snapshotterNc =
    config.SNAPSHOTTER && definesNatsConnection(config, "SNAPSHOTTER_")
      ? await shell.connectNats("snapshotter", natsConnectionOf(config, "SNAPSHOTTER_"))
      : undefined;
  const snapshotter =
    config.SNAPSHOTTER && snapshots
      ? createSnapshotter({
          nc: snapshotterNc ?? nc,
          store: snapshotterNc ? createEventStore(snapshotterNc, { names, logger }) : store,
          snapshots: snapshotterNc
            ? createSnapshotStore(snapshotterNc, snapshots.names, {
                interval: config.SNAPSHOT_INTERVAL,
              })
            : snapshots,
          logger: logger.child({ component: "snapshotter" }),
          consumerName: config.SNAPSHOTTER_CONSUMER,
          registry,
        })
      : undefined;
  await snapshotter?.start();
  shell.onStop(async () => {
    await snapshotter?.stop();
  });

  const valkey = createValkeyClient(valkeyAt);
  valkey.on("error", (e: unknown) => logger.debug({ err: e }, "Valkey connection error"));
  const driver = createNeo4jDriver(neo4jAt, {
    connectionAcquisitionTimeout: 5_000,
    connectionTimeout: 3_000,
    maxTransactionRetryTime: 1_000,
  });
  shell.onStop(async () => {
    await valkey.quit().catch(() => valkey.disconnect());
    await driver.close();
  });
  const namespace = config.READ_MODEL_NAMESPACE;
  const graph = createNeo4jGraphReader(driver, {
    namespace,
    ...(config.NEO4J_DATABASE ? { database: config.NEO4J_DATABASE } : {}),
  });
  const metrics = createQueryMetrics(registry);
  const contexts = createContextQueries({
    reader,
    store,
    cache: createValkeyContextReader(valkey, { keyPrefix: namespace }),
    metrics,
    logger,
  });

  provisioned = true;
  const watches = createWatchHub({
    nc,
    names,
    reader,
    limits: {
      maxWatches: config.WATCH_MAX,
      maxPerClient: config.WATCH_MAX_PER_CLIENT,
      maxLag: config.WATCH_MAX_LAG,
      resyncMs: config.WATCH_RESYNC_MS,
    },
    metrics: createWatchMetrics(registry),
    logger: logger.child({ component: "watch" }),
    stopping,
  });
  shell.onStop(() => watches.close());
  shell.onNatsStatus((status) => {
    // Core NATS does not keep what was published while the connection was down.
    if (status.type === "reconnect") watches.resync();
  });

  const rpc = await shell.serveRpc({
    listen: config.QUERY_LISTEN,
    security,
    services: [ContextQueryService, ContextAuditService],
    routes: (router) => {
      registerQueryService(router, {
        contexts,
        reader,
        store,
        graph: createGraphQueries({ graph, reader, metrics }),
        watches,
      });
      const checkpointStream = checkpointNames(names);
      registerAuditService(router, {
        store,
        checkpoints: (page) => checkpointMessages(jsm, checkpointStream, page),
      });
    },
    classify: classifyQueryError,
    callsPerTurn: config.RPC_CALLS_PER_TURN,
    limits: rpcLimitsOf(config),
    corsOrigins: config.RPC_CORS_ORIGINS,
  });
  logger.info(
    {
      grpc: `${config.QUERY_LISTEN.host}:${rpc.port}`,
      ops: `${config.QUERY_OPS_LISTEN.host}:${shell.opsPort}`,
      stream: names.stream,
      snapshots: config.SNAPSHOTS ? config.SNAPSHOT_INTERVAL : "off",
      snapshotter: snapshotter !== undefined,
    },
    "query service ready",
  );

  return {
    rpcPort: rpc.port,
    opsPort: shell.opsPort,
    snapshotter,
    stop: () => shell.stop(),
  };
}
