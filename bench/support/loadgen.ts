import { execFile, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LoadResult } from "./load.ts";
import type { OpenLoopResult } from "./open-loop.ts";
import { repoRoot, serviceNodeFlags } from "./servers.ts";
import { summarize } from "./stats.ts";

const run = promisify(execFile);
const sourceDir = join(repoRoot, "bench/loadgen");
const binary = join(repoRoot, ".tools/bin/ctx-loadgen");

/** What every run of the generator takes. */
interface GoLoadOptions {
  /** host:port of the gRPC server (plaintext HTTP/2). */
  readonly target: string;
  /** The method's path, e.g. `/context.v1.ContextQueryService/GetContext`. */
  readonly method: string;
  /**
   * Encoded request messages; each call sends one picked at random, or with `sequential` the next
   * one, each at most once (running out fails the calls).
   */
  readonly requests: readonly Uint8Array[];
  readonly sequential?: boolean;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Count the answers by the value of this top-level varint field (e.g. an enum). */
  readonly tallyField?: number;
  /** The authorization header of every call (`Bearer <token>`; the services authenticate). */
  readonly authorization?: string;
}

export interface GoOpenLoopOptions extends GoLoadOptions {
  readonly ratePerSecond: number;
  readonly maxInFlight: number;
}

export interface GoClosedLoopOptions extends GoLoadOptions {
  /** Workers, each with one call in flight. */
  readonly concurrency: number;
}

/** What the generator saw beyond the latencies. */
interface GoExtras {
  /** Answers by the value of `tallyField`. */
  readonly tally: Readonly<Record<string, number>>;
}

export type GoOpenLoopResult = OpenLoopResult & GoExtras;
export type GoClosedLoopResult = LoadResult & GoExtras;

/** The generator's JSON output (bench/loadgen/main.go). */
interface LoadgenOutput {
  readonly scheduled: number;
  readonly dropped: number;
  readonly errors: number;
  readonly errorSamples: string[];
  readonly fromDueMs: number[] | null;
  readonly fromSendMs: number[] | null;
  readonly sendDelayMs: number[] | null;
  readonly tally: Record<string, number>;
}

/**
 * The open loop of `openLoop` (same schedule, same latency from the due time), run by the Go load
 * generator in bench/loadgen instead of this process: its calls do not wait out this process's
 * garbage collections. Builds the generator first unless `buildLoadgen` already did.
 */
export async function goOpenLoop(options: GoOpenLoopOptions): Promise<GoOpenLoopResult> {
  const r = await runLoadgen(options, {
    ratePerSecond: options.ratePerSecond,
    maxInFlight: options.maxInFlight,
  });
  return {
    ...counted(r, options),
    ratePerSecond: options.ratePerSecond,
    scheduled: r.scheduled,
    dropped: r.dropped,
    latencyMs: summarize(r.fromDueMs ?? []),
    fromSendMs: summarize(r.fromSendMs ?? []),
    sendDelayMs: summarize(r.sendDelayMs ?? []),
  };
}

/** What both loops report alike: the successful calls (one latency each), errors, rate and extras. */
function counted(r: LoadgenOutput, options: GoLoadOptions) {
  const calls = r.fromSendMs?.length ?? 0;
  const seconds = options.durationMs / 1000;
  return {
    calls,
    errors: r.errors,
    seconds,
    perSecond: calls / seconds,
    errorSamples: r.errorSamples,
    tally: r.tally,
  };
}

/** The closed loop of `closedLoop` (calls that end in the measured window count), run by the generator. */
export async function goClosedLoop(options: GoClosedLoopOptions): Promise<GoClosedLoopResult> {
  const r = await runLoadgen(options, { concurrency: options.concurrency });
  return {
    ...counted(r, options),
    concurrency: options.concurrency,
    latencyMs: summarize(r.fromSendMs ?? []),
  };
}

async function runLoadgen(
  options: GoLoadOptions,
  loop: { ratePerSecond: number; maxInFlight: number } | { concurrency: number },
): Promise<LoadgenOutput> {
  await buildLoadgen();
  const input = JSON.stringify({
    target: options.target,
    method: options.method,
    requests: options.requests.map((r) => Buffer.from(r).toString("base64")),
    sequential: options.sequential ?? false,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    tallyField: options.tallyField ?? 0,
    ...(options.authorization ? { authorization: options.authorization } : {}),
    ...loop,
  });
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(binary, [], { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => stdout.push(c));
    child.stderr.on("data", (c: Buffer) => stderr.push(c));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString("utf8"));
      else
        reject(new Error(`loadgen exited with ${code}: ${Buffer.concat(stderr).toString("utf8")}`));
    });
    child.stdin.end(input);
  });
  return JSON.parse(out) as LoadgenOutput;
}

export interface FloorServer {
  /** host:port it listens on. */
  readonly target: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts bench/support/noop-grpc-server.ts, a node:http2 gRPC server that answers every call with
 * its request: the floor of a Node HTTP/2 service on this machine, for the same load.
 */
export function startNoopGrpcServer(): Promise<FloorServer> {
  return startFloorServer("bench/support/noop-grpc-server.ts");
}

/**
 * Starts bench/support/append-floor-server.ts: a node:http2 gRPC server that appends one event per
 * call and does nothing else (`mode`: through the ack publisher, pre-encoded, or EventStore.append),
 * as the floor of the write path. `env` holds its NATS variables (URL and login).
 */
export function startAppendFloorServer(
  mode: "publish" | "store",
  env: Readonly<Record<string, string>>,
): Promise<FloorServer> {
  return startFloorServer("bench/support/append-floor-server.ts", { ...env, FLOOR_MODE: mode });
}

/**
 * Starts a floor server (a script that prints `{"port":N}` once it listens and exits when its stdin
 * ends) like the services are started, so that it differs from them in nothing but the work.
 */
async function startFloorServer(
  script: string,
  env: Readonly<Record<string, string>> = {},
): Promise<FloorServer> {
  const entry = join(repoRoot, script);
  const child = spawn(process.execPath, [...serviceNodeFlags(), entry], {
    // stdin stays open while this process lives: the server exits when it closes, so a bench that
    // crashes leaves no server behind.
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out: string | undefined = "";
    child.stdout.on("data", (c: Buffer) => {
      // The listener stays, draining stdout; only the port's own line counts (anything else, e.g.
      // --trace-gc through NODE_OPTIONS, is skipped).
      if (out === undefined) return;
      out += c.toString("utf8");
      const found = /^\{"port":(\d+)\}$/m.exec(out);
      if (found === null) return;
      out = undefined;
      resolve(Number(found[1]));
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    target: `127.0.0.1:${port}`,
    pid: child.pid as number,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * `go build`s the generator into .tools/bin unless the binary is newer than its sources (Go's module
 * and build caches live outside the repo). Call it before measuring: a build takes seconds of CPU.
 */
export async function buildLoadgen(): Promise<void> {
  const sources = ["main.go", "go.mod", "go.sum"].map((f) => statSync(join(sourceDir, f)).mtimeMs);
  if (existsSync(binary) && statSync(binary).mtimeMs > Math.max(...sources)) return;
  try {
    await run("go", ["build", "-trimpath", "-o", binary, "."], { cwd: sourceDir });
  } catch (e) {
    throw new Error(
      "building bench/loadgen needs Go (1.24 or later) and the Go module proxy: " +
        (e instanceof Error ? e.message : String(e)),
      { cause: e },
    );
  }
}
