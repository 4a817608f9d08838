import type { Logger } from "@ctx/config";
import { leaseBucket, leaseGroup, provisionParking } from "@ctx/projector";
import { loadProjectorConfig, type ProjectorApp, startProjectorApp } from "@ctx/projector-service";
import type { QueryStack } from "@ctx/query-service/testing";
import { stack, uniqueName, valkeyEnv } from "@ctx/test-support";
import { Kvm } from "@nats-io/kv";

/**
 * A Valkey projector replica (in this process) on a query stack's event stream, with the parked
 * stream and the lease bucket an operator would have provisioned.
 */
export async function startValkeyProjector(
  s: QueryStack,
  replicaId: string,
  logger: Logger,
): Promise<ProjectorApp> {
  const parking = {
    stream: `${s.settings.stream}_PARKED`,
    subjectPrefix: `${s.settings.subjectPrefix}_parked`,
  };
  await provisionParking(s.jsm, parking);
  await new Kvm(s.nc).create(leaseBucket(leaseGroup(s.settings.stream, "valkey")), {
    ttl: 5_000,
    history: 1,
  });
  return startProjectorApp(
    loadProjectorConfig({
      ...stack().natsEnv,
      ...valkeyEnv(stack(), "projector"),
      PROJECTION: "valkey",
      READ_MODEL_NAMESPACE: uniqueName(replicaId),
      EVENT_STREAM: s.settings.stream,
      EVENT_SUBJECT_PREFIX: s.settings.subjectPrefix,
      EVENT_PARTITIONS: String(s.settings.partitions),
      PARKED_STREAM: parking.stream,
      PARKED_SUBJECT_PREFIX: parking.subjectPrefix,
      PROJECTOR_REPLICA_ID: replicaId,
      PROJECTOR_OPS_LISTEN: "127.0.0.1:0",
      SHUTDOWN_GRACE_MS: "2000",
      LOG_LEVEL: "silent",
    }),
    logger,
  );
}
