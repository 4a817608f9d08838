import { env, eventStreamSchema, loadConfig, rpcServerSchema, storesSchema } from "@ctx/config";
import { z } from "zod";
import { defaultCacheLimits } from "./handling/story-cache.ts";

export const commandConfigSchema = eventStreamSchema.extend(rpcServerSchema.shape).extend({
  NATS_URL: storesSchema.shape.NATS_URL,
  LOG_LEVEL: storesSchema.shape.LOG_LEVEL,
  /** gRPC / gRPC-Web / Connect listen address. */
  COMMAND_LISTEN: env.listen("127.0.0.1:50051"),
  /** /healthz, /readyz and /metrics. */
  COMMAND_OPS_LISTEN: env.listen("127.0.0.1:9551"),
  /** Stories whose state the service keeps in memory (0: none). */
  STORY_CACHE_SIZE: z.coerce.number().int().min(0).default(defaultCacheLimits.stories),
  /** Events the cached stories may hold in all (0: none); bounds the cache's memory. */
  STORY_CACHE_EVENTS: z.coerce.number().int().min(0).default(defaultCacheLimits.events),
  /** How long a stopping service lets calls in flight finish. */
  SHUTDOWN_GRACE_MS: env.int(10_000),
});

export type CommandConfig = z.infer<typeof commandConfigSchema>;

export function loadCommandConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): CommandConfig {
  return loadConfig(commandConfigSchema, source);
}
