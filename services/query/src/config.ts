import { env, eventStreamSchema, loadConfig, readModelSchema } from "@ctx/config";
import { defaultCallsPerTurn } from "@ctx/rpc";
import { z } from "zod";

export const queryConfigSchema = eventStreamSchema.extend(readModelSchema.shape).extend({
  /** gRPC / gRPC-Web / Connect listen address. */
  QUERY_LISTEN: env.listen("127.0.0.1:50052"),
  /** Calls whose handlers start per event-loop turn (0: no limit); see turnBudgetInterceptor. */
  RPC_CALLS_PER_TURN: z.coerce.number().int().min(0).default(defaultCallsPerTurn),
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
