import type { Logger } from "@ctx/config";
import type { EventStreamNames } from "@ctx/event-store";
import { createProjector, leaseBucket, leaseGroup, type ParkingNames } from "@ctx/projector";
import { loadOpsSecurity } from "@ctx/rpc";
import { natsConnectionOf, openServiceShell, waitForProvisioning } from "@ctx/service";
import { jetstreamManager } from "@nats-io/jetstream";
import { millis, nanos } from "@nats-io/transport-node";
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
  const model = openReadModel(config.PROJECTION, config);
  // Health and metrics answer from the start: a replica waiting for its streams or its read model
  // is alive, and not ready, until its projector has started.
  const shell = await openServiceShell({
    name: `context-projector-${config.PROJECTION}-${config.PROJECTOR_REPLICA_ID}`,
    logger,
    nats: natsConnectionOf(config),
    ops: { ...config.PROJECTOR_OPS_LISTEN, ...loadOpsSecurity(config) },
  }).catch(async (e: unknown) => {
    await model.close();
    throw e;
  });
  shell.onStop(() => model.close());
  const { nc, registry } = shell;
  // The lease heartbeat gets a connection of its own, so its replies never wait behind deliveries.
  const leaseConnection = await shell.connectNats("leases");
  const names: EventStreamNames = {
    stream: config.EVENT_STREAM,
    subjectPrefix: config.EVENT_SUBJECT_PREFIX,
  };
  const parking: ParkingNames = {
    stream: config.PARKED_STREAM,
    subjectPrefix: config.PARKED_SUBJECT_PREFIX,
  };
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
  shell.readyWhen(() => projector.ready());
  shell.onStop(() => projector.stop());
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
    await shell.stop();
    throw e;
  });
  logger.info(
    { projection: config.PROJECTION, replica: config.PROJECTOR_REPLICA_ID, ops: shell.opsPort },
    "projector ready",
  );
  return {
    opsPort: shell.opsPort,
    owned: () => projector.owned(),
    stop: () => shell.stop(),
  };
}
