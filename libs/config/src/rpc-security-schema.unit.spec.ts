import { describe, expect, it } from "vitest";
import { isConfigError } from "./config-error.ts";
import { loadConfig } from "./load-config.ts";
import { checkRpcSecurity, rpcSecuritySchema } from "./rpc-security-schema.ts";

const load = (env: Record<string, string>) => {
  const config = loadConfig(rpcSecuritySchema, env);
  checkRpcSecurity(config);
  return config;
};
const problems = (env: Record<string, string>) => {
  try {
    load(env);
    return [];
  } catch (e) {
    if (!isConfigError(e)) throw e;
    return e.problems.map((p) => `${p.variable}: ${p.message}`);
  }
};
const jwt = {
  AUTH: "jwt",
  AUTH_JWKS_FILE: "jwks.json",
  AUTH_ISSUER: "https://issuer",
  AUTH_AUDIENCE: "context-service",
};

describe("the security settings of a gRPC service", () => {
  it("refuse to start without AUTH, and say what to set", () => {
    expect(problems({})).toEqual([
      "AUTH: must be set: jwt, mtls, jwt,mtls, or off (off serves every caller unauthenticated)",
    ]);
    expect(problems({ AUTH: "maybe" })[0]).toMatch(/^AUTH: must be jwt, mtls, jwt,mtls or off/);
  });

  it("take AUTH=off as an explicit choice, and the modes in any order", () => {
    expect(load({ AUTH: "off" }).AUTH).toBe("off");
    const both = {
      ...jwt,
      AUTH: "mtls, jwt",
      RPC_TLS_CERT_FILE: "c",
      RPC_TLS_KEY_FILE: "k",
      RPC_TLS_CLIENT_CA_FILE: "ca",
    };
    expect(load(both).AUTH).toBe("jwt,mtls");
  });

  it("default the clock skew, roles claim and reflection", () => {
    const config = load(jwt);
    expect(config.AUTH_CLOCK_SKEW_SECONDS).toBe(60);
    expect(config.AUTH_ROLES_CLAIM).toBe("roles");
    expect(config.RPC_REFLECTION).toBe("authenticated");
  });

  it("name what AUTH=jwt still needs", () => {
    expect(problems({ AUTH: "jwt" })).toEqual([
      "AUTH_JWKS_FILE: AUTH=jwt needs the keys that verify tokens: set AUTH_JWKS_FILE or AUTH_JWKS_URL",
      "AUTH_ISSUER: AUTH=jwt needs the issuer tokens must carry",
      "AUTH_AUDIENCE: AUTH=jwt needs the audience tokens must carry",
    ]);
    expect(problems({ ...jwt, AUTH_JWKS_URL: "https://issuer/jwks" })).toEqual([
      "AUTH_JWKS_URL: set AUTH_JWKS_FILE or AUTH_JWKS_URL, not both",
    ]);
    expect(problems({ ...jwt, AUTH_JWKS_FILE: "", AUTH_JWKS_URL: "ftp://x" })[0]).toMatch(
      /^AUTH_JWKS_URL: must be an https/,
    );
  });

  it("name what AUTH=mtls still needs, and certificates without keys", () => {
    expect(problems({ AUTH: "mtls" })).toEqual([
      "RPC_TLS_CERT_FILE: AUTH=mtls needs TLS with client certificates: set it",
      "RPC_TLS_KEY_FILE: AUTH=mtls needs TLS with client certificates: set it",
      "RPC_TLS_CLIENT_CA_FILE: AUTH=mtls needs TLS with client certificates: set it",
    ]);
    expect(problems({ AUTH: "off", OPS_TLS_CERT_FILE: "c" })).toEqual([
      "OPS_TLS_KEY_FILE: set OPS_TLS_CERT_FILE and OPS_TLS_KEY_FILE together",
    ]);
    expect(problems({ AUTH: "off", METRICS_LISTEN: "nowhere" })[0]).toMatch(
      /^METRICS_LISTEN: must be host:port/,
    );
  });
});
