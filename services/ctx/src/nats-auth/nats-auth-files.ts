import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nkeys } from "@nats-io/nats-core";
import {
  inboxPrefixOf,
  type NatsAuthNames,
  type NatsRole,
  natsAuthConfig,
  natsRoles,
} from "./nats-auth-config.ts";

export interface NatsAuthFiles {
  /** The server's configuration fragment (public keys only). */
  readonly configFile: string;
  /** Per role: its seed file and the variables a process of that role connects with. */
  readonly roles: Readonly<
    Record<NatsRole, { readonly seedFile: string; readonly envFile: string }>
  >;
}

/**
 * Writes the server's auth fragment to `configFile` and, for each role without one yet, an NKey seed
 * `<secretsDir>/<role>.nk` (0600) beside `<role>.env` (NATS_NKEY_SEED_FILE, NATS_INBOX_PREFIX).
 * Existing seeds are kept, so regenerating after a name change does not log every process out.
 */
export function writeNatsAuthFiles(
  names: NatsAuthNames,
  configFile: string,
  secretsDir: string,
): NatsAuthFiles {
  mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  const publicKeys = {} as Record<NatsRole, string>;
  const roles = {} as Record<NatsRole, { seedFile: string; envFile: string }>;
  for (const role of natsRoles) {
    const seedFile = join(secretsDir, `${role}.nk`);
    const envFile = join(secretsDir, `${role}.env`);
    if (!existsSync(seedFile)) {
      const user = nkeys.createUser();
      writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600 });
    }
    chmodSync(seedFile, 0o600);
    const seed = new TextEncoder().encode(readFileSync(seedFile, "utf8").trim());
    publicKeys[role] = nkeys.fromSeed(seed).getPublicKey();
    writeFileSync(
      envFile,
      `NATS_NKEY_SEED_FILE=${seedFile}\nNATS_INBOX_PREFIX=${inboxPrefixOf(role)}\n`,
      { mode: 0o600 },
    );
    roles[role] = { seedFile, envFile };
  }
  writeFileSync(configFile, natsAuthConfig(names, publicKeys));
  return { configFile, roles };
}
