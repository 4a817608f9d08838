import { readFile, stat } from "node:fs/promises";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { LRUCache } from "lru-cache";
import { AuthFailure, AuthFailureReason } from "./auth-failure.ts";
import type { Principal } from "./principal.ts";

/**
 * Asymmetric algorithms only: `none` can never verify, and an HMAC algorithm with a public key set
 * would let anyone who can read the key set sign tokens.
 */
export const defaultJwtAlgorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

export interface JwtVerifierOptions {
  /** A JWKS file, re-read when its size or modification time changes (checked at most once a second). */
  readonly jwksFile?: string;
  /** A JWKS URL (jose's remote key set: cached, refetched for an unknown key id after a cooldown). */
  readonly jwksUrl?: string;
  readonly issuer: string;
  readonly audience: string;
  /** Tolerated clock difference on exp and nbf. Default 60. */
  readonly clockSkewSeconds?: number;
  /** The claim listing the roles (an array or a space-separated string). Default `roles`. */
  readonly rolesClaim?: string;
  readonly algorithms?: readonly string[];
  /** Verified tokens remembered (until their exp at the latest). Default 10,000. */
  readonly cacheEntries?: number;
}

/** Verifies bearer tokens into principals. */
export interface JwtVerifier {
  /** @throws AuthFailure saying why the token is refused. */
  verify(token: string): Promise<Principal>;
}

/** A verified token, its principal, and its exp (ms). */
interface Verified {
  readonly token: string;
  readonly principal: Principal;
  readonly until: number;
}

/** Tokens compared by content before the cache (see createJwtVerifier). */
const RECENT_TOKENS = 4;

/** How often a JWKS file is looked at for changes (ms). */
const fileCheckMs = 1_000;

/**
 * A verifier of JWTs against a key set, with a cache of verified tokens: a client that sends the
 * same token on every call costs one signature check, not one per call (the query service takes
 * thousands of calls a second). A cached token is forgotten at its exp, and all are when the key
 * set changes, so a removed key stops its tokens within a second.
 *
 * @throws Error when the JWKS file cannot be read or is no key set (at start: fail fast).
 */
export async function createJwtVerifier(options: JwtVerifierOptions): Promise<JwtVerifier> {
  // Each entry keeps its token's exp, checked on every hit: lru-cache's own TTLs would do the
  // same, but they read the clock through a timer that they arm again every millisecond, which
  // cost a timer per call under load (about 1 µs of the command service's 110 µs).
  const cache = new LRUCache<string, Verified>({
    max: options.cacheEntries ?? 10_000,
    // Tokens are as long as their sender makes them (up to the header limit): bound the bytes too.
    maxSize: 16 * 1024 * 1024,
    sizeCalculation: (_, token) => token.length + 256,
  });
  // The last few tokens served, compared by content before the cache is asked. Each call brings
  // its token as a new string, which a Map lookup hashes whole (a JWT is often 700 characters:
  // about 1 µs per call); most connections send the same token on every call, and comparing two
  // strings stops at the first difference.
  const recent: Verified[] = [];
  let nextRecent = 0;
  const remember = (entry: Verified) => {
    recent[nextRecent] = entry;
    nextRecent = (nextRecent + 1) % RECENT_TOKENS;
  };
  const forget = () => {
    cache.clear();
    recent.length = 0;
    nextRecent = 0;
  };
  let getKey: () => Promise<JWTVerifyGetKey>;
  if (options.jwksFile !== undefined) {
    const file = await watchedKeySet(options.jwksFile, forget);
    getKey = file;
  } else if (options.jwksUrl !== undefined) {
    const remote = createRemoteJWKSet(new URL(options.jwksUrl), {
      cooldownDuration: 30_000,
      cacheMaxAge: 600_000,
      timeoutDuration: 5_000,
    });
    getKey = async () => remote;
  } else {
    throw new Error("a JWT verifier needs jwksFile or jwksUrl");
  }
  const rolesClaim = options.rolesClaim ?? "roles";
  const verifyOptions = {
    issuer: options.issuer,
    audience: options.audience,
    algorithms: [...(options.algorithms ?? defaultJwtAlgorithms)],
    clockTolerance: options.clockSkewSeconds ?? 60,
    requiredClaims: ["sub", "exp"],
  };
  return {
    async verify(token) {
      const now = Date.now();
      for (const entry of recent) {
        if (entry.token === token && entry.until > now) return entry.principal;
      }
      const cached = cache.get(token);
      if (cached !== undefined) {
        if (cached.until > now) {
          remember(cached);
          return cached.principal;
        }
        cache.delete(token);
      }
      let payload: JWTPayload;
      try {
        payload = (await jwtVerify(token, await getKey(), verifyOptions)).payload;
      } catch (e) {
        throw toAuthFailure(e);
      }
      if (typeof payload.sub !== "string" || payload.sub === "") {
        throw new AuthFailure(AuthFailureReason.invalidClaims, "the token has no subject (sub)");
      }
      const principal: Principal = {
        id: `jwt:${payload.sub}`,
        method: "jwt",
        roles: rolesOf(payload, rolesClaim),
      };
      const until = (payload.exp ?? 0) * 1000;
      if (until > Date.now()) {
        const entry = { token, principal, until };
        cache.set(token, entry);
        remember(entry);
      }
      return principal;
    },
  };
}

