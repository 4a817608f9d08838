import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { eventually } from "@ctx/test-support";

const entry = resolve(import.meta.dirname, "../main.ts");

/** A projector replica running as its own OS process, as in production, so tests can SIGKILL it. */
export interface ProjectorProcess {
  readonly replicaId: string;
  readonly process: ChildProcess;
  /** SIGKILL: no goodbye, no lease hand-over. */
  kill(): Promise<void>;
  /** SIGTERM: the graceful stop. */
  stop(): Promise<void>;
  output(): string;
}

export function spawnProjector(env: Record<string, string>, replicaId: string): ProjectorProcess {
  const child = spawn(process.execPath, [entry], {
    env: {
      ...process.env,
      LOG_LEVEL: "warn",
      ...env,
      PROJECTOR_REPLICA_ID: replicaId,
      PROJECTOR_OPS_LISTEN: "127.0.0.1:0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  });
  child.stderr?.on("data", (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    replicaId,
    process: child,
    kill: () => end("SIGKILL"),
    stop: () => end("SIGTERM"),
    output: () => out,
  };
}

/** Waits until a condition holds, with a generous timeout for loaded 2-core machines. */
export const settle = <T>(check: () => T | Promise<T>, timeout = 120_000) =>
  eventually(check, { timeout, interval: 250 });
