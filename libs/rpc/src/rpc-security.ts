import { readFileSync } from "node:fs";
import {
  ConfigError,
  type Logger,
  type OpsListenerConfig,
  type RpcSecurityConfig,
} from "@ctx/config";
import { createAccessPolicy, type ServiceRule } from "./access-policy.ts";
import { createAuthenticator } from "./authenticator.ts";
import type { RpcAuth, RpcTls } from "./rpc-server.ts";

/** What the security variables (rpcSecuritySchema) configure, ready for startRpcServer and the ops listeners. */
export interface RpcSecurity {
  /** For startRpcServer: spread into its options. */
  readonly server: { readonly auth?: RpcAuth; readonly tls?: RpcTls };
  /** Whether to register gRPC reflection at all (RPC_REFLECTION is not off). */
  readonly reflection: boolean;
  /** For startOpsListeners: spread into its options. */
  readonly ops: OpsSecurity;
}

/** What the ops variables (opsListenerSchema) configure: spread into startOpsListeners' options. */
export interface OpsSecurity {
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  readonly metricsListen?: { readonly host: string; readonly port: number };
}

/** Reads the PEM file a variable names; undefined when it is unset. */
function readNamed<C>(config: C, variable: keyof C & string): Buffer | undefined {
  const path = config[variable];
  if (typeof path !== "string") return undefined;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError([{ variable, message: `cannot read ${path}: ${(e as Error).message}` }], {
      cause: e,
    });
  }
}

/**
 * Reads the ops listener's certificate and key (OPS_TLS_*) and where /metrics goes
 * (METRICS_LISTEN): what every service, gRPC or not, needs for its ops endpoints.
 *
 * @throws ConfigError naming the variable whose file cannot be read.
 */
export function loadOpsSecurity(config: OpsListenerConfig): OpsSecurity {
  const cert = readNamed(config, "OPS_TLS_CERT_FILE");
  const key = readNamed(config, "OPS_TLS_KEY_FILE");
  return {
    ...(cert && key ? { tls: { cert, key } } : {}),
    ...(config.METRICS_LISTEN ? { metricsListen: config.METRICS_LISTEN } : {}),
  };
}

/**
 * Reads the certificate, key and key-set files the configuration names and builds the
 * authenticator and access policy: the one place both gRPC services turn AUTH_*, RPC_TLS_*,
 * OPS_TLS_*, METRICS_LISTEN and RPC_REFLECTION into a server. AUTH=off is logged as a warning,
 * so an open service is a visible choice.
 *
 * @throws ConfigError naming the variable whose file cannot be read or used.
 */
export async function loadRpcSecurity(
  config: RpcSecurityConfig,
  options: { readonly rules: readonly ServiceRule[]; readonly logger: Logger },
): Promise<RpcSecurity> {
  const modes = config.AUTH.split(",");
  const read = (variable: keyof RpcSecurityConfig & string) => readNamed(config, variable);
  const cert = read("RPC_TLS_CERT_FILE");
  const key = read("RPC_TLS_KEY_FILE");
  const clientCa = read("RPC_TLS_CLIENT_CA_FILE");
  const tls: RpcTls | undefined =
    cert && key ? { cert, key, ...(clientCa ? { clientCa } : {}) } : undefined;
  let auth: RpcAuth | undefined;
  if (config.AUTH === "off") {
    options.logger.warn(
      "AUTH=off: every caller is served without authentication; set AUTH=jwt or mtls in production",
    );
  } else {
    const jwt = modes.includes("jwt");
    let authenticator: RpcAuth["authenticator"];
    try {
      authenticator = await createAuthenticator({
        mtls: modes.includes("mtls"),
        ...(jwt
          ? {
              jwt: {
                ...(config.AUTH_JWKS_FILE ? { jwksFile: config.AUTH_JWKS_FILE } : {}),
                ...(config.AUTH_JWKS_URL ? { jwksUrl: config.AUTH_JWKS_URL } : {}),
                issuer: config.AUTH_ISSUER ?? "",
                audience: config.AUTH_AUDIENCE ?? "",
                clockSkewSeconds: config.AUTH_CLOCK_SKEW_SECONDS,
                rolesClaim: config.AUTH_ROLES_CLAIM,
              },
            }
          : {}),
      });
    } catch (e) {
      throw new ConfigError(
        [{ variable: "AUTH_JWKS_FILE", message: `no usable key set: ${(e as Error).message}` }],
        { cause: e },
      );
    }
    auth = {
      authenticator,
      policy: createAccessPolicy(options.rules, { reflection: config.RPC_REFLECTION }),
    };
  }
  return {
    server: { ...(auth ? { auth } : {}), ...(tls ? { tls } : {}) },
    reflection: config.RPC_REFLECTION !== "off",
    ops: loadOpsSecurity(config),
  };
}
