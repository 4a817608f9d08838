import { createHash, createHmac, hash as digest, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { ConfigError } from "@ctx/config";

/**
 * A secret key with its id (HMAC-SHA256): the checkpoint signer's and, when the command service
 * signs events, its key. The id is recorded with what the key signs, so keys can rotate.
 */
export interface SigningKey {
  readonly id: string;
  readonly secret: Uint8Array;
}

/** The NATS header that carries an event's signature: `<key id>:<base64url HMAC-SHA256>`. */
export const SIGNATURE_HEADER = "Ctx-Signature";

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MIN_SECRET = 32;

/** The problem with a key file, for the configuration error that names it. */
export class KeyFileError extends Error {
  override name = "KeyFileError";
}

/**
 * A key from a file: its name is the key id, its content (at least 32 characters, surrounding
 * whitespace ignored) the secret, as `ctx audit keygen` writes them.
 * @throws KeyFileError
 */
export function loadKeyFile(file: string): SigningKey {
  const id = basename(file);
  if (!KEY_ID.test(id) || id.startsWith(".")) {
    throw new KeyFileError(`${file}: a key file's name is its id: 1-64 letters, digits, . _ or -`);
  }
  if (!existsSync(file) || !statSync(file).isFile()) throw new KeyFileError(`${file} is no file`);
  const secret = readFileSync(file, "utf8").trim();
  if (secret.length < MIN_SECRET) {
    throw new KeyFileError(`the key ${id} is shorter than ${MIN_SECRET} characters`);
  }
  return { id, secret: new TextEncoder().encode(secret) };
}

/**
 * Every key of a folder (a file per key, see loadKeyFile), by id: what verifiers hold, the old keys
 * beside the current one. @throws KeyFileError for a folder without keys or a bad key.
 */
export function loadKeyFolder(dir: string): Map<string, Uint8Array> {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new KeyFileError(`${dir} is not a folder`);
  const keys = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir).sort()) {
    const file = join(dir, name);
    if (name.startsWith(".") || !statSync(file).isFile()) continue;
    const key = loadKeyFile(file);
    keys.set(key.id, key.secret);
  }
  if (keys.size === 0) throw new KeyFileError(`${dir} holds no key (ctx audit keygen makes one)`);
  return keys;
}

const hmac = (secret: Uint8Array, hash: Uint8Array) =>
  createHmac("sha256", secret).update(hash).digest();

const BLOCK = 64;

/**
 * Signs event hashes with `key`: each call gives the signature header value of one hash, the
 * HMAC-SHA256 of it (RFC 2104). Node's createHmac costs about 14 µs a call (a key object and a
 * context each time), a tenth of what an append costs the command service; here the key's inner
 * and outer pads are made once, and each signature is two one-shot SHA-256 over one scratch buffer
 * (about 1.5 µs). checkEventSignature verifies with createHmac, and a unit spec holds the two equal.
 */
export function eventSigner(key: SigningKey): (hash: Uint8Array) => string {
  const k =
    key.secret.length > BLOCK ? createHash("sha256").update(key.secret).digest() : key.secret;
  const ipad = new Uint8Array(BLOCK).fill(0x36);
  const opad = new Uint8Array(BLOCK).fill(0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i] = (ipad[i] as number) ^ (k[i] as number);
    opad[i] = (opad[i] as number) ^ (k[i] as number);
  }
  const prefix = `${key.id}:`;
  let scratch = new Uint8Array(BLOCK + 64);
  return (message) => {
    if (scratch.length < BLOCK + Math.max(32, message.length)) {
      scratch = new Uint8Array(BLOCK + Math.max(32, message.length));
    }
    scratch.set(ipad, 0);
    scratch.set(message, BLOCK);
    const inner = digest("sha256", scratch.subarray(0, BLOCK + message.length), "binary");
    scratch.set(opad, 0);
    for (let i = 0; i < 32; i++) scratch[BLOCK + i] = inner.charCodeAt(i);
    return prefix + digest("sha256", scratch.subarray(0, BLOCK + 32), "base64url");
  };
}

/** An event's signature header value: the HMAC-SHA256 of its hash with `key` (createHmac). */
export function eventSignature(key: SigningKey, hash: Uint8Array): string {
  return `${key.id}:${hmac(key.secret, hash).toString("base64url")}`;
}

/**
 * Whether a signature header value is one of `keys`' over `hash`: `valid`, `invalid` (not the key's
 * HMAC of this hash, or not a signature at all) or `unknown-key`.
 */
export function checkEventSignature(
  signature: string,
  hash: Uint8Array,
  keys: ReadonlyMap<string, Uint8Array>,
): { readonly verdict: "valid" | "invalid" | "unknown-key"; readonly keyId: string } {
  const colon = signature.indexOf(":");
  const keyId = colon < 0 ? "" : signature.slice(0, colon);
  const secret = keys.get(keyId);
  if (secret === undefined) return { verdict: colon < 0 ? "invalid" : "unknown-key", keyId };
  const given = Buffer.from(signature.slice(colon + 1), "base64url");
  const expected = hmac(secret, hash);
  return {
    verdict:
      given.length === expected.length && timingSafeEqual(given, expected) ? "valid" : "invalid",
    keyId,
  };
}

/**
 * The signing key a configuration variable names (a key file), if it names one.
 * @throws ConfigError naming `variable` when the file is no usable key.
 */
export function signingKeyFromConfig(
  file: string | undefined,
  variable: string,
): SigningKey | undefined {
  if (file === undefined) return undefined;
  try {
    return loadKeyFile(file);
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    throw new ConfigError([{ variable, message: e.message }]);
  }
}
