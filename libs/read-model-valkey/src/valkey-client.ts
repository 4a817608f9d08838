import { ConfigError, type ConfigProblem, type StoresConfig } from "@ctx/config";
import { type RedisOptions, Valkey } from "iovalkey";

/**
 * Where and as whom to connect to Valkey. Credentials travel beside the URL, never in it, so that a
 * logged URL gives nothing away.
 */
export interface ValkeyConnection {
  /** redis:// or valkey://; rediss:// or valkeys:// for TLS. */
  readonly url: string;
  /** The ACL user (unset: the default user). */
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  /** PEM texts: the CA of the server's certificate (unset: the system's), a client certificate and key. */
  readonly tls?: ValkeyTls | undefined;
}

export interface ValkeyTls {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
}

/** The configuration variables a Valkey connection is made of. */
export type ValkeyConnectionConfig = Pick<
  StoresConfig,
  | "VALKEY_URL"
  | "VALKEY_USER"
  | "VALKEY_PASSWORD_FILE"
  | "VALKEY_TLS_CA"
  | "VALKEY_TLS_CERT"
  | "VALKEY_TLS_KEY"
>;

const tlsSchemes = ["rediss:", "valkeys:"];

/**
 * The connection a service's configuration describes.
 *
 * @throws ConfigError naming the variables that do not fit together: TLS files with a plain URL, a
 *   certificate without its key, credentials inside VALKEY_URL.
 */
export function valkeyConnection(config: ValkeyConnectionConfig): ValkeyConnection {
  const url = new URL(config.VALKEY_URL);
  const problems: ConfigProblem[] = [];
  if (url.username !== "" || url.password !== "") {
    problems.push({
      variable: "VALKEY_URL",
      message: "must not hold credentials: use VALKEY_USER and VALKEY_PASSWORD_FILE",
    });
  }
  if (!tlsSchemes.includes(url.protocol)) {
    for (const variable of ["VALKEY_TLS_CA", "VALKEY_TLS_CERT", "VALKEY_TLS_KEY"] as const) {
      if (config[variable] !== undefined) {
        problems.push({ variable, message: "needs a rediss:// VALKEY_URL" });
      }
    }
  }
  if ((config.VALKEY_TLS_CERT === undefined) !== (config.VALKEY_TLS_KEY === undefined)) {
    problems.push({
      variable: config.VALKEY_TLS_CERT === undefined ? "VALKEY_TLS_CERT" : "VALKEY_TLS_KEY",
      message: "VALKEY_TLS_CERT and VALKEY_TLS_KEY go together",
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const { VALKEY_TLS_CA: ca, VALKEY_TLS_CERT: cert, VALKEY_TLS_KEY: key } = config;
  return {
    url: config.VALKEY_URL,
    user: config.VALKEY_USER,
    password: config.VALKEY_PASSWORD_FILE?.text,
    ...(ca || cert || key ? { tls: { ca: ca?.text, cert: cert?.text, key: key?.text } } : {}),
  };
}

/** The iovalkey options of a connection: the one place credentials and TLS become client options. */
function connectionOptions(connection: ValkeyConnection): RedisOptions {
  const { url, user, password, tls } = connection;
  const secure = tlsSchemes.includes(new URL(url).protocol);
  if (tls && !secure) {
    throw new TypeError(
      `TLS options need a rediss:// or valkeys:// URL, not ${new URL(url).protocol}`,
    );
  }
  const options: RedisOptions = {};
  if (user !== undefined) options.username = user;
  if (password !== undefined) options.password = password;
  if (tls) {
    options.tls = {
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
    };
  }
  return options;
}

/**
 * Options under which a call fails within a few seconds when Valkey is down, instead of waiting in
 * the offline queue for a reconnection: the projector backs off and retries on its own terms.
 */
const failFast: RedisOptions = {
  // A call waiting for a connection is rejected after the second failed reconnection attempt:
  // within about two seconds with reconnections at most a second apart.
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  connectTimeout: 2_000,
  // A server that accepts the connection but does not answer (stopped, swapping).
  commandTimeout: 10_000,
};

/**
 * A Valkey client for the read model, logged in as the connection's user, configured to fail fast
 * during an outage (options given here win). Every client of the read model (services, ctx,
 * benchmarks, tests) is made here, so credentials and TLS are applied the same way everywhere. The
 * caller owns it: `quit()` it when done; the projection and reader never close it.
 *
 * @throws TypeError for TLS options with a plain URL.
 */
export function createValkeyClient(
  connection: ValkeyConnection | string,
  options: RedisOptions = {},
): Valkey {
  const at = typeof connection === "string" ? { url: connection } : connection;
  return new Valkey(at.url, { ...failFast, ...connectionOptions(at), ...options });
}

/**
 * @throws TypeError when the client would keep a call waiting forever during an outage (unlimited
 *   retries with the offline queue on): the projector could then never back off.
 */
export function assertFailsFast(valkey: Valkey): void {
  const { maxRetriesPerRequest, enableOfflineQueue } = valkey.options;
  if (maxRetriesPerRequest === null && enableOfflineQueue !== false) {
    throw new TypeError(
      "the Valkey client retries forever (maxRetriesPerRequest: null): set maxRetriesPerRequest or enableOfflineQueue: false, or use createValkeyClient",
    );
  }
}
