import { spawn } from "node:child_process";

/** What one kubectl call printed and how it ended. */
export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface KubectlOptions {
  /** Written to kubectl's standard input (for `-f -`). */
  readonly input?: string;
}

/**
 * kubectl against one control plane. The tests drive the API server through the same client an
 * operator uses, so what they prove (apply, rollout, drain) is what `kubectl` does, warnings included.
 */
export interface Kubectl {
  /** Runs kubectl; never throws for a non-zero exit (the result says how it ended). */
  run(args: readonly string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** Runs kubectl and returns its standard output; throws with its stderr when it fails. */
  ok(args: readonly string[], options?: KubectlOptions): Promise<string>;
  /** `kubectl <args> -o json`, parsed. */
  json<T>(args: readonly string[]): Promise<T>;
}

export function createKubectl(kubeconfig: string): Kubectl {
  const run = (args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> =>
    new Promise((resolve, reject) => {
      const child = spawn("kubectl", ["--kubeconfig", kubeconfig, ...args], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        stdout += d;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
      child.stdin.end(options.input ?? "");
    });
  const ok = async (args: readonly string[], options?: KubectlOptions): Promise<string> => {
    const r = await run(args, options);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  return {
    run,
    ok,
    json: async <T>(args: readonly string[]) => JSON.parse(await ok([...args, "-o", "json"])) as T,
  };
}
