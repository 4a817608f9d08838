import { env, eventStreamSchema, loadConfig, readModelSchema, rpcServerSchema } from "@ctx/config";
import type { z } from "zod";

export const queryConfigSchema = eventStreamSchema
  .extend(readModelSchema.shape)
  .extend(rpcServerSchema.shape)
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
    /** How long a stopping service lets calls in flight finish (watches are cut after it). */
    SHUTDOWN_GRACE_MS: env.int(10_000),
  });

export type QueryConfig = z.infer<typeof queryConfigSchema>;

export function loadQueryConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): QueryConfig {
  return loadConfig(queryConfigSchema, source);
}