/** Roles from the roles claim (an array of strings or one space-separated string) and `scope`. */
function rolesOf(payload: JWTPayload, claim: string): ReadonlySet<string> {
  const roles = new Set<string>();
  const add = (value: unknown) => {
    if (typeof value === "string") {
      for (const r of value.split(" ")) if (r) roles.add(r);
    } else if (Array.isArray(value)) {
      for (const r of value) if (typeof r === "string") roles.add(r);
    }
  };
  add(payload[claim]);
  add(payload.scope);
  return roles;
}

/** jose's errors in our words (and reasons); nothing of the token is echoed. */
function toAuthFailure(e: unknown): AuthFailure {
  const fail = (reason: AuthFailureReason, message: string) =>
    new AuthFailure(reason, message, { cause: e });
  if (e instanceof errors.JWTExpired)
    return fail(AuthFailureReason.expired, "the token has expired");
  if (e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case "nbf":
        return fail(AuthFailureReason.notYetValid, "the token is not valid yet (nbf)");
      case "iss":
        return fail(
          AuthFailureReason.wrongIssuer,
          "the token's issuer (iss) is not the expected one",
        );
      case "aud":
        return fail(
          AuthFailureReason.wrongAudience,
          "the token's audience (aud) is not this service",
        );
      default:
        return fail(
          AuthFailureReason.invalidClaims,
          `the token's claim ${e.claim} is invalid: ${e.reason}`,
        );
    }
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return fail(AuthFailureReason.badSignature, "the token's signature does not verify");
  }
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
    return fail(
      AuthFailureReason.unknownKey,
      "the token's signing key (kid) is not one this service trusts",
    );
  }
  if (e instanceof errors.JOSEAlgNotAllowed || e instanceof errors.JOSENotSupported) {
    return fail(
      AuthFailureReason.algorithmNotAllowed,
      "the token's signing algorithm (alg) is not allowed",
    );
  }
  if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid) {
    // The key set could not be had: not the caller's fault, and worth a retry.
    return fail(AuthFailureReason.keysUnavailable, "the keys that verify tokens are unavailable");
  }
  return fail(AuthFailureReason.malformed, "the bearer token is no valid JWT");
}

/**
 * A local key set read from a file, re-read when the file changes: keys rotate by rewriting the
 * file (a Kubernetes Secret volume, the local stack's secrets folder), without a restart. A file
 * that became unreadable or invalid leaves the last good keys in place.
 */
async function watchedKeySet(
  path: string,
  onChange: () => void,
): Promise<() => Promise<JWTVerifyGetKey>> {
  const load = async () => {
    const text = await readFile(path, "utf8");
    const jwks = JSON.parse(text) as JSONWebKeySet;
    if (!Array.isArray(jwks?.keys)) throw new Error(`${path} is no JSON Web Key Set (no "keys")`);
    return createLocalJWKSet(jwks);
  };
  const signature = async () => {
    const s = await stat(path);
    return `${s.size}:${s.mtimeMs}:${s.ino}`;
  };
  let seen = await signature();
  let keys = await load();
  let checkedAt = Date.now();
  let checking: Promise<void> | undefined;
  const check = async () => {
    try {
      const now = await signature();
      if (now === seen) return;
      keys = await load();
      seen = now;
      onChange();
    } catch {
      // Mid-rewrite or gone: keep the last good keys, look again at the next check.
    }
  };
  return async () => {
    if (Date.now() - checkedAt >= fileCheckMs) {
      checkedAt = Date.now();
      checking ??= check().finally(() => {
        checking = undefined;
      });
      await checking;
    }
    return keys;
  };
}
