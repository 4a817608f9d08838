import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, exportPKCS8, generateKeyPair, importPKCS8, SignJWT } from "jose";
import type { View } from "../cli/output.ts";

/** The algorithm of the keys `ctx token keygen` makes: ECDSA P-256, small and fast to verify. */
const alg = "ES256";

/**
 * `ctx token keygen --dir D`: a signing key (D/signing-key.pem, 0600) and the key set that
 * verifies its tokens (D/jwks.json, for AUTH_JWKS_FILE). Keeps both when they exist, so tokens
 * minted earlier stay valid; `--rotate` adds a new key and keeps the old one in the set.
 */
export async function keygen(options: {
  dir: string;
  kid?: string;
  rotate?: boolean;
}): Promise<SigningKey> {
  const keyFile = join(options.dir, "signing-key.pem");
  const jwksFile = join(options.dir, "jwks.json");
  if (existsSync(keyFile) && existsSync(jwksFile) && !options.rotate) {
    return { kid: readKid(keyFile) ?? null, keyFile, jwksFile, kept: true };
  }
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const kid = options.kid ?? `ctx-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, "")}`;
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  const previous =
    options.rotate && existsSync(jwksFile)
      ? (JSON.parse(readFileSync(jwksFile, "utf8")) as { keys: unknown[] }).keys
      : [];
  writeFileSync(keyFile, `${await exportPKCS8(privateKey)}`, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(kidFileOf(keyFile), `${kid}\n`, { mode: 0o600 });
  writeFileSync(jwksFile, `${JSON.stringify({ keys: [jwk, ...previous] }, null, 2)}\n`, {
    mode: 0o600,
  });
  return { kid, keyFile, jwksFile, kept: false };
}

/** Where keygen keeps a key's id: beside the key, as `<key>.kid`. */
function kidFileOf(keyFile: string): string {
  return keyFile.replace(/\.pem$/, ".kid");
}

/** The id keygen wrote beside a key, if it did. */
function readKid(keyFile: string): string | undefined {
  const kidFile = kidFileOf(keyFile);
  return existsSync(kidFile) ? readFileSync(kidFile, "utf8").trim() : undefined;
}

/** The key `ctx token keygen` made, or kept. */
export interface SigningKey {
  /** null: a kept key without a .kid file beside it. */
  readonly kid: string | null;
  readonly keyFile: string;
  readonly jwksFile: string;
  /** Both files existed and stay as they were (no --rotate). */
  readonly kept: boolean;
}

export const signingKeyView: View<SigningKey> = {
  text: ({ kid, keyFile, jwksFile, kept }) => [
    kept
      ? `${keyFile} and ${jwksFile} exist; kept (--rotate makes a new key)`
      : `signing key ${kid}: ${keyFile}; key set: ${jwksFile}`,
  ],
};

export interface MintOptions {
  key: string;
  kid?: string;
  issuer: string;
  audience: string;
  subject: string;
  roles: string;
  /** The lifetime in seconds (commander parses --ttl with durationOption). */
  ttl: number;
}

/** A token of `ctx token mint`, with what it says. */
export interface MintedToken {
  readonly token: string;
  readonly kid: string | null;
  readonly subject: string;
  readonly roles: readonly string[];
  readonly expiresAt: string;
}

/** The token alone on its line, for `$(...)` and files. */
export const mintedTokenView: View<MintedToken> = { text: ({ token }) => [token] };

/**
 * `ctx token mint`: a bearer token signed with a key `ctx token keygen` made, for the services'
 * AUTH=jwt.
 */
export async function mint(options: MintOptions): Promise<MintedToken> {
  const key = await importPKCS8(readFileSync(options.key, "utf8"), alg);
  const kid = options.kid ?? readKid(options.key);
  const roles = options.roles.split(/[ ,]+/).filter((r) => r !== "");
  const expires = Math.floor(Date.now() / 1000) + options.ttl;
  const token = await new SignJWT({ roles })
    .setProtectedHeader({ alg, typ: "JWT", ...(kid ? { kid } : {}) })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setSubject(options.subject)
    .setIssuedAt()
    .setExpirationTime(expires)
    .sign(key);
  return {
    token,
    kid: kid ?? null,
    subject: options.subject,
    roles,
    expiresAt: new Date(expires * 1000).toISOString(),
  };
}
