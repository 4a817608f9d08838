import { execFile } from "node:child_process";
import { join } from "node:path";
import { testAuth } from "./test-auth.ts";

const script = join(import.meta.dirname, "../../tools/audit/verify_chain.py");

/**
 * tools/audit/verify_chain.py run as an auditor runs it (python3, the shared test token) against a
 * query service, with `--json` and the given arguments: its exit code and its JSON document.
 */
export function runVerifyChain<T>(
  url: string,
  args: readonly string[],
): Promise<{ readonly code: number | null; readonly result: T }> {
  return new Promise((resolve, reject) => {
    execFile(
      "python3",
      [script, "--url", url, "--json", ...args],
      { env: { ...process.env, CTX_TOKEN: testAuth().token }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        try {
          resolve({ code, result: JSON.parse(stdout) as T });
        } catch {
          reject(new Error(`verify_chain.py gave no JSON (exit ${code}): ${stderr}`));
        }
      },
    );
  });
}
