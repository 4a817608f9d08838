import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, exportPKCS8, generateKeyPair, importPKCS8, SignJWT } from "jose";

/** The algorithm of the keys `ctx token keygen` makes: ECDSA P-256, small and fast to verify. */
const alg = "ES256";

/**
 * `ctx token keygen --dir D`: a signing key (D/signing-key.pem, 0600) and the key set that
 * verifies its tokens (D/jwks.json, for AUTH_JWKS_FILE). Keeps both when they exist, so tokens
 * minted earlier stay valid; `--rotate` adds a new key and keeps the old one in the set.
 */
export async function keygen(
  options: { dir: string; kid?: string; rotate?: boolean },
  print: (line: string) => void,
): Promise<void> {
  const keyFile = join(options.dir, "signing-key.pem");
  const jwksFile = join(options.dir, "jwks.json");
  if (existsSync(keyFile) && existsSync(jwksFile) && !options.rotate) {
    print(`${keyFile} and ${jwksFile} exist; kept (--rotate makes a new key)`);
    return;
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
  writeFileSync(keyFile.replace(/\.pem$/, ".kid"), `${kid}\n`, { mode: 0o600 });
  writeFileSync(jwksFile, `${JSON.stringify({ keys: [jwk, ...previous] }, null, 2)}\n`, {
    mode: 0o600,
  });
  print(`signing key ${kid}: ${keyFile}; key set: ${jwksFile}`);
}

/** A duration like 90s, 30m, 12h or 7d, in seconds. */
function seconds(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text);
  if (!match) throw new Error(`--ttl must be like 30m, 12h or 7d, not ${JSON.stringify(text)}`);
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}

export interface MintOptions {
  key: string;
  kid?: string;
  issuer: string;
  audience: string;
  subject: string;
  roles: string;
  ttl: string;
}

/**
 * `ctx token mint`: a bearer token signed with a key `ctx token keygen` made, for the services'
 * AUTH=jwt. Prints the token alone (for `$(...)` and files).
 */
export async function mint(options: MintOptions, print: (line: string) => void): Promise<void> {
  const key = await importPKCS8(readFileSync(options.key, "utf8"), alg);
  const kidFile = options.key.replace(/\.pem$/, ".kid");
  const kid =
    options.kid ?? (existsSync(kidFile) ? readFileSync(kidFile, "utf8").trim() : undefined);
  const roles = options.roles.split(/[ ,]+/).filter((r) => r !== "");
  const token = await new SignJWT({ roles })
    .setProtectedHeader({ alg, typ: "JWT", ...(kid ? { kid } : {}) })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setSubject(options.subject)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + seconds(options.ttl))
    .sign(key);
  print(token);
}
