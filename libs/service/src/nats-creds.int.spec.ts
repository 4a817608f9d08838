import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { eventually, freePort } from "@ctx/test-support";
import { nkeys } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, natsConnectionOf } from "./nats-connection.ts";

// NATS_CREDS against a real server in operator (JWT) mode: the decentralised set-up a NATS operator
// manages with nsc. The JWTs are made here (operator → account → user), signed with NKeys.

const repoRoot = resolve(import.meta.dirname, "../../..");
const version = /NATS_SERVER_VERSION=(\S+)/.exec(
  readFileSync(join(repoRoot, "versions.env"), "utf8"),
)?.[1];
const cacheDir =
  process.env.CACHE_DIR ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "context-service");
const natsServer = join(cacheDir, `nats-server-${version}`, "bin/nats-server");

const b64 = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

/** RFC 4648 base32 without padding, as NATS writes a JWT's id. */
function base32(data: Uint8Array): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** A NATS JWT: `nats` claims about `subject`, issued and signed by `issuer`. */
function jwt(issuer: nkeys.KeyPair, subject: string, name: string, nats: object): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  claims.jti = base32(createHash("sha256").update(JSON.stringify(claims)).digest());
  const signed = `${b64(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }))}.${b64(JSON.stringify(claims))}`;
  return `${signed}.${b64(issuer.sign(new TextEncoder().encode(signed)))}`;
}

let dir: string;
let server: ChildProcess | undefined;
let url: string;
let credsFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ctx-nats-creds-"));
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const operatorJwt = jwt(operator, operator.getPublicKey(), "ctx-operator", { type: "operator" });
  const accountJwt = jwt(operator, account.getPublicKey(), "CONTEXT", {
    type: "account",
    limits: {
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      conn: -1,
    },
  });
  const userJwt = jwt(account, user.getPublicKey(), "command", {
    type: "user",
    // The responder answers on the requester's inbox.
    pub: { allow: ["creds.>", "_INBOX.>"] },
    sub: { allow: ["creds.>", "_INBOX.>"] },
    subs: -1,
    data: -1,
    payload: -1,
  });
  credsFile = join(dir, "command.creds");
  writeFileSync(
    credsFile,
    `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`,
    { mode: 0o600 },
  );
  const config = join(dir, "server.conf");
  writeFileSync(
    config,
    `operator: "${operatorJwt}"\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: "${accountJwt}"\n}\n`,
  );
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  server = spawn(natsServer, ["-c", config, "-a", "127.0.0.1", "-p", String(port)], {
    stdio: "ignore",
  });
  // Up when it answers, even if only to refuse an anonymous client.
  await eventually(async () => {
    const outcome = await connect({ servers: url, timeout: 1_000 }).then(
      async (nc) => {
        await nc.close();
        return "connected";
      },
      (e: unknown) => String(e),
    );
    expect(outcome).toMatch(/authorization/i);
  });
});

afterAll(async () => {
  if (server?.pid !== undefined && server.exitCode === null) {
    const exited = new Promise((done) => server?.once("exit", done));
    server.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("NATS_CREDS against a server in operator mode", () => {
  it("logs in with the user JWT and seed, and the JWT's permissions apply", async () => {
    const nc = await connectNats(natsConnectionOf({ NATS_URL: url, NATS_CREDS: credsFile }), {
      timeout: 5_000,
    });
    try {
      const sub = nc.subscribe("creds.echo", {
        callback: (_, m) => {
          m.respond(m.data);
        },
      });
      const reply = await nc.request("creds.echo", "hello", { timeout: 5_000 });
      expect(reply.string()).toBe("hello");
      sub.unsubscribe();
      const refused = await nc.request("other.echo", "x", { timeout: 5_000 }).then(
        () => "allowed",
        (e: unknown) => String(e),
      );
      expect(refused).toMatch(/permissions violation/i);
    } finally {
      await nc.close();
    }
  });
});
