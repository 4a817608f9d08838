import { defineConfig } from "vitest/config";
import { FailureSummary } from "../support/failure-summary.ts";

// make test-k8s: one control plane per run (support/control-plane-setup.ts), shared by the files,
// which run one after another (they drain its nodes). Not part of `make test` (no *.unit/int/e2e
// suffix): the first run builds Kubernetes (~15 min cold on 2 cores).
export default defineConfig({
  test: {
    name: "k8s",
    reporters: ["default", new FailureSummary()],
    root: import.meta.dirname,
    include: ["**/*.k8s.spec.ts"],
    exclude: ["**/node_modules/**"],
    globalSetup: ["support/control-plane-setup.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 1_800_000,
  },
});
