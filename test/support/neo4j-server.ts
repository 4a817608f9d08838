import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./local-stack.ts";

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, "../..");
const neo4jScript = join(repoRoot, "deploy/local/neo4j.sh");
const testStacksDir = join(repoRoot, ".stack/test");

/**
 * A Neo4j server of one test file alone, for tests that stop, crash and restart it: the shared
 * server of the run must stay up for every other file.
 */
export interface Neo4jServer {
  readonly url: string;
  readonly user: string;
  readonly password: string;
  /** Pid of the running server process, undefined while it is down. */
  pid(): number | undefined;
  /** A clean stop (SIGTERM, SIGKILL after 30 s). The data stays for the next start. */
  stop(): Promise<void>;
  /** A crash (SIGKILL): no shutdown at all. The data stays; the next start recovers it. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data; resolves once Bolt answers. */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  remove(): Promise<void>;
}

/**
 * Starts a dedicated Neo4j from deploy/local/neo4j.sh on a free port, in its own folder under
 * `.stack/test/` owned by this process: if the process dies, the next test run's global setup stops
 * the server and deletes the folder (see reapAbandonedStacks).
 */
export async function startNeo4jServer(): Promise<Neo4jServer> {
  const dir = join(testStacksDir, `neo4j-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  const port = await freePort();
  const env = { ...process.env, STACK_DIR: dir, NEO4J_BOLT_PORT: String(port), NEO4J_AUTH: "none" };
  const pidFile = join(dir, "run/neo4j.pid");
  const script = async (action: "start" | "stop") => {
    try {
      await run("bash", [neo4jScript, action], { env, timeout: 300_000 });
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string };
      throw new Error(
        `deploy/local/neo4j.sh ${action} failed:\n${err.stderr ?? ""}${err.stdout ?? ""}`,
        { cause: e },
      );
    }
  };
  const pid = () => {
    if (!existsSync(pidFile)) return undefined;
    const value = Number(readFileSync(pidFile, "utf8"));
    return value > 0 && isAlive(value) ? value : undefined;
  };
  const server: Neo4jServer = {
    url: `bolt://127.0.0.1:${port}`,
    user: "neo4j",
    password: "",
    pid,
    start: () => script("start"),
    stop: () => script("stop"),
    async kill() {
      const running = pid();
      if (running === undefined) return;
      process.kill(running, "SIGKILL");
      while (isAlive(running)) await new Promise((r) => setTimeout(r, 50));
      rmSync(pidFile, { force: true });
    },
    async remove() {
      await script("stop");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (e) {
    await server.remove().catch(() => undefined);
    throw e;
  }
  return server;
}

/** A live process: signalable, and not a zombie waiting for its (re-parented) parent to reap it. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}
