import type { TLSSocket } from "node:tls";
import { AuthFailure, AuthFailureReason } from "./auth-failure.ts";
import { createJwtVerifier, type JwtVerifierOptions } from "./jwt-verifier.ts";
import type { Principal } from "./principal.ts";

export interface AuthenticatorOptions {
  /** Bearer JWTs (the `authorization` header). */
  readonly jwt?: JwtVerifierOptions;
  /**
   * Client certificates verified by the TLS listener's client CA (RPC_TLS_CLIENT_CA_FILE): the
   * subject CN is the principal, the subject OU values its roles.
   */
  readonly mtls?: boolean;
}

/** What a call presents: its request headers and the TLS socket it came on (if any). */
export interface Credentials {
  readonly authorization: string | null;
  readonly socket: TLSSocket | undefined;
}

/** Turns a call's credentials into a principal. */
export interface Authenticator {
  /** @throws AuthFailure (UNAUTHENTICATED) saying what is wrong. */
  authenticate(credentials: Credentials): Promise<Principal> | Principal;
}

/**
 * The authenticator AUTH configures. With both JWT and mTLS a bearer token, when sent, decides
 * (a bad token fails even on a connection with a good certificate: the caller meant the token);
 * otherwise the connection's client certificate does.
 *
 * @throws Error when the JWKS file cannot be read (at start: fail fast).
 */
export async function createAuthenticator(options: AuthenticatorOptions): Promise<Authenticator> {
  const jwt = options.jwt ? await createJwtVerifier(options.jwt) : undefined;
  const mtls = options.mtls === true;
  const byCertificate = new WeakMap<TLSSocket, Principal>();
  return {
    authenticate({ authorization, socket }) {
      if (jwt && authorization !== null) return jwt.verify(bearerToken(authorization));
      if (mtls && socket !== undefined) {
        const known = byCertificate.get(socket);
        if (known) return known;
        const principal = certificatePrincipal(socket);
        if (principal) {
          byCertificate.set(socket, principal);
          return principal;
        }
      }
      throw new AuthFailure(
        AuthFailureReason.missing,
        jwt && mtls
          ? "no credentials: send authorization: Bearer <token>, or a client certificate"
          : jwt
            ? "no credentials: send authorization: Bearer <token>"
            : "no credentials: connect with a client certificate of the service's client CA",
      );
    },
  };
}

/** The JWT of an `authorization: Bearer <JWT>` header. */
function bearerToken(header: string): string {
  const match = /^Bearer +([A-Za-z0-9_.~+/=-]+)$/i.exec(header.trim());
  if (match?.[1] === undefined) {
    throw new AuthFailure(
      AuthFailureReason.malformed,
      "the authorization header is not of the form 'Bearer <token>'",
    );
  }
  return match[1];
}

/**
 * The principal of a TLS connection's client certificate: undefined without one.
 *
 * @throws AuthFailure when the certificate did not verify against the client CA.
 */
function certificatePrincipal(socket: TLSSocket): Principal | undefined {
  const cert = socket.getPeerCertificate?.();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  if (!socket.authorized) {
    throw new AuthFailure(
      AuthFailureReason.untrustedCertificate,
      `the client certificate is not trusted (${String(socket.authorizationError ?? "unverified")})`,
    );
  }
  const cn = first(cert.subject?.CN);
  if (!cn) {
    throw new AuthFailure(
      AuthFailureReason.invalidClaims,
      "the client certificate has no subject CN",
    );
  }
  const ou = cert.subject?.OU;
  const roles = new Set(Array.isArray(ou) ? ou : ou ? [ou] : []);
  return { id: `mtls:${cn}`, method: "mtls", roles };
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
