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
import { connectNats, natsConnectionOf } from "@ctx/service";
import { createTestAuth } from "@ctx/test-support/auth";
import { natsRoleEnv } from "@ctx/test-support/nats-role-env";
import type { NatsConnection } from "@nats-io/transport-node";

const run = promisify(execFile);
export const repoRoot = resolve(import.meta.dirname, "../..");
const benchStacksDir = join(repoRoot, ".stack/bench");

/**
 * The Node/V8 flags every service is started with, as deploy/local/services.sh starts them (one
 * source: deploy/service-node-flags; why: docs/OPERATIONS.md).
 */
export function serviceNodeFlags(): string[] {
  return readFileSync(join(repoRoot, "deploy/service-node-flags"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/**
 * The Node/V8 flags of one service's image beyond the shared ones (serviceNodeFlags), as its
 * container and deploy/local/services.sh start it (source: deploy/images/images.json): the young
 * generation's size of the command service and the projectors. A bench starts each service as it
 * is deployed.
 */
export function imageNodeFlags(image: "command" | "projector"): string[] {
  const spec = JSON.parse(readFileSync(join(repoRoot, "deploy/images/images.json"), "utf8")) as {
    images: Record<string, { entrypoint: string[] }>;
  };
  const shared = new Set(serviceNodeFlags());
  const entrypoint = spec.images[image]?.entrypoint ?? [];
  // The node binary first, the script last; the flags between.
  return entrypoint.slice(1, -1).filter((flag) => !shared.has(flag));
}

/** A Node service a bench started as a child process (see BenchStack.startService). */
export interface BenchService {
  readonly name: string;
  /** Base URL of its gRPC port (http://127.0.0.1:port), when it has one. */
  readonly url: string;
  /** Its ops server: /readyz, /metrics. */
  readonly opsUrl: string;
  readonly metricsUrl: string;
  readonly pid: number;
  /** Stops it (TERM, then KILL after 30 s). */
  stop(): Promise<void>;
}

export interface BenchServiceOptions {
  /** The entry point, relative to the repo root (e.g. `services/query/src/main.ts`). */
  readonly entry: string;
  /** Variable that gets the gRPC listen address (e.g. `QUERY_LISTEN`); none for a service without one. */
  readonly listenVariable?: string;
  /** Variable that gets the ops listen address (e.g. `QUERY_OPS_LISTEN`). */
  readonly opsListenVariable: string;
  /**
   * More configuration; NATS_URL and the stores' URLs and logins of the stack are set already
   * (see BenchStack.storeEnv).
   */
  readonly env?: Readonly<Record<string, string>>;
  /** Valkey user it logs in as (default: query for the query service, projector otherwise). */
  readonly valkeyUser?: BenchValkeyUser;
  readonly nodeArgs?: readonly string[];
  /**
   * The NATS user it logs in as (default `admin`; the role users' rights are written for the
   * default stream names). `ctx provision` runs first, with `env`'s names.
   */
  readonly natsRole?: string;
  /** Run `ctx provision` first (default true; false when the bench did, outside its timing). */
  readonly provision?: boolean;
}

/** The ACL users deploy/local/valkey.sh makes. */
export type BenchValkeyUser = "admin" | "projector" | "ctx" | "query";

/** The servers of one bench run: its own NATS and command service, on free ports, in its own folder. */
export interface BenchStack {
  readonly dir: string;
  readonly natsUrl: string;
  readonly natsMonitorUrl: string;
  /** The NATS variables of a user of the stack's server (URL, seed file, inbox prefix). */
  natsEnv(role?: string): Record<string, string>;
  /** A connection as the admin (authentication is on, as in the local stack). */
  connectNats(name: string): Promise<NatsConnection>;
  /** `bin/ctx provision` as the operator, with these names (default: the defaults). */
  provision(env?: Readonly<Record<string, string>>): Promise<void>;
  /** Valkey's URL, when the stack was started with `valkey: true`. */
  readonly valkeyUrl: string | undefined;
  /** Neo4j's Bolt URL, when the stack was started with `neo4j: true` (user neo4j, see storeEnv). */
  readonly neo4jUrl: string | undefined;
  /**
   * The variables that reach the stack's Valkey as `user` and its Neo4j, with the passwords the
   * scripts generated (authentication is on, as in `make up`), given as files.
   */
  storeEnv(user: BenchValkeyUser): Record<string, string>;
  /** Base URL of the command service's gRPC port, once started. */
  readonly commandUrl: string;
  /** The command service's Prometheus metrics. */
  readonly commandMetricsUrl: string;
  /**
   * `Bearer <token>` (all roles) of the run's own token issuer: the services run with AUTH=jwt, as
   * `make up` runs them, so the figures include verifying tokens (once per token: they are cached).
   */
  readonly authorization: string;
  /**
   * Pids of the server processes, for CPU accounting: nats, command, valkey and the services started
   * with startService, by name.
   */
  pids(): {
    readonly nats?: number;
    readonly command?: number;
    readonly [name: string]: number | undefined;
  };
  /** The pids of the NATS servers: one, or every node of a cluster. */
  natsPids(): number[];
  /** The stack's NATS servers: 1, or the nodes of its cluster (`natsCluster`). */
  readonly natsNodes: number;
  /**
   * Starts `node services/command/src/main.ts` as a child process of its own (so client and service
   * never share an event loop), configured by environment like deploy/local/services.sh does it.
   */
  startCommandService(options?: {
    readonly nodeArgs?: readonly string[];
    /** Default `command` (its stream is the default one). */
    readonly natsRole?: string;
    /** More environment variables for it (e.g. OTEL_* to trace it). */
    readonly env?: Readonly<Record<string, string>>;
  }): Promise<void>;
  /**
   * Starts another Node service (`node <entry>`) as a child process of its own, on free ports, named
   * `name` in the run folder (pid, log); it is stopped with the stack. Resolves once /readyz answers.
   */
  startService(
    name: string,
    options: BenchServiceOptions,
  ): Promise<BenchService> /** Stops what this run started (by pid) and deletes the folder. Safe to call more than once. */;
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

/** The pid files of servers started by the deploy/local scripts, not by a bench. */
const serverPidFiles = new Set(["nats.pid", "valkey.pid"]);

/** Stops the Node services of a run folder (every pid file but the servers'), in parallel. */
async function stopServices(dir: string): Promise<void> {
  const run = join(dir, "run");
  if (!existsSync(run)) return;
  await Promise.all(
    readdirSync(run)
      .filter((f) => f.endsWith(".pid") && !serverPidFiles.has(f))
      .map((f) => stopPid(join(run, f))),
  );
}

/**
 * Spawns `node <entry>` detached (its own process group: Ctrl-C reaches the bench only, which then
 * stops it in order), output to log/<name>.log, pid in run/<name>.pid; resolves once `readyUrl`
 * answers 200.
 */
async function spawnService(
  dir: string,
  name: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  readyUrl: string,
): Promise<number> {
  const logFile = join(dir, `log/${name}.log`);
  mkdirSync(join(dir, "log"), { recursive: true });
  mkdirSync(join(dir, "run"), { recursive: true });
  const out = openSync(logFile, "a");
  const child = spawn(process.execPath, [...serviceNodeFlags(), ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", out, out],
    detached: true,
  });
  closeSync(out);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  writeFileSync(join(dir, `run/${name}.pid`), String(child.pid));
  try {
    await waitUntilReady(readyUrl, 60_000, () => !exited);
  } catch (e) {
    const tail = readFileSync(logFile, "utf8").split("\n").slice(-40).join("\n");
    throw new Error(`the ${name} service did not start:\n${tail}`, { cause: e });
  }
  return child.pid as number;
}

/** Stops the servers of earlier bench runs whose owner died (killed -9, crashed) and deletes their data. */
async function reapAbandonedRuns(): Promise<void> {
  if (!existsSync(benchStacksDir)) return;
  for (const name of readdirSync(benchStacksDir)) {
    const dir = join(benchStacksDir, name);
    const owner = readPid(join(dir, "owner.pid"));
    if (owner !== undefined && isAlive(owner)) continue;
    await stopServices(dir);
    await script("nats.sh", "stop", { STACK_DIR: dir }).catch(() => undefined);
    await script("valkey.sh", "stop", { STACK_DIR: dir }).catch(() => undefined);
    await script("neo4j.sh", "stop", { STACK_DIR: dir }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts NATS with deploy/local/nats.sh (and Valkey with deploy/local/valkey.sh when `valkey` is set,
 * Neo4j with deploy/local/neo4j.sh when `neo4j` is set; both with authentication on, as `make up`)
 * on free ports, in `.stack/bench/<run>`. Never touches the stack of `make up` (.stack/local) or of
 * the tests.
 */
export async function startBenchStack(
  options: {
    readonly valkey?: boolean;
    readonly neo4j?: boolean;
    /** A JetStream cluster of this many nodes (deploy/local/nats.sh NATS_CLUSTER), streams R3. */
    readonly natsCluster?: number;
  } = {},
): Promise<BenchStack> {
  const natsNodes = options.natsCluster ?? 1;
  await reapAbandonedRuns();
  const dir = join(benchStacksDir, `${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  const ports = {
    NATS_PORT: await freePort(),
    NATS_MONITOR_PORT: await freePort(),
    COMMAND_PORT: await freePort(),
    COMMAND_OPS_PORT: await freePort(),
    VALKEY_PORT: options.valkey ? await freePort() : 0,
    NEO4J_BOLT_PORT: options.neo4j ? await freePort() : 0,
  };
  // A cluster's nodes: the first on the ports above, the others on ports of their own.
  const clusterPorts = {
    client: [ports.NATS_PORT],
    monitor: [ports.NATS_MONITOR_PORT],
    route: [] as number[],
  };
  for (let i = 0; i < natsNodes && natsNodes > 1; i++) {
    if (i > 0) clusterPorts.client.push(await freePort());
    if (i > 0) clusterPorts.monitor.push(await freePort());
    clusterPorts.route.push(await freePort());
  }
  const env: Record<string, string> = {
    STACK_DIR: dir,
    NATS_PORT: String(ports.NATS_PORT),
    NATS_MONITOR_PORT: String(ports.NATS_MONITOR_PORT),
    ...(natsNodes > 1
      ? {
          NATS_CLUSTER: String(natsNodes),
          NATS_PORTS: clusterPorts.client.join(","),
          NATS_MONITOR_PORTS: clusterPorts.monitor.join(","),
          NATS_CLUSTER_PORTS: clusterPorts.route.join(","),
        }
      : {}),
    ...(options.valkey ? { VALKEY_PORT: String(ports.VALKEY_PORT) } : {}),
    ...(options.neo4j ? { NEO4J_BOLT_PORT: String(ports.NEO4J_BOLT_PORT) } : {}),
  };
  mkdirSync(join(dir, "auth"), { recursive: true, mode: 0o700 });
  const auth = createTestAuth({ dir: join(dir, "auth") });
  const natsUrl = clusterPorts.client.map((port) => `nats://127.0.0.1:${port}`).join(",");
  const valkeyUrl = options.valkey ? `redis://127.0.0.1:${ports.VALKEY_PORT}` : undefined;
  const neo4jUrl = options.neo4j ? `bolt://127.0.0.1:${ports.NEO4J_BOLT_PORT}` : undefined;
  const storeEnv = (user: BenchValkeyUser): Record<string, string> => ({
    ...(valkeyUrl
      ? {
          VALKEY_URL: valkeyUrl,
          VALKEY_USER: user,
          VALKEY_PASSWORD_FILE: join(dir, "secrets/valkey", user),
        }
      : {}),
    ...(neo4jUrl
      ? { NEO4J_URL: neo4jUrl, NEO4J_PASSWORD_FILE: join(dir, "secrets/neo4j/password") }
      : {}),
  });
  const services = new Map<string, BenchService>();
  let stopped: Promise<void> | undefined;
  const natsEnv = (role = "admin"): Record<string, string> => {
    // On a cluster the streams are R3 (three nodes or more), for ctx provision and the services.
    const replicas = natsNodes >= 3 ? { EVENT_STREAM_REPLICAS: "3" } : {};
    return { NATS_URL: natsUrl, ...replicas, ...natsRoleEnv(dir, role) };
  };
  const provision = async (more: Readonly<Record<string, string>> = {}) => {
    await run(join(repoRoot, "bin/ctx"), ["provision"], {
      env: { ...process.env, ...more, ...natsEnv("ctx") },
      timeout: 120_000,
    });
  };
  const stack: BenchStack = {
    dir,
    natsUrl,
    natsMonitorUrl: `http://127.0.0.1:${ports.NATS_MONITOR_PORT}`,
    natsEnv,
    connectNats: (name) => connectNats(natsConnectionOf(natsEnv()), { name }),
    provision,
    valkeyUrl,
    neo4jUrl,
    storeEnv,
    commandUrl: `http://127.0.0.1:${ports.COMMAND_PORT}`,
    commandMetricsUrl: `http://127.0.0.1:${ports.COMMAND_OPS_PORT}/metrics`,
    authorization: auth.authorization,
    natsNodes,
    natsPids: () => {
      const names = natsNodes > 1 ? clusterPorts.client.map((_, i) => `nats-${i}`) : ["nats"];
      return names.flatMap((name) => readPid(join(dir, `run/${name}.pid`)) ?? []);
    },
    pids: () => {
      const out: Record<string, number> = {};
      for (const name of ["nats", "valkey", "neo4j", "command", ...services.keys()]) {
        const pid = readPid(join(dir, `run/${name}.pid`));
        if (pid !== undefined) out[name] = pid;
      }
      return out;
    },
    async startCommandService(options = {}) {
      await provision();
      await spawnService(
        dir,
        "command",
        [
          ...imageNodeFlags("command"),
          ...(options.nodeArgs ?? []),
          join(repoRoot, "services/command/src/main.ts"),
        ],
        {
          ...natsEnv(options.natsRole ?? "command"),
          COMMAND_LISTEN: `127.0.0.1:${ports.COMMAND_PORT}`,
          COMMAND_OPS_LISTEN: `127.0.0.1:${ports.COMMAND_OPS_PORT}`,
          ...auth.env,
          ...options.env,
        },
        `http://127.0.0.1:${ports.COMMAND_OPS_PORT}/readyz`,
      );
    },
    async startService(name, o) {
      if (services.has(name) || ["nats", "valkey", "command"].includes(name)) {
        throw new Error(`a service named ${name} is running already`);
      }
      const port = o.listenVariable ? await freePort() : 0;
      const opsPort = await freePort();
      // The services only check for their streams and buckets: the operator creates them.
      if (o.provision !== false) await provision(o.env);
      const pid = await spawnService(
        dir,
        name,
        [...(o.nodeArgs ?? []), join(repoRoot, o.entry)],
        {
          ...natsEnv(o.natsRole),
          ...storeEnv(
            o.valkeyUser ?? (o.entry.includes("services/query/") ? "query" : "projector"),
          ),
          ...(o.listenVariable ? { [o.listenVariable]: `127.0.0.1:${port}` } : {}),
          [o.opsListenVariable]: `127.0.0.1:${opsPort}`,
          ...auth.env,
          ...o.env,
        },
        `http://127.0.0.1:${opsPort}/readyz`,
      );
      const opsUrl = `http://127.0.0.1:${opsPort}`;
      const service: BenchService = {
        name,
        url: `http://127.0.0.1:${port}`,
        opsUrl,
        metricsUrl: `${opsUrl}/metrics`,
        pid,
        async stop() {
          await stopPid(join(dir, `run/${name}.pid`));
          services.delete(name);
        },
      };
      services.set(name, service);
      return service;
    },
    stop() {
      stopped ??= (async () => {
        await stopServices(dir);
        await script("nats.sh", "stop", env).catch((e: unknown) => console.error(e));
        if (options.valkey) {
          await script("valkey.sh", "stop", env).catch((e: unknown) => console.error(e));
        }
        if (options.neo4j) {
          await script("neo4j.sh", "stop", env).catch((e: unknown) => console.error(e));
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  try {
    await script("nats.sh", "start", env);
    if (options.valkey) await script("valkey.sh", "start", env);
    if (options.neo4j) await script("neo4j.sh", "start", env);
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
