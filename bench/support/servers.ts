import { execFile, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const repoRoot = resolve(import.meta.dirname, "../..");
const benchStacksDir = join(repoRoot, ".stack/bench");

/** The servers of one bench run: its own NATS and command service, on free ports, in its own folder. */
export interface BenchStack {
  readonly dir: string;
  readonly natsUrl: string;
  readonly natsMonitorUrl: string;
  /** Base URL of the command service's gRPC port, once started. */
  readonly commandUrl: string;
  /** The command service's Prometheus metrics. */
  readonly commandMetricsUrl: string;
  /** Pids of the server processes, for CPU accounting. */
  pids(): { readonly nats?: number; readonly command?: number };
  /**
   * Starts `node services/command/src/main.ts` as a child process of its own (so client and service
   * never share an event loop), configured by environment like deploy/local/services.sh does it.
   */
  startCommandService(options?: { readonly nodeArgs?: readonly string[] }): Promise<void>;
  /** Stops what this run started (by pid) and deletes the folder. Safe to call more than once. */
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the OS picks it). */
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

async function script(name: string, action: string, env: Record<string, string>): Promise<void> {
  try {
    await run("bash", [join(repoRoot, "deploy/local", name), action], {
      env: { ...process.env, ...env },
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    throw new Error(
      `deploy/local/${name} ${action} failed:\n${err.stderr ?? ""}${err.stdout ?? ""}`,
      {
        cause: e,
      },
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Stops the process a pid file names (TERM, then KILL after 30 s), and only that one. */
async function stopPid(file: string): Promise<void> {
  const pid = readPid(file);
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    rmSync(file, { force: true });
    return;
  }
  const deadline = Date.now() + 30_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
  rmSync(file, { force: true });
}

async function waitUntilReady(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (!alive()) throw new Error("exited before it was ready");
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the servers of earlier bench runs whose owner died (killed -9, crashed) and deletes their data. */
async function reapAbandonedRuns(): Promise<void> {
  if (!existsSync(benchStacksDir)) return;
  for (const name of readdirSync(benchStacksDir)) {
    const dir = join(benchStacksDir, name);
    const owner = readPid(join(dir, "owner.pid"));
    if (owner !== undefined && isAlive(owner)) continue;
    await stopPid(join(dir, "run/command.pid"));
    await script("nats.sh", "stop", { STACK_DIR: dir }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts NATS (only NATS: the write side needs nothing else) with deploy/local/nats.sh on free ports,
 * in `.stack/bench/<run>`. Never touches the stack of `make up` (.stack/local) or of the tests.
 */
export async function startBenchStack(): Promise<BenchStack> {
  await reapAbandonedRuns();
  const dir = join(benchStacksDir, `${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  const ports = {
    NATS_PORT: await freePort(),
    NATS_MONITOR_PORT: await freePort(),
    COMMAND_PORT: await freePort(),
    COMMAND_OPS_PORT: await freePort(),
  };
  const env: Record<string, string> = {
    STACK_DIR: dir,
    NATS_PORT: String(ports.NATS_PORT),
    NATS_MONITOR_PORT: String(ports.NATS_MONITOR_PORT),
  };
  const natsUrl = `nats://127.0.0.1:${ports.NATS_PORT}`;
  const commandPidFile = join(dir, "run/command.pid");
  let stopped: Promise<void> | undefined;
  const stack: BenchStack = {
    dir,
    natsUrl,
    natsMonitorUrl: `http://127.0.0.1:${ports.NATS_MONITOR_PORT}`,
    commandUrl: `http://127.0.0.1:${ports.COMMAND_PORT}`,
    commandMetricsUrl: `http://127.0.0.1:${ports.COMMAND_OPS_PORT}/metrics`,
    pids: () => {
      const nats = readPid(join(dir, "run/nats.pid"));
      const command = readPid(commandPidFile);
      return {
        ...(nats !== undefined ? { nats } : {}),
        ...(command !== undefined ? { command } : {}),
      };
    },
    async startCommandService(options = {}) {
      const logFile = join(dir, "log/command.log");
      mkdirSync(join(dir, "log"), { recursive: true });
      mkdirSync(join(dir, "run"), { recursive: true });
      const out = openSync(logFile, "a");
      const child = spawn(
        process.execPath,
        [...(options.nodeArgs ?? []), join(repoRoot, "services/command/src/main.ts")],
        {
          env: {
            ...process.env,
            NATS_URL: natsUrl,
            COMMAND_LISTEN: `127.0.0.1:${ports.COMMAND_PORT}`,
            COMMAND_OPS_LISTEN: `127.0.0.1:${ports.COMMAND_OPS_PORT}`,
          },
          stdio: ["ignore", out, out],
          // Its own process group: Ctrl-C reaches the bench only, which then stops it in order.
          detached: true,
        },
      );
      closeSync(out);
      let exited = false;
      child.once("exit", () => {
        exited = true;
      });
      writeFileSync(commandPidFile, String(child.pid));
      try {
        await waitUntilReady(
          `http://127.0.0.1:${ports.COMMAND_OPS_PORT}/readyz`,
          60_000,
          () => !exited,
        );
      } catch (e) {
        const tail = readFileSync(logFile, "utf8").split("\n").slice(-40).join("\n");
        throw new Error(`the command service did not start:\n${tail}`, { cause: e });
      }
    },
    stop() {
      stopped ??= (async () => {
        await stopPid(commandPidFile);
        await script("nats.sh", "stop", env).catch((e: unknown) => console.error(e));
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  try {
    await script("nats.sh", "start", env);
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/**
 * Runs `teardown` once when the bench ends, however it ends: normally, on an error, or on Ctrl-C /
 * SIGTERM (then exits 130 / 143).
 */
export function onShutdown(teardown: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = () => {
    done ??= teardown();
    return done;
  };
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the bench's servers…`);
      void once().finally(() => process.exit(code));
    });
  }
  return once;
}
