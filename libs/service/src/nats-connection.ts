import { accessSync, constants, readFileSync } from "node:fs";
import { ConfigError, type ConfigProblem, env, splitUrls } from "@ctx/config";
import {
  type Authenticator,
  credsAuthenticator,
  nkeyAuthenticator,
  type TlsOptions,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
} from "@nats-io/nats-core";
import { type ConnectionOptions, connect, type NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";

/**
 * The NATS connection variables, without a prefix. Secrets are named by file (`*_FILE`, `NATS_CREDS`,
 * `NATS_TLS_KEY`) as Kubernetes mounts them, never passed as values, so they stay out of process
 * listings and of `env` dumps. Which combinations are valid is checked by {@link natsConnectionOf}.
 */
export const natsConnectionSchema = z.object({
  NATS_URL: env.urls("nats://127.0.0.1:4222", ["nats", "tls"]),
  /** User name; its password is read from NATS_PASSWORD_FILE. */
  NATS_USER: z.string().optional(),
  NATS_PASSWORD_FILE: z.string().optional(),
  NATS_TOKEN_FILE: z.string().optional(),
  /** An NKey user seed (`SU…`), as `nsc` or the stack's generator writes it. */
  NATS_NKEY_SEED_FILE: z.string().optional(),
  /** A `.creds` file: a user JWT and its seed (operator mode). */
  NATS_CREDS: z.string().optional(),
  /** The CA that signed the server's certificate; turns TLS on. */
  NATS_TLS_CA: z.string().optional(),
  /** A client certificate (with NATS_TLS_KEY) for servers that verify clients. */
  NATS_TLS_CERT: z.string().optional(),
  NATS_TLS_KEY: z.string().optional(),
  /**
   * Subject prefix of this identity's reply inboxes. The server lets each user subscribe to its own
   * prefix only, so no identity can read another's JetStream API answers.
   */
  NATS_INBOX_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, { message: "must be dot-separated tokens" })
    .optional(),
  /**
   * How often the client pings its server, and how many pings may go unanswered before it drops
   * the connection and reconnects (to another server of a cluster). nats.js waits 2 × 2 minutes by
   * default: a service on a server cut off from the network (not crashed) stayed connected, and
   * ready, to a silent server for minutes. One setting for the process: not prefixed.
   */
  NATS_PING_INTERVAL_MS: env.int(10_000),
  NATS_MAX_PINGS_OUT: env.int(2),
});

export type NatsConnectionConfig = z.infer<typeof natsConnectionSchema>;

/** The ways to log in to NATS, by the variable that names each: a connection takes one. */
const loginMethods = [
  ["NATS_PASSWORD_FILE", "password"],
  ["NATS_TOKEN_FILE", "token"],
  ["NATS_NKEY_SEED_FILE", "nkey"],
  ["NATS_CREDS", "creds"],
] as const;

/** Every variable of a NATS login (NATS_USER goes with NATS_PASSWORD_FILE). */
export const natsLoginVariables: readonly string[] = [
  "NATS_USER",
  ...loginMethods.map(([key]) => key),
];

/** How the process watches its connections: one setting for every identity (never prefixed). */
type LivenessKey = "NATS_PING_INTERVAL_MS" | "NATS_MAX_PINGS_OUT";
const livenessKeys: readonly string[] = ["NATS_PING_INTERVAL_MS", "NATS_MAX_PINGS_OUT"];
/** The variables of one identity: where, as whom, over what. */
type IdentityKey = Exclude<keyof NatsConnectionConfig, LivenessKey>;
const keys = (Object.keys(natsConnectionSchema.shape) as (keyof NatsConnectionConfig)[]).filter(
  (key): key is IdentityKey => !livenessKeys.includes(key),
);

/**
 * The same variables under a prefix (`SNAPSHOTTER_NATS_URL`, …), for a process that needs a second
 * identity. All optional: an unset `<prefix>NATS_URL` means the unprefixed NATS_URL.
 */
export function prefixedNatsConnectionSchema<P extends string>(
  prefix: P,
): z.ZodObject<PrefixedNatsShape<P>> {
  const shape: Record<string, z.ZodType> = {};
  for (const key of keys) {
    const field = natsConnectionSchema.shape[key];
    // Without the URL's default: unset falls back to the unprefixed NATS_URL.
    shape[`${prefix}${key}`] = (field instanceof z.ZodDefault ? field.unwrap() : field).optional();
  }
  return z.object(shape) as unknown as z.ZodObject<PrefixedNatsShape<P>>;
}

type NatsShape = typeof natsConnectionSchema.shape;
/** The NATS variables' fields under a prefix, all optional. */
export type PrefixedNatsShape<P extends string> = {
  [K in IdentityKey as `${P}${K}`]: z.ZodOptional<NatsShape[K]>;
};

