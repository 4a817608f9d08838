import { z } from "zod";
import { ConfigError } from "./config-error.ts";
import { fileEnv } from "./file-env.ts";

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

/** The URLs of a comma-separated list (`env.urls`), trimmed, without empty entries. */
export function splitUrls(list: string): string[] {
  return list
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
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
  /**
   * One URL or a comma-separated list (a cluster's seed servers: a client tries them in turn and
   * learns the others from the servers), each with one of the given schemes.
   */
  urls: (defaultUrls: string, schemes: readonly string[]) =>
    z
      .string()
      .refine((v) => splitUrls(v).length > 0, { message: "must name at least one URL" })
      .refine(
        (v) =>
          splitUrls(v).every(
            (u) => URL.canParse(u) && schemes.includes(new URL(u).protocol.slice(0, -1)),
          ),
        {
          message: `must be a URL with scheme ${schemes.join(" or ")}, or a comma-separated list of them`,
        },
      )
      .default(defaultUrls),
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
  NATS_URL: env.urls("nats://127.0.0.1:4222", ["nats", "tls"]),
  /** rediss:// (or valkeys://) for TLS. */
  VALKEY_URL: env.url("redis://127.0.0.1:6379", ["redis", "rediss", "valkey", "valkeys"]),
  /** The ACL user (unset: Valkey's default user). */
  VALKEY_USER: z.string().min(1).optional(),
  VALKEY_PASSWORD_FILE: fileEnv.secret(),
  /** The CA that signed Valkey's certificate (unset: the system's CAs); TLS URLs only. */
  VALKEY_TLS_CA: fileEnv.pem(),
  /** A client certificate and its key, for a Valkey that asks for one; TLS URLs only. */
  VALKEY_TLS_CERT: fileEnv.pem(),
  VALKEY_TLS_KEY: fileEnv.pem(),
  /** bolt+s:// or neo4j+s:// for TLS. */
  NEO4J_URL: env.url("bolt://127.0.0.1:7687", ["bolt", "neo4j", "bolt+s", "neo4j+s"]),
  NEO4J_USER: z.string().default("neo4j"),
  /** Prefer NEO4J_PASSWORD_FILE; setting both is an error. */
  NEO4J_PASSWORD: z.string().default(""),
  NEO4J_PASSWORD_FILE: fileEnv.secret(),
  /** The CA that signed Neo4j's certificate (unset: the system's CAs); bolt+s/neo4j+s URLs only. */
  NEO4J_TLS_CA: fileEnv.pem(),
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
  /**
   * The envelope version events are appended in (the command service, `ctx stories repair`): 2, or
   * 1 while readers of a release before version 2 still run (docs/OPERATIONS.md, "Upgrading to
   * envelope version 2"). Readers read both.
   */
  EVENT_ENVELOPE_VERSION: z.coerce
    .number()
    .int()
    .refine((v) => v === 1 || v === 2, "must be 1 or 2")
    .default(2)
    .transform((v) => v as 1 | 2),
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

/**
 * The bounds of the RPC server every gRPC service runs (libs/rpc), by default. docs/OPERATIONS.md
 * ("Limits", RPC server) says what a caller sees when each is reached.
 */
export const rpcServerDefaults = {
  /** Largest request message, counted after decompression (4 MiB). */
  maxRequestBytes: 4 * 1024 * 1024,
  /** Largest response message, before compression (4 MiB). */
  maxResponseBytes: 4 * 1024 * 1024,
  /** Longest deadline of a unary call; also the deadline of a call that sends none. */
  maxDeadlineMs: 30_000,
  /** Longest deadline of a streaming call (0: none; a watch runs until the client cancels). */
  maxStreamDeadlineMs: 0,
  /** Time from a call's headers to the end of its request message (unary and server streams). */
  requestReadTimeoutMs: 10_000,
  /** Calls waiting for a turn (see RPC_CALLS_PER_TURN) before new ones are shed. */
  maxQueuedCalls: 1_000,
  /** HTTP/2 streams (calls) a connection may have open at once (its SETTINGS). */
  maxConcurrentStreams: 512,
  /** Open connections per process; more are closed as they arrive. */
  maxConnections: 1_000,
  /** Time a new connection has to send its HTTP/2 preface and SETTINGS. */
  handshakeTimeoutMs: 10_000,
  /** A connection without calls for this long is closed with GOAWAY (0: never). */
  idleTimeoutMs: 60_000,
  /** Every connection is pinged this often (0: never)… */
  keepaliveIntervalMs: 10_000,
  /** …and closed when a ping is not answered within this. */
  keepaliveTimeoutMs: 5_000,
} as const;

/** Node's timers take at most 2^31 − 1 ms. */
const maxTimerMs = 2 ** 31 - 1;
/** A whole number from `min` to `max` (milliseconds by default). */
const whole = (defaultValue: number, min: 0 | 1, max = maxTimerMs) =>
  z.coerce.number().int().min(min).max(max).default(defaultValue);

/** The RPC server every gRPC service runs (libs/rpc). */
export const rpcServerSchema = z.object({
  /** Calls whose handlers start per event-loop turn; the others wait for the next turns (0: no limit). */
  RPC_CALLS_PER_TURN: z.coerce.number().int().min(0).default(defaultCallsPerTurn),
  /** Connect's limit is 2^32 − 1 bytes per message. */
  RPC_MAX_REQUEST_BYTES: whole(rpcServerDefaults.maxRequestBytes, 1, 2 ** 32 - 1),
  RPC_MAX_RESPONSE_BYTES: whole(rpcServerDefaults.maxResponseBytes, 1, 2 ** 32 - 1),
  RPC_MAX_DEADLINE_MS: whole(rpcServerDefaults.maxDeadlineMs, 1),
  RPC_MAX_STREAM_DEADLINE_MS: whole(rpcServerDefaults.maxStreamDeadlineMs, 0),
  RPC_REQUEST_READ_TIMEOUT_MS: whole(rpcServerDefaults.requestReadTimeoutMs, 1),
  RPC_MAX_QUEUED_CALLS: whole(rpcServerDefaults.maxQueuedCalls, 1),
  RPC_MAX_CONCURRENT_STREAMS: whole(rpcServerDefaults.maxConcurrentStreams, 1, 2 ** 32 - 1),
  RPC_MAX_CONNECTIONS: whole(rpcServerDefaults.maxConnections, 1),
  RPC_HANDSHAKE_TIMEOUT_MS: whole(rpcServerDefaults.handshakeTimeoutMs, 1),
  RPC_IDLE_TIMEOUT_MS: whole(rpcServerDefaults.idleTimeoutMs, 0),
  RPC_KEEPALIVE_INTERVAL_MS: whole(rpcServerDefaults.keepaliveIntervalMs, 0),
  RPC_KEEPALIVE_TIMEOUT_MS: whole(rpcServerDefaults.keepaliveTimeoutMs, 1),
  /**
   * Origins whose browser pages may call the service (CORS): exact origins such as
   * `https://app.example.com`, comma- or space-separated, or `*`; empty: none.
   */
  RPC_CORS_ORIGINS: z
    .string()
    .default("")
    .transform((value, ctx) => {
      const origins = value.split(/[\s,]+/).filter((o) => o !== "");
      for (const origin of origins) {
        if (origin !== "*" && !isWebOrigin(origin)) {
          ctx.addIssue({
            code: "custom",
            message: `${JSON.stringify(origin)} is not an origin: expected scheme://host[:port] (http or https, no path) or *`,
          });
        }
      }
      return origins;
    }),
});

/** Whether `value` is an http(s) origin as a browser sends it: scheme, host and port, no more. */
function isWebOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value;
  } catch {
    return false;
  }
}

export type RpcServerConfig = z.infer<typeof rpcServerSchema>;

/** Where the read models live: the projectors write them, the query service and ctx read them. */
export const readModelSchema = storesSchema.extend({
  NEO4J_DATABASE: z.string().optional(),
  /** Key prefix in Valkey, namespace in Neo4j: lets several deployments share one store. */
  READ_MODEL_NAMESPACE: env.name("ctx"),
});

export type ReadModelConfig = z.infer<typeof readModelSchema>;
