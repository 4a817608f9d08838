import { Code, ConnectError } from "@connectrpc/connect";

/** Why a call was refused by authentication or authorization (the `reason` label of ctx_rpc_auth_refused_total). */
export const AuthFailureReason = {
  /** No credentials: no bearer token and no verified client certificate. */
  missing: "missing",
  /** An authorization header that is no `Bearer <JWT>`, or a token that is no JWT. */
  malformed: "malformed",
  expired: "expired",
  /** nbf lies ahead, beyond the tolerated clock skew. */
  notYetValid: "not_yet_valid",
  /** Signed by none of the keys of the key set (a key of the same id that does not verify). */
  badSignature: "bad_signature",
  /** A key id the key set does not hold. */
  unknownKey: "unknown_key",
  wrongIssuer: "wrong_issuer",
  wrongAudience: "wrong_audience",
  /** A required claim missing or of the wrong type (sub, exp). */
  invalidClaims: "invalid_claims",
  /** Signed with an algorithm outside the allow-list (none, HS*). */
  algorithmNotAllowed: "algorithm_not_allowed",
  /** A client certificate the server's client CA did not sign, or expired. */
  untrustedCertificate: "untrusted_certificate",
  /** The JWKS URL did not answer: UNAVAILABLE (the caller may retry), counted apart. */
  keysUnavailable: "keys_unavailable",
  /** A valid identity without a role the method needs: PERMISSION_DENIED. */
  noRole: "no_role",
} as const;
export type AuthFailureReason = (typeof AuthFailureReason)[keyof typeof AuthFailureReason];

/** A call refused for its credentials; becomes UNAUTHENTICATED or PERMISSION_DENIED at the edge. */
export class AuthFailure extends Error {
  override readonly name = "AuthFailure";
  readonly reason: AuthFailureReason;

  constructor(reason: AuthFailureReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

export function isAuthFailure(e: unknown): e is AuthFailure {
  return e instanceof AuthFailure;
}

/**
 * The status a refused call gets: UNAUTHENTICATED with a `www-authenticate` hint (RFC 6750), or
 * PERMISSION_DENIED. The message says why; it never echoes the token.
 */
export function authFailureToConnectError(failure: AuthFailure): ConnectError {
  if (failure.reason === AuthFailureReason.noRole) {
    return new ConnectError(failure.message, Code.PermissionDenied);
  }
  if (failure.reason === AuthFailureReason.keysUnavailable) {
    return new ConnectError(failure.message, Code.Unavailable);
  }
  const error = new ConnectError(failure.message, Code.Unauthenticated);
  const description = failure.message.replace(/["\\]/g, "'");
  error.metadata.set(
    "www-authenticate",
    failure.reason === AuthFailureReason.missing
      ? 'Bearer realm="context-service"'
      : `Bearer realm="context-service", error="invalid_token", error_description="${description}"`,
  );
  return error;
}
