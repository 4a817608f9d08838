import { env, eventStreamSchema, loadConfig, storesSchema } from "@ctx/config";
import { z } from "zod";

/** on/off switches (true/false, 1/0 and yes/no too). */
const onOff = (defaultValue: boolean) =>
  z
    .enum(["on", "off", "true", "false", "1", "0", "yes", "no"], { message: "must be on or off" })
    .transform((v) => v === "on" || v === "true" || v === "1" || v === "yes")
    .default(defaultValue);

const name = z.string().regex(/^[A-Za-z0-9_-]+$/);
const subjectPrefix = z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/);

export const queryConfigSchema = eventStreamSchema.extend(storesSchema.shape).extend({
  NEO4J_DATABASE: z.string().optional(),
  /** Key prefix in Valkey, namespace in Neo4j: the read models the projectors write. */
  READ_MODEL_NAMESPACE: name.default("ctx"),
  /** gRPC / gRPC-Web / Connect listen address. */
  QUERY_LISTEN: env.listen("127.0.0.1:50052"),
  /** /healthz, /readyz and /metrics. */
  QUERY_OPS_LISTEN: env.listen("127.0.0.1:9552"),
  /** Read snapshots for temporal queries (off: every answer folds from the story's first event). */
  SNAPSHOTS: onOff(true),
  /** Run the snapshotter in this process (replicas share its durable consumer). */
  SNAPSHOTTER: onOff(true),
  /** A snapshot every this many versions of a story. */
  SNAPSHOT_INTERVAL: env.int(100),
  SNAPSHOT_STREAM: name.default("CONTEXT_SNAPSHOTS"),
  SNAPSHOT_SUBJECT_PREFIX: subjectPrefix.default("context.snapshots"),
  /** Durable consumer of the snapshotter on the event stream. */
  SNAPSHOTTER_CONSUMER: name.default("snapshotter"),
  /** How long a stopping service lets calls in flight finish (watches are cut after it). */
  SHUTDOWN_GRACE_MS: env.int(10_000),
});

export type QueryConfig = z.infer<typeof queryConfigSchema>;

export function loadQueryConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): QueryConfig {
  return loadConfig(queryConfigSchema, source);
}
