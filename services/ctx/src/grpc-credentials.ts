import { readFileSync } from "node:fs";
import type { Interceptor } from "@connectrpc/connect";

/**
 * The bearer token ctx sends to the gRPC services: CTX_TOKEN, or the file CTX_TOKEN_FILE names
 * (bin/ctx points it at the local stack's development token when there is one). None: calls go
 * without, which a service with AUTH=off serves.
 */
export function ctxToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CTX_TOKEN) return env.CTX_TOKEN.trim();
  if (env.CTX_TOKEN_FILE) {
    try {
      return readFileSync(env.CTX_TOKEN_FILE, "utf8").trim();
    } catch (e) {
      throw new Error(`cannot read CTX_TOKEN_FILE ${env.CTX_TOKEN_FILE}: ${(e as Error).message}`);
    }
  }
  return undefined;
}

/** Transport interceptors that send ctx's token, if it has one. */
export function ctxCredentials(token = ctxToken()): Interceptor[] {
  if (token === undefined) return [];
  return [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    },
  ];
}
