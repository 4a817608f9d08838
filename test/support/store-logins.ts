import type { StackEndpoints, ValkeyRole } from "./endpoints.ts";

/** A Valkey connection as @ctx/read-model-valkey's createValkeyClient takes it. */
export interface ValkeyLogin {
  readonly url: string;
  readonly user?: string;
  readonly password?: string;
}

/** How a test's own client reaches the stack's Valkey: as `role` (admin unless said otherwise). */
export function valkeyLogin(s: StackEndpoints, role: ValkeyRole = "admin"): ValkeyLogin {
  const { user, password } = s.valkeyUsers[role];
  return password === "" ? { url: s.valkeyUrl } : { url: s.valkeyUrl, user, password };
}

/**
 * The environment of a service process reaching the stack's Valkey as `role`, with its password in
 * a file as in production.
 */
export function valkeyEnv(s: StackEndpoints, role: ValkeyRole): Record<string, string> {
  const { user, passwordFile } = s.valkeyUsers[role];
  return {
    VALKEY_URL: s.valkeyUrl,
    ...(passwordFile === "" ? {} : { VALKEY_USER: user, VALKEY_PASSWORD_FILE: passwordFile }),
  };
}

/** The environment of a service process reaching the stack's Neo4j. */
export function neo4jEnv(s: StackEndpoints): Record<string, string> {
  return {
    NEO4J_URL: s.neo4jUrl,
    NEO4J_USER: s.neo4jUser,
    ...(s.neo4jPasswordFile === ""
      ? { NEO4J_PASSWORD: s.neo4jPassword }
      : { NEO4J_PASSWORD_FILE: s.neo4jPasswordFile }),
  };
}

/** Both: a service process reaching the stack's read models, Valkey as `role`. */
export function storeEnv(s: StackEndpoints, role: ValkeyRole): Record<string, string> {
  return { ...valkeyEnv(s, role), ...neo4jEnv(s) };
}
