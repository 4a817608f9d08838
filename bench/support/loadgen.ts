import { execFile, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { OpenLoopResult } from "./open-loop.ts";
import { repoRoot } from "./servers.ts";
import { summarize } from "./stats.ts";

const run = promisify(execFile);
const sourceDir = join(repoRoot, "bench/loadgen");
const binary = join(repoRoot, ".tools/bin/ctx-loadgen");

export interface GoOpenLoopOptions {
  /** host:port of the gRPC server (plaintext HTTP/2). */
  readonly target: string;
  /** The method's path, e.g. `/context.v1.ContextQueryService/GetContext`. */
  readonly method: string;
  /** Encoded request messages; each call sends one picked at random. */
  readonly requests: readonly Uint8Array[];
  readonly ratePerSecond: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly maxInFlight: number;
  /** Count the answers by the value of this top-level varint field (e.g. an enum). */
  readonly tallyField?: number;
}

export interface GoOpenLoopResult extends OpenLoopResult {
  /** Answers by the value of `tallyField`. */
  readonly tally: Readonly<Record<string, number>>;
  /** CPU the generator used, start-up included. */
  readonly cpuSeconds: number;
}

/**
 * The open loop of `openLoop` (same schedule, same latency from the due time), run by the Go load
 * generator in bench/loadgen instead of this process: its calls do not wait out this process's
 * garbage collections, and it takes a fraction of the CPU. Builds the generator first unless
 * `buildLoadgen` already did.
 */
export async function goOpenLoop(options: GoOpenLoopOptions): Promise<GoOpenLoopResult> {
  await buildLoadgen();
  const input = JSON.stringify({
    target: options.target,
    method: options.method,
    requests: options.requests.map((r) => Buffer.from(r).toString("base64")),
    ratePerSecond: options.ratePerSecond,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    maxInFlight: options.maxInFlight,
    tallyField: options.tallyField ?? 0,
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
  const r = JSON.parse(out) as {
    scheduled: number;
    dropped: number;
    errors: number;
    errorSamples: string[];
    fromDueMs: number[] | null;
    fromSendMs: number[] | null;
    sendDelayMs: number[] | null;
    tally: Record<string, number>;
    cpuSeconds: number;
  };
  const calls = r.fromDueMs?.length ?? 0;
  const seconds = options.durationMs / 1000;
  return {
    ratePerSecond: options.ratePerSecond,
    seconds,
    scheduled: r.scheduled,
    calls,
    errors: r.errors,
    dropped: r.dropped,
    perSecond: calls / seconds,
    latencyMs: summarize(r.fromDueMs ?? []),
    fromSendMs: summarize(r.fromSendMs ?? []),
    sendDelayMs: summarize(r.sendDelayMs ?? []),
    errorSamples: r.errorSamples,
    tally: r.tally,
    cpuSeconds: r.cpuSeconds,
  };
}

export interface NoopGrpcServer {
  /** host:port it listens on. */
  readonly target: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts bench/support/noop-grpc-server.ts, a node:http2 gRPC server that answers every call with
 * its request: the floor of a Node HTTP/2 service on this machine, for the same load.
 */
export async function startNoopGrpcServer(): Promise<NoopGrpcServer> {
  const child = spawn(process.execPath, [join(repoRoot, "bench/support/noop-grpc-server.ts")], {
    // stdin stays open while this process lives: the server exits when it closes (bench/support/
    // noop-grpc-server.ts), so a bench that crashes leaves no server behind.
    stdio: ["pipe", "pipe", "inherit"],
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
    child.once("exit", (code) => reject(new Error(`the no-op gRPC server exited with ${code}`)));
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
