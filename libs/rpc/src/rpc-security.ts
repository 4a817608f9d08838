import { readFileSync } from "node:fs";
import { ConfigError, type Logger, type RpcSecurityConfig } from "@ctx/config";
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
  readonly ops: {
    readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
    readonly metricsListen?: { readonly host: string; readonly port: number };
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
  const read = (variable: keyof RpcSecurityConfig): Buffer | undefined => {
    const path = config[variable];
    if (typeof path !== "string") return undefined;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new ConfigError(
        [{ variable, message: `cannot read ${path}: ${(e as Error).message}` }],
        {
          cause: e,
        },
      );
    }
  };
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
  const opsCert = read("OPS_TLS_CERT_FILE");
  const opsKey = read("OPS_TLS_KEY_FILE");
  return {
    server: { ...(auth ? { auth } : {}), ...(tls ? { tls } : {}) },
    reflection: config.RPC_REFLECTION !== "off",
    ops: {
      ...(opsCert && opsKey ? { tls: { cert: opsCert, key: opsKey } } : {}),
      ...(config.METRICS_LISTEN ? { metricsListen: config.METRICS_LISTEN } : {}),
    },
  };
}
