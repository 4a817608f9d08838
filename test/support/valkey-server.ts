import { rmSync } from "node:fs";
import { join } from "node:path";
import type { StoreLogin, ValkeyRole } from "./endpoints.ts";
import { freePort, ownedStackDir, runLocalScript, valkeyUsers } from "./local-stack.ts";

/** A Valkey server of one test file alone, as deploy/local/valkey.sh runs it (ACL users, TLS). */
export interface ValkeyServer {
  /** rediss:// with TLS, redis:// without. */
  readonly url: string;
  /** The CA of the server's certificate (TLS only; its folder holds the CA key for client certificates). */
  readonly caFile: string;
  readonly users: Readonly<Record<ValkeyRole, StoreLogin>>;
  /** Stops it (SIGTERM, as an orchestrator does) and starts it again on its data. */
  restart(): Promise<void>;
  /** Stops it and deletes its data and secrets. */
  remove(): Promise<void>;
}

/**
 * Starts a dedicated Valkey from deploy/local/valkey.sh on a free port, in its own folder under
 * `.stack/test/` owned by this process (reaped by the next run if the process dies), with the
 * read model's keys under `keyPattern` (default `ctx:*`, the script's own default).
 */
export async function startValkeyServer(
  options: { readonly tls?: boolean; readonly keyPattern?: string } = {},
): Promise<ValkeyServer> {
  const dir = ownedStackDir("valkey");
  const port = await freePort();
  const env = {
    ...process.env,
    STACK_DIR: dir,
    VALKEY_PORT: String(port),
    VALKEY_TLS: options.tls ? "1" : "0",
    VALKEY_KEY_PATTERN: options.keyPattern ?? "ctx:*",
  };
  const script = (action: "start" | "stop") => runLocalScript("valkey", action, env);
  const remove = async () => {
    await script("stop");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await script("start");
  } catch (e) {
    await remove().catch(() => undefined);
    throw e;
  }
  return {
    url: `${options.tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    caFile: join(dir, "pki/ca.pem"),
    users: valkeyUsers(join(dir, "secrets/valkey")),
    restart: async () => {
      await script("stop");
      await script("start");
    },
    remove,
  };
}
