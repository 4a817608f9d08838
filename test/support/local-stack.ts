import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { StackEndpoints, StoreLogin, ValkeyRole } from "./endpoints.ts";

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, "../..");
const testStacksDir = join(repoRoot, ".stack/test");

export interface RunningStack {
  readonly endpoints: StackEndpoints;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the OS picks it). */
/**
 * `count` distinct ports nobody listens on right now. Each is held until all are picked: ports
 * picked one after another can repeat (the OS hands a port it just took back out again), and a
 * cluster whose two nodes were given one route port does not form.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.unref();
          server.on("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    return typeof address === "object" && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `deploy/local/<script>.sh <action>` with `env` over this process's environment, as the
 * local stack does; a failure carries the script's output.
 */
export async function runLocalScript(
  script: "stack" | "nats" | "valkey" | "neo4j",
  action: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<void> {
  try {
    await run("bash", [join(repoRoot, `deploy/local/${script}.sh`), action], {
      env: { ...process.env, ...env },
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    throw new Error(
      `deploy/local/${script}.sh ${action} failed:\n${err.stderr ?? ""}${err.stdout ?? ""}`,
      { cause: e },
    );
  }
}

const stackScriptRun = (action: "up" | "down", env: Record<string, string>) =>
  runLocalScript("stack", action, env);

/**
 * A folder of its own under `.stack/test` for servers this process starts, marked with its pid so
 * that the next run stops them and removes it if this process dies first (reapAbandonedStacks).
 */
export function ownedStackDir(label: string): string {
  const dir = join(
    testStacksDir,
    `${process.pid}-${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  return dir;
}

/**
 * Stops the servers of earlier test runs that died without tearing down (their owner process is
 * gone), and removes their data, so a killed run never breaks the next one.
 */
export async function reapAbandonedStacks(): Promise<void> {
  if (!existsSync(testStacksDir)) return;
  for (const name of readdirSync(testStacksDir)) {
    const dir = join(testStacksDir, name);
    const ownerFile = join(dir, "owner.pid");
    const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, "utf8")) : 0;
    if (owner > 0 && isAlive(owner)) continue;
    await stackScriptRun("down", { STACK_DIR: dir }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts NATS, Valkey and Neo4j from deploy/local on free ports, in a folder of their own. */
export async function startLocalStack(): Promise<RunningStack> {
  await reapAbandonedStacks();
  const dir = ownedStackDir("stack");
  const [nats, natsMonitor, valkey, neo4j] = await freePorts(4);
  const ports = {
    NATS_PORT: nats,
    NATS_MONITOR_PORT: natsMonitor,
    VALKEY_PORT: valkey,
    NEO4J_BOLT_PORT: neo4j,
  };
  const env = {
    STACK_DIR: dir,
    // Tests give every file its own key prefix: the users' rules cover all keys here (the
    // read-model's prefix alone is proven in libs/read-model-valkey's valkey-acl.int.spec.ts).
    VALKEY_KEY_PATTERN: "*",
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
  };
  const stop = async () => {
    await stackScriptRun("down", env);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await stackScriptRun("up", env);
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
  const natsUrl = `nats://127.0.0.1:${ports.NATS_PORT}`;
  return {
    endpoints: {
      natsUrl,
      // deploy/local/nats.sh wrote a seed per role; the tests act as the admin.
      natsEnv: { NATS_URL: natsUrl, NATS_NKEY_SEED_FILE: join(dir, "secrets/nats/admin.nk") },
      valkeyUrl: `redis://127.0.0.1:${ports.VALKEY_PORT}`,
      neo4jUrl: `bolt://127.0.0.1:${ports.NEO4J_BOLT_PORT}`,
      neo4jUser: "neo4j",
      ...neo4jLogin(dir),
      valkeyUsers: valkeyUsers(join(dir, "secrets/valkey")),
    },
    stop,
  };
}

/** The users deploy/local/valkey.sh made, with the passwords it generated into `secretsDir`. */
export function valkeyUsers(secretsDir: string): Record<ValkeyRole, StoreLogin> {
  const login = (user: ValkeyRole): StoreLogin => {
    const passwordFile = join(secretsDir, user);
    return { user, password: readFileSync(passwordFile, "utf8"), passwordFile };
  };
  return {
    admin: login("admin"),
    projector: login("projector"),
    ctx: login("ctx"),
    query: login("query"),
  };
}

/** The password deploy/local/neo4j.sh generated in a stack folder for the user neo4j. */
export function neo4jLogin(stackDir: string): { neo4jPassword: string; neo4jPasswordFile: string } {
  const neo4jPasswordFile = join(stackDir, "secrets/neo4j/password");
  return { neo4jPassword: readFileSync(neo4jPasswordFile, "utf8"), neo4jPasswordFile };
}
