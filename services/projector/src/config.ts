import { hostname } from "node:os";
import {
  checkOpsListener,
  env,
  eventStreamSchema,
  loadConfig,
  opsListenerSchema,
  readModelSchema,
} from "@ctx/config";
import { DEFAULT_BATCH_SIZE, DEFAULT_PULL_MAX_BYTES } from "@ctx/projector";
import { natsConnectionSchema } from "@ctx/service";
import { z } from "zod";

export const readModelKinds = ["neo4j", "valkey"] as const;
export type ReadModelKind = (typeof readModelKinds)[number];

export const projectorConfigSchema = eventStreamSchema
  .extend(readModelSchema.shape)
  .extend({ ...natsConnectionSchema.shape, NATS_URL: readModelSchema.shape.NATS_URL })
  .extend(opsListenerSchema.shape)
  .extend({
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
    /**
     * Per partition, most bytes of events pulled and not taken into a batch (requested from the
     * server, or delivered and queued); also the most bytes per write. Raised at start to the
     * server's max_payload and 4 KiB when below it.
     */
    PROJECTOR_PULL_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(64 * 1024, { message: "must be at least 65536 (64 KiB)" })
      .max(1024 * 1024 * 1024, { message: "must be at most 1073741824 (1 GiB)" })
      .default(DEFAULT_PULL_MAX_BYTES),
    /** Batches written at once over all partitions (default: what the read model asks for). */
    PROJECTOR_WRITE_CONCURRENCY: z.coerce.number().int().positive().optional(),
    /** A replica that stops renewing its leases loses its partitions after this long. */
    PROJECTOR_LEASE_TTL_MS: env.int(5_000),
    /** How often a replica renews its leases and looks at its group's (at most half the TTL). */
    PROJECTOR_LEASE_HEARTBEAT_MS: env.int(1_000),
  })
  // A heartbeat that is not well inside the TTL lets leases lapse between two renewals.
  .refine((c) => 2 * c.PROJECTOR_LEASE_HEARTBEAT_MS <= c.PROJECTOR_LEASE_TTL_MS, {
    path: ["PROJECTOR_LEASE_HEARTBEAT_MS"],
    message: "must be at most half of PROJECTOR_LEASE_TTL_MS",
  });

export type ProjectorConfig = z.infer<typeof projectorConfigSchema>;

export function loadProjectorConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): ProjectorConfig {
  const config = loadConfig(projectorConfigSchema, source);
  checkOpsListener(config);
  return config;
}
