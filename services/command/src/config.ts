import {
  ConfigError,
  checkRpcSecurity,
  type EventStreamConfig,
  env,
  eventStreamSchema,
  loadConfig,
  rpcSecuritySchema,
  rpcServerSchema,
  storesSchema,
} from "@ctx/config";
import { defaultStoryLimits, type StoryLimits } from "@ctx/domain";
import type { EventStreamSettings } from "@ctx/event-store";
import { natsConnectionSchema } from "@ctx/service";
import { z } from "zod";
import { defaultCacheLimits } from "./handling/story-cache.ts";

/** A whole number within bounds, with a default. */
const count = (defaultValue: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(defaultValue);

export const commandConfigSchema = eventStreamSchema
  .extend(rpcServerSchema.shape)
  .extend(rpcSecuritySchema.shape)
  .extend({
    ...natsConnectionSchema.shape,
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
    /**
     * A story is snapshotted (in the background) once it has grown by this many events since its
     * last snapshot; 0: this process writes none. Snapshots make a story the process does not hold
     * load from the snapshot and the events after it instead of from its first event.
     */
    COMMAND_SNAPSHOT_EVERY: count(100, 0, 1_000_000),
    /** Whether loads use snapshots (off: every story is read from its first event). */
    COMMAND_SNAPSHOT_READ: env.bool(true),
    /** Stories waiting for a snapshot at most; a story due when the queue is full waits for its next append. */
    COMMAND_SNAPSHOT_QUEUE: count(1_000, 1, 1_000_000),
    /** How long a stopping service lets calls in flight finish. */
    SHUTDOWN_GRACE_MS: env.int(10_000),
    /** Changes one command may carry; the proto allows 100 at most (ApplyChanges.changes). */
    COMMAND_MAX_CHANGES: count(defaultStoryLimits.changesPerCommand, 1, 100),
    /** Bytes of one event's payload. */
    COMMAND_MAX_EVENT_BYTES: count(defaultStoryLimits.eventBytes, 1_024, 64 * 1024 * 1024),
    /** Decisions one story may hold. */
    STORY_MAX_DECISIONS: count(defaultStoryLimits.decisions, 1, 1_000_000),
    /** Subtasks one story may hold. */
    STORY_MAX_SUBTASKS: count(defaultStoryLimits.subtasks, 1, 1_000_000),
    /** Subtask dependencies one story may hold. */
    STORY_MAX_DEPENDENCIES: count(defaultStoryLimits.dependencies, 0, 10_000_000),
    /** Bytes of a story's encoded context (its snapshot, Valkey entry and GetContext answer). */
    STORY_MAX_BYTES: count(defaultStoryLimits.contextBytes, 1_024, 64 * 1024 * 1024),
    /**
     * A key file (`ctx audit keygen`; its name is the key id): every appended event is signed with
     * it (docs/AUDIT.md, "Signed events"). Unset: events are not signed.
     */
    EVENT_SIGNING_KEY_FILE: z.string().min(1).optional(),
  });

export type CommandConfig = z.infer<typeof commandConfigSchema>;

export function loadCommandConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
): CommandConfig {
  const config = loadConfig(commandConfigSchema, source);
  checkRpcSecurity(config);
  return config;
}

/** The event stream the configuration names: what `ctx provision` creates and the service checks. */
export function eventStreamSettingsOf(config: EventStreamConfig): EventStreamSettings {
  return {
    stream: config.EVENT_STREAM,
    subjectPrefix: config.EVENT_SUBJECT_PREFIX,
    partitions: config.EVENT_PARTITIONS,
    replicas: config.EVENT_STREAM_REPLICAS,
    duplicateWindowMs: config.EVENT_DUPLICATE_WINDOW_MS,
  };
}

/** The limits the configuration sets for commands and stories. */
export function storyLimitsOf(config: CommandConfig): StoryLimits {
  return {
    changesPerCommand: config.COMMAND_MAX_CHANGES,
    eventBytes: config.COMMAND_MAX_EVENT_BYTES,
    decisions: config.STORY_MAX_DECISIONS,
    subtasks: config.STORY_MAX_SUBTASKS,
    dependencies: config.STORY_MAX_DEPENDENCIES,
    contextBytes: config.STORY_MAX_BYTES,
  };
}

/**
 * Room a NATS message needs beside the largest event or story: an event's envelope (ids, hashes:
 * under 1 KiB) and a snapshot's fields, each with the headers of its publish (under 1 KiB).
 */
export const messageRoom = 16 * 1024;

/**
 * Checks that the largest event and the largest story the limits allow fit in one NATS message
 * of the server's `max_payload`: otherwise a story at its limit could not be snapshotted (the
 * snapshot is one message) and an event at its limit could not be stored.
 *
 * @throws ConfigError naming the setting to lower.
 */
export function checkLimitsFit(config: CommandConfig, maxPayload: number): void {
  const problems = [
    ["STORY_MAX_BYTES", config.STORY_MAX_BYTES, "a story at the limit could not be snapshotted"],
    [
      "COMMAND_MAX_EVENT_BYTES",
      config.COMMAND_MAX_EVENT_BYTES,
      "an event at the limit could not be stored",
    ],
  ] as const;
  const tooLarge = problems.filter(([, value]) => value + messageRoom > maxPayload);
  if (tooLarge.length === 0) return;
  throw new ConfigError(
    tooLarge.map(([variable, value, why]) => ({
      variable,
      message: `${value} bytes leave less than ${messageRoom} bytes of room in a NATS message (the server's max_payload is ${maxPayload}): ${why}; lower it, or raise max_payload`,
    })),
  );
}
