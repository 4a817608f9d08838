import { ConfigError, type ConfigProblem, type StoresConfig } from "@ctx/config";
import neo4j, { type Config, type Driver } from "neo4j-driver";

/** Where and as whom to connect to Neo4j. */
export interface Neo4jConnection {
  /** bolt:// or neo4j://; bolt+s:// or neo4j+s:// for TLS. */
  readonly url: string;
  readonly user: string;
  readonly password: string;
  /** A PEM file with the CA of the server's certificate (unset: the system's CAs); TLS URLs only. */
  readonly tlsCaFile?: string | undefined;
}

/** The configuration variables a Neo4j connection is made of. */
export type Neo4jConnectionConfig = Pick<
  StoresConfig,
  "NEO4J_URL" | "NEO4J_USER" | "NEO4J_PASSWORD" | "NEO4J_PASSWORD_FILE" | "NEO4J_TLS_CA"
>;

const tlsSchemes = ["bolt+s:", "neo4j+s:"];

/**
 * The connection a service's configuration describes.
 *
 * @throws ConfigError for both NEO4J_PASSWORD and NEO4J_PASSWORD_FILE, or NEO4J_TLS_CA with a plain
 *   URL.
 */
export function neo4jConnection(config: Neo4jConnectionConfig): Neo4jConnection {
  const problems: ConfigProblem[] = [];
  if (config.NEO4J_PASSWORD !== "" && config.NEO4J_PASSWORD_FILE !== undefined) {
    problems.push({
      variable: "NEO4J_PASSWORD",
      message: "set NEO4J_PASSWORD or NEO4J_PASSWORD_FILE, not both",
    });
  }
  const secure = tlsSchemes.includes(new URL(config.NEO4J_URL).protocol);
  if (config.NEO4J_TLS_CA !== undefined && !secure) {
    problems.push({
      variable: "NEO4J_TLS_CA",
      message: "needs a bolt+s:// or neo4j+s:// NEO4J_URL",
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    url: config.NEO4J_URL,
    user: config.NEO4J_USER,
    password: config.NEO4J_PASSWORD_FILE?.text ?? config.NEO4J_PASSWORD,
    tlsCaFile: config.NEO4J_TLS_CA?.path,
  };
}

/**
 * A driver logged in as the connection's user; the one place credentials and TLS become driver
 * settings. A private CA needs the driver's custom-CA trust, which it only takes with a plain
 * scheme and encryption set in the config (it refuses both a +s scheme and trust settings): the
 * URL's `+s` is moved into the config for it.
 */
export function createNeo4jDriver(connection: Neo4jConnection, config: Config = {}): Driver {
  const { user, password, tlsCaFile } = connection;
  let url = connection.url;
  const tls: Config = {};
  if (tlsCaFile !== undefined) {
    const at = new URL(url);
    if (!tlsSchemes.includes(at.protocol)) {
      throw new TypeError(`a CA file needs a bolt+s:// or neo4j+s:// URL, not ${at.protocol}`);
    }
    url = url.replace(/^(bolt|neo4j)\+s:/, "$1:");
    tls.encrypted = "ENCRYPTION_ON";
    tls.trust = "TRUST_CUSTOM_CA_SIGNED_CERTIFICATES";
    tls.trustedCertificates = [tlsCaFile];
  }
  return neo4j.driver(url, neo4j.auth.basic(user, password), { ...config, ...tls });
}
