import { z } from "zod";
import { ConfigError, type ConfigProblem } from "./config-error.ts";

/** How a gRPC service authenticates its callers (AUTH). */
export const authModes = ["jwt", "mtls", "jwt,mtls", "off"] as const;
export type AuthMode = (typeof authModes)[number];

/** Who may use gRPC server reflection (RPC_REFLECTION). */
export const reflectionAccess = ["off", "authenticated", "public"] as const;
export type ReflectionAccess = (typeof reflectionAccess)[number];

const optionalFile = () => z.string().optional();

/**
 * The ops listener of every service (/healthz, /readyz, /metrics): TLS, and /metrics on a listener
 * of its own, so the probes can be reachable by the kubelet and the metrics stay private.
 */
export const opsListenerSchema = z.object({
  /** TLS on the ops listener(s): the server's certificate chain and key (PEM files). */
  OPS_TLS_CERT_FILE: optionalFile(),
  OPS_TLS_KEY_FILE: optionalFile(),
  /** /metrics on a listener of its own (host:port); the ops listener then serves probes only. */
  METRICS_LISTEN: z
    .string()
    .regex(/^[^:\s]+:\d{1,5}$/, { message: "must be host:port" })
    .transform((v) => {
      const at = v.lastIndexOf(":");
      return { host: v.slice(0, at), port: Number(v.slice(at + 1)) };
    })
    .optional(),
});

export type OpsListenerConfig = z.infer<typeof opsListenerSchema>;

/**
 * The checks across the ops variables: a certificate with its key.
 *
 * @throws ConfigError naming the variable to set.
 */
export function checkOpsListener(config: OpsListenerConfig): void {
  const problems = opsListenerProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
}

function opsListenerProblems(config: OpsListenerConfig): ConfigProblem[] {
  if (!config.OPS_TLS_CERT_FILE === !config.OPS_TLS_KEY_FILE) return [];
  const missing = config.OPS_TLS_CERT_FILE ? "OPS_TLS_KEY_FILE" : "OPS_TLS_CERT_FILE";
  return [{ variable: missing, message: "set OPS_TLS_CERT_FILE and OPS_TLS_KEY_FILE together" }];
}

/**
 * Authentication, TLS and the ops listeners of a gRPC service (libs/rpc). AUTH has no default on
 * purpose: a service whose operator forgot it refuses to start instead of serving everyone.
 */
export const rpcSecuritySchema = opsListenerSchema.extend({
  AUTH: z
    .string({
      error: "must be set: jwt, mtls, jwt,mtls, or off (off serves every caller unauthenticated)",
    })
    .transform((v) =>
      v
        .split(",")
        .map((m) => m.trim())
        .filter((m) => m !== "")
        .sort()
        .join(","),
    )
    .pipe(z.enum(authModes, { error: "must be jwt, mtls, jwt,mtls or off" })),
  /** The JSON Web Key Set that verifies bearer tokens, as a file (re-read when it changes)… */
  AUTH_JWKS_FILE: optionalFile(),
  /** …or as an https URL (cached; refetched for an unknown key id, at most every 30 s). */
  AUTH_JWKS_URL: z
    .string()
    .refine((v) => URL.canParse(v) && ["https:", "http:"].includes(new URL(v).protocol), {
      message: "must be an https (or http) URL",
    })
    .optional(),
  /** The `iss` every token must carry. */
  AUTH_ISSUER: z.string().optional(),
  /** The `aud` every token must carry (one of its values). */
  AUTH_AUDIENCE: z.string().optional(),
  /** Clock difference tolerated on exp and nbf. */
  AUTH_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(600).default(60),
  /** The claim that lists a token's roles (an array or a space-separated string); `scope` too. */
  AUTH_ROLES_CLAIM: z
    .string()
    .regex(/^[A-Za-z0-9_.:/-]+$/, { message: "must be a claim name" })
    .default("roles"),
  /** TLS on the gRPC listener: the server's certificate chain and key (PEM files). */
  RPC_TLS_CERT_FILE: optionalFile(),
  RPC_TLS_KEY_FILE: optionalFile(),
  /** The CA whose client certificates the gRPC listener verifies (needed for AUTH=mtls). */
  RPC_TLS_CLIENT_CA_FILE: optionalFile(),
  /**
   * gRPC server reflection: off, for any authenticated caller (default: grpcurl and buf curl work
   * with a token, and an anonymous scanner learns nothing), or public.
   */
  RPC_REFLECTION: z
    .enum(reflectionAccess, { error: "must be off, authenticated or public" })
    .default("authenticated"),
});

export type RpcSecurityConfig = z.infer<typeof rpcSecuritySchema>;

/**
 * The checks across variables that a schema per variable cannot make: what each AUTH mode needs,
 * certificates with their keys. Call after loadConfig.
 *
 * @throws ConfigError naming every variable to set or unset.
 */
export function checkRpcSecurity(config: RpcSecurityConfig): void {
  const problems: ConfigProblem[] = [];
  const modes = config.AUTH.split(",");
  if (modes.includes("jwt")) {
    if (!config.AUTH_JWKS_FILE === !config.AUTH_JWKS_URL) {
      problems.push({
        variable: config.AUTH_JWKS_FILE ? "AUTH_JWKS_URL" : "AUTH_JWKS_FILE",
        message: config.AUTH_JWKS_FILE
          ? "set AUTH_JWKS_FILE or AUTH_JWKS_URL, not both"
          : "AUTH=jwt needs the keys that verify tokens: set AUTH_JWKS_FILE or AUTH_JWKS_URL",
      });
    }
    if (!config.AUTH_ISSUER) {
      problems.push({
        variable: "AUTH_ISSUER",
        message: "AUTH=jwt needs the issuer tokens must carry",
      });
    }
    if (!config.AUTH_AUDIENCE) {
      problems.push({
        variable: "AUTH_AUDIENCE",
        message: "AUTH=jwt needs the audience tokens must carry",
      });
    }
  }
  if (modes.includes("mtls")) {
    for (const variable of [
      "RPC_TLS_CERT_FILE",
      "RPC_TLS_KEY_FILE",
      "RPC_TLS_CLIENT_CA_FILE",
    ] as const) {
      if (!config[variable]) {
        problems.push({
          variable,
          message: "AUTH=mtls needs TLS with client certificates: set it",
        });
      }
    }
  }
  if (!config.RPC_TLS_CERT_FILE !== !config.RPC_TLS_KEY_FILE) {
    const missing = config.RPC_TLS_CERT_FILE ? "RPC_TLS_KEY_FILE" : "RPC_TLS_CERT_FILE";
    if (!problems.some((p) => p.variable === missing)) {
      problems.push({
        variable: missing,
        message: "set RPC_TLS_CERT_FILE and RPC_TLS_KEY_FILE together",
      });
    }
  }
  problems.push(...opsListenerProblems(config));
  if (config.RPC_TLS_CLIENT_CA_FILE && !config.RPC_TLS_CERT_FILE && !modes.includes("mtls")) {
    problems.push({
      variable: "RPC_TLS_CERT_FILE",
      message:
        "RPC_TLS_CLIENT_CA_FILE needs TLS on the gRPC listener: set RPC_TLS_CERT_FILE and RPC_TLS_KEY_FILE",
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
}
