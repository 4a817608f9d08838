import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

const repoRoot = resolve(import.meta.dirname, "../../..");
const script = join(repoRoot, "deploy/k8s/control-plane.sh");

declare module "vitest" {
  export interface ProvidedContext {
    /** The admin kubeconfig of this run's control plane. */
    kubeconfig: string;
  }
}

function controlPlane(action: string, stackDir: string): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(script, [action], {
      env: { ...process.env, STACK_DIR: stackDir },
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("error", fail);
    child.on("close", (code) =>
      code === 0 ? done() : fail(new Error(`${script} ${action} exited with ${code}`)),
    );
  });
}

/**
 * One control plane per `make test-k8s` run, on free ports, with its state in a fresh folder under
 * .stack/ (deleted afterwards unless K8S_KEEP=1, for reading the components' logs). The first run on
 * a machine builds Kubernetes and kwok into CACHE_DIR.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  mkdirSync(join(repoRoot, ".stack"), { recursive: true });
  const stackDir = mkdtempSync(join(repoRoot, ".stack/test-k8s-"));
  try {
    await controlPlane("start", stackDir);
  } catch (e) {
    await controlPlane("stop", stackDir).catch(() => undefined);
    throw e;
  }
  project.provide("kubeconfig", join(stackDir, "k8s/admin.kubeconfig"));
  return async () => {
    // What still runs at the end (a component that died during the run shows as stopped).
    await controlPlane("status", stackDir).catch(() => undefined);
    await controlPlane("stop", stackDir);
    if (process.env.K8S_KEEP === "1") console.log(`control plane state kept in ${stackDir}`);
    else rmSync(stackDir, { recursive: true, force: true });
  };
}
