import { execFileSync } from "node:child_process";
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { type CpuShares, measureCpu } from "./cpu.ts";
import type { LoadResult } from "./load.ts";
import { LOOP_MONITOR_RESOLUTION_MS } from "./metrics.ts";
import { type BenchStack, repoRoot } from "./servers.ts";

// What every bench records beside its figures: the machine, the NATS server, the commit, and for
// each load phase the CPU shares of the processes and the bench's own event-loop delay.

/** A load phase with what the machine did meanwhile. */
export interface Phase extends LoadResult {
  readonly cpuPercent: CpuShares;
  /**
   * Event-loop delay of this (client) process during the phase, ms beyond the 10 ms sampling: a
   * lagging client adds latency.
   */
  readonly benchLoopLagMs: { readonly p99: number; readonly max: number };
}

/** Runs a load phase, measuring the CPU of `pids` (`mainThreads` also on their main thread alone). */
export async function withCpu(
  pids: Readonly<Record<string, number | readonly number[] | undefined>>,
  mainThreads: readonly string[],
  phase: () => Promise<LoadResult>,
): Promise<Phase> {
  const done = measureCpu(pids, mainThreads);
  const loopDelay = watchLoopDelay();
  const result = await phase();
  const benchLoopLagMs = loopDelay();
  return { ...result, cpuPercent: done(), benchLoopLagMs };
}

/**
 * Starts watching this process's event-loop delay; the returned function stops and gives its p99
 * and max in ms, beyond the monitor's sampling interval (the time the loop was actually late).
 */
export function watchLoopDelay(): () => { p99: number; max: number } {
  const lag = monitorEventLoopDelay({ resolution: LOOP_MONITOR_RESOLUTION_MS });
  lag.enable();
  return () => {
    lag.disable();
    return {
      p99: lag.percentile(99) / 1e6 - LOOP_MONITOR_RESOLUTION_MS,
      max: lag.max / 1e6 - LOOP_MONITOR_RESOLUTION_MS,
    };
  };
}

export function describeMachine() {
  const cpus = os.cpus();
  return {
    cpus: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

export async function natsServerVersion(stack: BenchStack): Promise<string> {
  try {
    const varz = (await (await fetch(`${stack.natsMonitorUrl}/varz`)).json()) as {
      version?: string;
    };
    return varz.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export function gitState(): { commit: string; dirty: boolean } {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { cwd: repoRoot, encoding: "utf8" }).trim();
    return {
      commit: git("rev-parse", "--short", "HEAD"),
      dirty: git("status", "--porcelain") !== "",
    };
  } catch {
    return { commit: "unknown", dirty: true };
  }
}
