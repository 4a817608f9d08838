import type { TLSSocket } from "node:tls";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, type Registry } from "prom-client";
import { type AccessPolicy, allows } from "./access-policy.ts";
import {
  AuthFailure,
  AuthFailureReason,
  authFailureToConnectError,
  isAuthFailure,
} from "./auth-failure.ts";
import type { Authenticator } from "./authenticator.ts";
import { callSocketOf } from "./call-connection.ts";
import { type Principal, principalKey } from "./principal.ts";

export interface AuthInterceptorOptions {
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  readonly registry: Registry;
}

/**
 * Authenticates every call (but open ones, like health) and checks its role against the policy,
 * before anything else costs: UNAUTHENTICATED for missing or bad credentials, PERMISSION_DENIED
 * for a valid identity without the role. Refusals are counted by reason in
 * `ctx_rpc_auth_refused_total`. The principal is then available to handlers (principalOf).
 */
export function authInterceptor(options: AuthInterceptorOptions): Interceptor {
  const { authenticator, policy } = options;
  const refused = new Counter({
    name: "ctx_rpc_auth_refused_total",
    help: "Calls refused by authentication (UNAUTHENTICATED) or authorization (PERMISSION_DENIED), by reason",
    labelNames: ["reason"],
    registers: [options.registry],
  });
  const refusedBy = new Map(
    Object.values(AuthFailureReason).map((r) => [r, refused.labels(r)] as const),
  );
  const refuse = (failure: AuthFailure): never => {
    refusedBy.get(failure.reason)?.inc();
    throw authFailureToConnectError(failure);
  };
  return (next) => async (req) => {
    const access = policy.accessOf(req.method);
    if (access.kind === "open") return next(req);
    const socket = callSocketOf(req.contextValues);
    let principal: Principal;
    try {
      principal = await authenticator.authenticate({
        authorization: req.header.get("authorization"),
        socket: socket !== undefined && "encrypted" in socket ? (socket as TLSSocket) : undefined,
      });
    } catch (e) {
      if (isAuthFailure(e)) return refuse(e);
      throw new ConnectError("authentication failed", Code.Internal, undefined, undefined, e);
    }
    if (!allows(access, principal.roles)) {
      const needed = access.kind === "roles" ? [...access.roles].join(" or ") : "";
      return refuse(
        new AuthFailure(
          AuthFailureReason.noRole,
          `${principal.id} may not call ${req.method.parent.typeName}/${req.method.name}: it needs the role ${needed}`,
        ),
      );
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