/** Whether any of the NATS variables under the prefix is set (a second identity is configured). */
export function definesNatsConnection(
  config: Readonly<Record<string, unknown>>,
  prefix: string,
): boolean {
  return keys.some((key) => {
    const value = config[`${prefix}${key}`];
    return typeof value === "string" && value !== "";
  });
}

/** How a process authenticates to NATS (at most one way). */
export type NatsAuth =
  | { readonly kind: "none" }
  | { readonly kind: "password"; readonly user: string; readonly passwordFile: string }
  | { readonly kind: "token"; readonly tokenFile: string }
  | { readonly kind: "nkey"; readonly seedFile: string }
  | { readonly kind: "creds"; readonly credsFile: string };

/** A validated NATS connection: where, as whom, and over what. */
export interface NatsConnectionSettings {
  readonly url: string;
  readonly auth: NatsAuth;
  /** TLS on (a `tls://` URL or a CA); certificate and key only for client authentication. */
  readonly tls:
    | { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string }
    | undefined;
  readonly inboxPrefix: string | undefined;
  /** Client pings: the interval, and how many may go unanswered before it reconnects. */
  readonly pingIntervalMs: number;
  readonly maxPingsOut: number;
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks the NATS variables of a parsed configuration (optionally under a prefix) and turns them into
 * settings. Every problem names its variable: at most one authentication method, a password needs its
 * user and the other way round, a certificate needs its key, every named file must be readable.
 *
 * @param config a parsed configuration holding the (prefixed) NATS variables
 * @param prefix e.g. `SNAPSHOTTER_`; an unset prefixed URL falls back to the unprefixed NATS_URL
 * @throws ConfigError naming each bad variable
 */
export function natsConnectionOf(
  config: Readonly<Record<string, unknown>>,
  prefix = "",
): NatsConnectionSettings {
  const get = (key: keyof NatsConnectionConfig): string | undefined => {
    const value = config[`${prefix}${key}`];
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const name = (key: keyof NatsConnectionConfig) => `${prefix}${key}`;
  const problems: ConfigProblem[] = [];
  const url =
    get("NATS_URL") ?? (typeof config.NATS_URL === "string" ? config.NATS_URL : undefined);
  if (url === undefined) problems.push({ variable: name("NATS_URL"), message: "is required" });

  const methods = loginMethods.filter(([key]) => get(key) !== undefined);
  if (methods.length > 1) {
    problems.push({
      variable: name(methods[1]?.[0] ?? "NATS_CREDS"),
      message: `only one authentication method may be set, found ${methods.map(([key]) => name(key)).join(", ")}`,
    });
  }
  const user = get("NATS_USER");
  if (user !== undefined && get("NATS_PASSWORD_FILE") === undefined) {
    problems.push({
      variable: name("NATS_PASSWORD_FILE"),
      message: `is required with ${name("NATS_USER")}`,
    });
  }
  if (user === undefined && get("NATS_PASSWORD_FILE") !== undefined) {
    problems.push({
      variable: name("NATS_USER"),
      message: `is required with ${name("NATS_PASSWORD_FILE")}`,
    });
  }
  const cert = get("NATS_TLS_CERT");
  const key = get("NATS_TLS_KEY");
  if ((cert === undefined) !== (key === undefined)) {
    problems.push({
      variable: name(cert === undefined ? "NATS_TLS_CERT" : "NATS_TLS_KEY"),
      message: `a client certificate needs both ${name("NATS_TLS_CERT")} and ${name("NATS_TLS_KEY")}`,
    });
  }
  for (const fileKey of [
    "NATS_PASSWORD_FILE",
    "NATS_TOKEN_FILE",
    "NATS_NKEY_SEED_FILE",
    "NATS_CREDS",
    "NATS_TLS_CA",
    "NATS_TLS_CERT",
    "NATS_TLS_KEY",
  ] as const) {
    const path = get(fileKey);
    if (path !== undefined && !readable(path)) {
      problems.push({ variable: name(fileKey), message: `cannot read the file ${path}` });
    }
  }
  if (problems.length > 0 || url === undefined) throw new ConfigError(problems);

  const auth = authOf(get);
  const ca = get("NATS_TLS_CA");
  const tlsOn =
    splitUrls(url).some((u) => u.startsWith("tls://")) || ca !== undefined || cert !== undefined;
  return {
    url,
    auth,
    tls: tlsOn
      ? {
          ...(ca === undefined ? {} : { caFile: ca }),
          ...(cert === undefined ? {} : { certFile: cert }),
          ...(key === undefined ? {} : { keyFile: key }),
        }
      : undefined,
    inboxPrefix: get("NATS_INBOX_PREFIX"),
    // Unprefixed, parsed (a number) or raw (a string, as tests pass the environment).
    pingIntervalMs: wholeNumber(config.NATS_PING_INTERVAL_MS, 10_000),
    maxPingsOut: wholeNumber(config.NATS_MAX_PINGS_OUT, 2),
  };
}

function wholeNumber(value: unknown, fallback: number): number {
  const n = typeof value === "string" && value !== "" ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : fallback;
}

function authOf(get: (key: keyof NatsConnectionConfig) => string | undefined): NatsAuth {
  const password = get("NATS_PASSWORD_FILE");
  const user = get("NATS_USER");
  if (password !== undefined && user !== undefined) {
    return { kind: "password", user, passwordFile: password };
  }
  const token = get("NATS_TOKEN_FILE");
  if (token !== undefined) return { kind: "token", tokenFile: token };
  const seed = get("NATS_NKEY_SEED_FILE");
  if (seed !== undefined) return { kind: "nkey", seedFile: seed };
  const creds = get("NATS_CREDS");
  if (creds !== undefined) return { kind: "creds", credsFile: creds };
  return { kind: "none" };
}

/** A secret file's text without the trailing newline editors and `echo` add. */
function secret(path: string): string {
  return readFileSync(path, "utf8").trim();
}

/**
 * The authenticator for the settings. Secrets are read again at every (re)connect, so a rotated
 * Kubernetes secret takes effect without a restart.
 */
function authenticatorOf(auth: NatsAuth): Authenticator | undefined {
  switch (auth.kind) {
    case "none":
      return undefined;
    case "password":
      return usernamePasswordAuthenticator(auth.user, () => secret(auth.passwordFile));
    case "token":
      return tokenAuthenticator(() => secret(auth.tokenFile));
    case "nkey":
      return nkeyAuthenticator(() => new TextEncoder().encode(secret(auth.seedFile)));
    case "creds":
      return credsAuthenticator(() => readFileSync(auth.credsFile));
    default: {
      const never: never = auth;
      throw new Error(`unknown NATS authentication ${JSON.stringify(never)}`);
    }
  }
}

/** How long a connection attempt may take to get the server's INFO (a caller's `timeout` wins). */
const CONNECT_TIMEOUT_MS = 5_000;

/** nats.js v3 connection options for the settings (no I/O until nats.js calls the authenticator). */
export function natsConnectOptions(settings: NatsConnectionSettings): ConnectionOptions {
  const authenticator = authenticatorOf(settings.auth);
  const tls: TlsOptions | undefined = settings.tls === undefined ? undefined : { ...settings.tls };
  return {
    servers: splitUrls(settings.url),
    ...(authenticator === undefined ? {} : { authenticator }),
    ...(tls === undefined ? {} : { tls }),
    ...(settings.inboxPrefix === undefined ? {} : { inboxPrefix: settings.inboxPrefix }),
    pingInterval: settings.pingIntervalMs,
    maxPingOut: settings.maxPingsOut,
    // A frozen server still completes TCP handshakes (the kernel does): without a bound on the
    // NATS handshake, every reconnect that picked it waited nats.js's 20 s before trying another.
    timeout: CONNECT_TIMEOUT_MS,
  };
}

/**
 * Connects with the settings; `options` adds what the caller decides (name, reconnects, timeouts).
 * A refused login fails with the server's reason and the URL, not a bare "Authorization Violation".
 */
export async function connectNats(
  settings: NatsConnectionSettings,
  options: Omit<ConnectionOptions, "servers" | "authenticator" | "tls" | "inboxPrefix"> = {},
): Promise<NatsConnection> {
  try {
    return await connect({ ...natsConnectOptions(settings), ...options });
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new NatsConnectError(
      `cannot connect to NATS at ${settings.url} as ${describeAuth(settings.auth)}: ${reason}`,
      { cause: e },
    );
  }
}

/** The identity in words, for logs and errors (never the secret). */
export function describeAuth(auth: NatsAuth): string {
  switch (auth.kind) {
    case "none":
      return "an anonymous client";
    case "password":
      return `user ${auth.user}`;
    case "token":
      return "a token";
    case "nkey":
      return `the NKey in ${auth.seedFile}`;
    case "creds":
      return `the credentials in ${auth.credsFile}`;
    default: {
      const never: never = auth;
      return String(never);
    }
  }
}

/** Connecting to NATS failed (unreachable, TLS, or the login was refused). */
export class NatsConnectError extends Error {
  override readonly name = "NatsConnectError";
}

export function isNatsConnectError(e: unknown): e is NatsConnectError {
  return e instanceof NatsConnectError;
}
