import {
  checkRpcSecurity,
  env,
  eventStreamSchema,
  loadConfig,
  readModelSchema,
  rpcSecuritySchema,
  rpcServerSchema,
} from "@ctx/config";
import { natsConnectionSchema, prefixedNatsConnectionSchema } from "@ctx/service";
import { z } from "zod";

export const queryConfigSchema = eventStreamSchema
  .extend(readModelSchema.shape)
  .extend(rpcServerSchema.shape)
  .extend({ ...natsConnectionSchema.shape, NATS_URL: readModelSchema.shape.NATS_URL })
  // The snapshotter's own identity (it writes snapshots; the query identity only reads). Unset:
  // the snapshotter shares the query service's connection.
  .extend(prefixedNatsConnectionSchema("SNAPSHOTTER_").shape)
  .extend(rpcSecuritySchema.shape)
  .extend({
    /** gRPC / gRPC-Web / Connect listen address. */
    QUERY_LISTEN: env.listen("127.0.0.1:50052"),
    /** /healthz, /readyz and /metrics. */
    QUERY_OPS_LISTEN: env.listen("127.0.0.1:9552"),
    /** Read snapshots for temporal queries (off: every answer folds from the story's first event). */
    SNAPSHOTS: env.bool(true),
    /** Run the snapshotter in this process (replicas share its durable consumer). */
    SNAPSHOTTER: env.bool(true),
    /** A snapshot every this many versions of a story. */
    SNAPSHOT_INTERVAL: env.int(100),
    SNAPSHOT_STREAM: env.name("CONTEXT_SNAPSHOTS"),
    SNAPSHOT_SUBJECT_PREFIX: env.subjectPrefix("context.snapshots"),
    /** Durable consumer of the snapshotter on the event stream. */
    SNAPSHOTTER_CONSUMER: env.name("snapshotter"),
    /** WatchContext calls open at once in this process; more are refused (RESOURCE_EXHAUSTED). */
    WATCH_MAX: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
    /**
     * WatchContext calls open at once by one client (its address, until calls carry an
     * authenticated principal); more are refused (RESOURCE_EXHAUSTED).
     */
    WATCH_MAX_PER_CLIENT: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
    /**
     * Versions a watch may fall behind its story (answers its client has not taken) before it is
     * ended with RESOURCE_EXHAUSTED: a client that stopped reading holds no stream open for good.
     */
    WATCH_MAX_LAG: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
    /**
     * A watched story is read every this many ms even without a message, for messages core NATS
     * lost (a subscription still propagating through a cluster); reconnections trigger a read too.
     */
    WATCH_RESYNC_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
    /** How long a stopping service lets calls in flight finish (watches are cut after it). */
    SHUTDOWN_GRACE_MS: env.int(10_000),
  });

export type QueryConfig = z.infer<typeof queryConfigSchema>;

export function loadQueryConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): QueryConfig {
  const config = loadConfig(queryConfigSchema, source);
  checkRpcSecurity(config);
  return config;
}
