import { execFile } from "node:child_process";
import { resolve } from "node:path";

/** What a run of `bin/ctx` did. */
export interface CtxRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const binCtx = resolve(import.meta.dirname, "../../bin/ctx");

/**
 * Runs `bin/ctx` as an operator would, with exactly `env` as its environment (pass
 * `{ ...process.env, ... }` to inherit), and reports its exit code and output.
 */
export function runCtx(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs = 60_000,
): Promise<CtxRun> {
  return new Promise((done) => {
    execFile(binCtx, [...args], { env, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      done({ code, stdout, stderr });
    });
  });
}
