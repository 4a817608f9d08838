import { hostname } from "node:os";
import { env, eventStreamSchema, loadConfig, readModelSchema } from "@ctx/config";
import { DEFAULT_BATCH_SIZE } from "@ctx/projector";
import { z } from "zod";

export const readModelKinds = ["neo4j", "valkey"] as const;
export type ReadModelKind = (typeof readModelKinds)[number];

export const projectorConfigSchema = eventStreamSchema.extend(readModelSchema.shape).extend({
  /** The read model this replica projects into. */
  PROJECTION: z.enum(readModelKinds, { message: `must be one of ${readModelKinds.join(", ")}` }),
  /** Stable identity: the StatefulSet pod name in Kubernetes; HOSTNAME (or the host name) locally. */
  PROJECTOR_REPLICA_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .default(() => process.env.HOSTNAME || hostname()),
  /** /healthz, /readyz and /metrics. */
  PROJECTOR_OPS_LISTEN: env.listen("127.0.0.1:9561"),
  /** Most events per read-model write. */
  PROJECTOR_BATCH_SIZE: env.int(DEFAULT_BATCH_SIZE),
  /** Batches written at once over all partitions (default: what the read model asks for). */
  PROJECTOR_WRITE_CONCURRENCY: z.coerce.number().int().positive().optional(),
  /** A replica that stops renewing its leases loses its partitions after this long. */
  PROJECTOR_LEASE_TTL_MS: env.int(5_000),
});

export type ProjectorConfig = z.infer<typeof projectorConfigSchema>;

export function loadProjectorConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): ProjectorConfig {
  return loadConfig(projectorConfigSchema, source);
}
