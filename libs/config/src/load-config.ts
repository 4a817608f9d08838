import { z } from "zod";
import { ConfigError } from "./config-error.ts";

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads and validates configuration from environment variables. The schema's keys are the variable
 * names; an empty variable counts as unset, so defaults apply. Throws one ConfigError naming every bad
 * variable, so a service fails fast at start-up instead of at first use.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.infer<S> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? "(root)"),
      message: issue.message,
    })),
  );
}

/** Field builders for environment variables (all strings on the way in). */
export const env = {
  /** A TCP port number. */
  port: (defaultPort: number) => z.coerce.number().int().min(0).max(65535).default(defaultPort),
  /** A positive whole number. */
  int: (defaultValue: number) => z.coerce.number().int().positive().default(defaultValue),
  /** A URL with one of the given schemes. */
  url: (defaultUrl: string, schemes: readonly string[]) =>
    z
      .string()
      .refine((v) => URL.canParse(v) && schemes.includes(new URL(v).protocol.slice(0, -1)), {
        message: `must be a URL with scheme ${schemes.join(" or ")}`,
      })
      .default(defaultUrl),
  /** true/false, on/off, 1/0, yes/no. */
  bool: (defaultValue: boolean) =>
    z
      .enum(["true", "false", "on", "off", "1", "0", "yes", "no"], {
        message: "must be true or false (or on/off)",
      })
      .transform((v) => v === "true" || v === "on" || v === "1" || v === "yes")
      .default(defaultValue),
  /** A JetStream stream, consumer or key name: letters, digits, '_' and '-'. */
  name: (defaultName: string) =>
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, { message: "must be letters, digits, _ or -" })
      .default(defaultName),
  /** A NATS subject prefix: dot-separated tokens without wildcards. */
  subjectPrefix: (defaultPrefix: string) =>
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, { message: "must be dot-separated tokens" })
      .default(defaultPrefix),
  /** A host:port address to listen on. */
  listen: (defaultAddress: string) =>
    z
      .string()
      .regex(/^[^:\s]+:\d{1,5}$/, { message: "must be host:port" })
      .transform((v) => {
        const at = v.lastIndexOf(":");
        return { host: v.slice(0, at), port: Number(v.slice(at + 1)) };
      })
      .default(() => {
        const at = defaultAddress.lastIndexOf(":");
        return { host: defaultAddress.slice(0, at), port: Number(defaultAddress.slice(at + 1)) };
      }),
  logLevel: () =>
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
} as const;

/** Where the stores of the local stack listen; every service reads these. */
export const storesSchema = z.object({
  NATS_URL: env.url("nats://127.0.0.1:4222", ["nats", "tls"]),
  VALKEY_URL: env.url("redis://127.0.0.1:6379", ["redis", "rediss", "valkey"]),
  NEO4J_URL: env.url("bolt://127.0.0.1:7687", ["bolt", "neo4j", "bolt+s", "neo4j+s"]),
  NEO4J_USER: z.string().default("neo4j"),
  NEO4J_PASSWORD: z.string().default(""),
  LOG_LEVEL: env.logLevel(),
});

export type StoresConfig = z.infer<typeof storesSchema>;

/** The event stream every service and the ctx CLI agree on. */
export const eventStreamSchema = z.object({
  EVENT_STREAM: env.name("CONTEXT_EVENTS"),
  EVENT_SUBJECT_PREFIX: env.subjectPrefix("context.events"),
  /** Story partitions of the stream (fixed once the stream exists). */
  EVENT_PARTITIONS: z.coerce.number().int().min(1).max(1024).default(16),
  EVENT_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  EVENT_DUPLICATE_WINDOW_MS: env.int(120_000),
  /** Where projections park the events they cannot apply. */
  PARKED_STREAM: env.name("CONTEXT_PARKED"),
  PARKED_SUBJECT_PREFIX: env.subjectPrefix("context.parked"),
});

export type EventStreamConfig = z.infer<typeof eventStreamSchema>;

/**
 * Calls whose handlers start per event-loop turn in a gRPC service (libs/rpc's turn budget).
 * Measured on the command service's write bench (docs/BENCHMARKS.md): 16 did better than 8 or 32.
 */
export const defaultCallsPerTurn = 16;

/** The RPC server every gRPC service runs (libs/rpc). */
export const rpcServerSchema = z.object({
  /** Calls whose handlers start per event-loop turn; the others wait for the next turns (0: no limit). */
  RPC_CALLS_PER_TURN: z.coerce.number().int().min(0).default(defaultCallsPerTurn),
});

export type RpcServerConfig = z.infer<typeof rpcServerSchema>;

/** Where the read models live: the projectors write them, the query service and ctx read them. */
export const readModelSchema = storesSchema.extend({
  NEO4J_DATABASE: z.string().optional(),
  /** Key prefix in Valkey, namespace in Neo4j: lets several deployments share one store. */
  READ_MODEL_NAMESPACE: env.name("ctx"),
});

export type ReadModelConfig = z.infer<typeof readModelSchema>;
