import { createPrivateKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A signing key of the test issuer: an ES256 (P-256) key pair and its key id. */
export interface TestKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  /** The public key as a JWK (with kid, alg, use), as a JWKS lists it. */
  readonly jwk: Readonly<Record<string, unknown>>;
}

export interface SignOptions {
  /** Default: the test issuer's current key. */
  readonly key?: TestKey;
  /** The kid in the header (default: the key's). */
  readonly kid?: string;
}

/**
 * A token issuer for tests: a key set in a JWKS file, the variables that make a gRPC service
 * verify tokens against it (AUTH=jwt), and tokens. Synchronous, so harnesses can attach a token to
 * the clients they build without awaiting anything.
 */
export interface TestAuth {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksFile: string;
  /** AUTH, AUTH_JWKS_FILE, AUTH_ISSUER, AUTH_AUDIENCE for the services' configuration. */
  readonly env: Readonly<Record<string, string>>;
  /** A token of subject "test" with the roles writer, reader and admin, valid for a day. */
  readonly token: string;
  /** `Bearer <token>`: the value of the authorization header. */
  readonly authorization: string;
  /** The principal the services record for `token`. */
  readonly principal: string;
  /** The key that signs by default (listed in the JWKS file). */
  readonly key: TestKey;
  /** A fresh key pair (not in the JWKS until written there). */
  newKey(kid?: string): TestKey;
  /** Rewrites the JWKS file with these keys (atomically: a service never reads half a file). */
  writeJwks(keys: readonly TestKey[]): void;
  /**
   * A token with these claims over the defaults (iss, aud, sub "test", iat, exp in an hour,
   * roles writer reader admin); a claim set to undefined is left out.
   */
  sign(claims?: Readonly<Record<string, unknown>>, options?: SignOptions): string;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/** A JWT signed with ES256 by Node's crypto (no library: jose is what the services verify with). */
export function signJwt(
  claims: Readonly<Record<string, unknown>>,
  privateKey: KeyObject,
  kid: string,
): string {
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid }));
  const payload = b64url(JSON.stringify(claims));
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), {
    key: privateKey,
    dsaEncoding: "ieee-p1363",
  });
  return `${header}.${payload}.${b64url(signature)}`;
}

function makeKey(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg: "ES256", use: "sig" };
  return {
    kid,
    privateKey: createPrivateKey(privateKey.export({ format: "pem", type: "pkcs8" })),
    jwk,
  };
}

let keys = 0;

/** A new issuer with a key set of its own in a temporary folder. */
export function createTestAuth(
  options: { issuer?: string; audience?: string; dir?: string } = {},
): TestAuth {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "ctx-auth-"));
  const issuer = options.issuer ?? "https://issuer.test";
  const audience = options.audience ?? "context-service";
  const jwksFile = join(dir, "jwks.json");
  const writeJwks = (list: readonly TestKey[]) => {
    const tmp = `${jwksFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ keys: list.map((k) => k.jwk) }), { mode: 0o600 });
    renameSync(tmp, jwksFile);
  };
  const newKey = (kid = `test-${process.pid}-${++keys}`) => makeKey(kid);
  const key = newKey();
  writeJwks([key]);
  const signWith = (claims: Readonly<Record<string, unknown>> = {}, opts: SignOptions = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const all: Record<string, unknown> = {
      iss: issuer,
      aud: audience,
      sub: "test",
      iat: now,
      exp: now + 3600,
      roles: ["writer", "reader", "admin"],
      ...claims,
    };
    for (const [name, value] of Object.entries(all)) if (value === undefined) delete all[name];
    const signer = opts.key ?? key;
    return signJwt(all, signer.privateKey, opts.kid ?? signer.kid);
  };
  const token = signWith({ exp: Math.floor(Date.now() / 1000) + 86_400 });
  return {
    issuer,
    audience,
    jwksFile,
    env: { AUTH: "jwt", AUTH_JWKS_FILE: jwksFile, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience },
    token,
    authorization: `Bearer ${token}`,
    principal: "jwt:test",
    key,
    newKey,
    writeJwks,
    sign: signWith,
  };
}

let shared: TestAuth | undefined;

/** The issuer every harness of this test process shares (made on first use). */
export function testAuth(): TestAuth {
  shared ??= createTestAuth();
  return shared;
}

/**
 * A Connect client interceptor (`interceptors: [sendTestToken]` of a transport) that sends the
 * shared test issuer's token (all roles) on every call that sets no authorization of its own.
 */
export const sendTestToken = <Req extends { readonly header: Headers }, Res>(
  next: (req: Req) => Res,
): ((req: Req) => Res) => {
  return (req) => {
    if (!req.header.has("authorization")) req.header.set("authorization", testAuth().authorization);
    return next(req);
  };
};
