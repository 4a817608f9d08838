import type { Logger } from "@ctx/config";
import type { EventStreamNames } from "@ctx/event-store";
import { createProjector, leaseBucket, leaseGroup, type ParkingNames } from "@ctx/projector";
import { startOpsServer } from "@ctx/rpc";
import { connectNats, natsConnectionOf, waitForProvisioning } from "@ctx/service";
import { jetstreamManager } from "@nats-io/jetstream";
import { millis, nanos } from "@nats-io/transport-node";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { ProjectorConfig } from "./config.ts";
import { openReadModel } from "./read-models.ts";

export interface ProjectorApp {
  readonly opsPort: number;
  owned(): readonly number[];
  stop(): Promise<void>;
}

/** One projector replica: NATS, its read model, the projector runtime and the ops endpoints. */
export async function startProjectorApp(
  config: ProjectorConfig,
  logger: Logger,
): Promise<ProjectorApp> {
  const nats = natsConnectionOf(config);
  const nc = await connectNats(nats, {
    name: `context-projector-${config.PROJECTION}-${config.PROJECTOR_REPLICA_ID}`,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
  });
  // The lease heartbeat gets a connection of its own, so its replies never wait behind deliveries.
  const leaseConnection = await connectNats(nats, {
    name: `context-projector-${config.PROJECTION}-${config.PROJECTOR_REPLICA_ID}-leases`,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
  });
  const names: EventStreamNames = {
    stream: config.EVENT_STREAM,
    subjectPrefix: config.EVENT_SUBJECT_PREFIX,
  };
  const parking: ParkingNames = {
    stream: config.PARKED_STREAM,
    subjectPrefix: config.PARKED_SUBJECT_PREFIX,
  };
  const model = openReadModel(config.PROJECTION, config);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const projector = createProjector({
    nc,
    leaseConnection,
    names,
    partitions: config.EVENT_PARTITIONS,
    projection: model.projection,
    replicaId: config.PROJECTOR_REPLICA_ID,
    logger,
    registry,
    parking,
    provision: false,
    batchSize: config.PROJECTOR_BATCH_SIZE,
    pullMaxBytes: config.PROJECTOR_PULL_MAX_BYTES,
    ...(config.PROJECTOR_WRITE_CONCURRENCY === undefined
      ? {}
      : { writeConcurrency: config.PROJECTOR_WRITE_CONCURRENCY }),
    leaseTtlMs: config.PROJECTOR_LEASE_TTL_MS,
    heartbeatMs: config.PROJECTOR_LEASE_HEARTBEAT_MS,
  });
  let natsUp = true;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") natsUp = false;
      if (status.type === "reconnect") natsUp = true;
    }
  })();
  // Health and metrics answer from the start: a replica waiting for its read model to come up is
  // alive, and not ready, until its projector has started.
  const ops = await startOpsServer({
    host: config.PROJECTOR_OPS_LISTEN.host,
    port: config.PROJECTOR_OPS_LISTEN.port,
    registry,
    ready: () => natsUp && projector.ready(),
  });
  // The projector's user may not create streams or buckets: `ctx provision` does. Until then the
  // replica is alive and not ready.
  const jsm = await jetstreamManager(nc);
  const leases = `KV_${leaseBucket(leaseGroup(names.stream, model.projection.name))}`;
  await waitForProvisioning(
    async () => {
      await jsm.streams.info(names.stream);
      await jsm.streams.info(parking.stream);
      const bucket = (await jsm.streams.info(leases)).config;
      if (!bucket.allow_direct) throw new Error(`${leases} does not allow direct gets`);
      // Leases expire with the bucket's entries: its TTL is the replicas' lease TTL.
      if (bucket.max_age !== nanos(config.PROJECTOR_LEASE_TTL_MS)) {
        throw new Error(
          `${leases} keeps entries ${millis(bucket.max_age)} ms, PROJECTOR_LEASE_TTL_MS is ${config.PROJECTOR_LEASE_TTL_MS}: provision with the same PROJECTOR_LEASE_TTL_MS`,
        );
      }
    },
    { what: `streams ${names.stream}, ${parking.stream} and ${leases}`, logger },
  );
  await projector.start().catch(async (e: unknown) => {
    await ops.close();
    throw e;
  });
  logger.info(
    { projection: config.PROJECTION, replica: config.PROJECTOR_REPLICA_ID, ops: ops.port },
    "projector ready",
  );
  return {
    opsPort: ops.port,
    owned: () => projector.owned(),
    async stop() {
      await projector.stop();
      await ops.close();
      await model.close();
      await nc.drain();
      await leaseConnection.drain();
    },
  };
}
