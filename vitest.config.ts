import { defineConfig } from "vitest/config";
import { FailureSummary } from "./test/support/failure-summary.ts";

// Three suites, told apart by file suffix (see ../README.md#tests):
// unit (pure, no servers), integration (real NATS / Valkey / Neo4j), e2e (running services over gRPC).
const servers = "test/support/global-setup.ts";
// Deep comparisons treat a state's StoryMaps as the maps they read as (see that file).
const setupFiles = ["libs/domain/src/testing/story-map-equality.ts"];
const ignored = ["**/node_modules/**", ".tools/**", ".stack/**"];

export default defineConfig({
  test: {
    // CI keeps a run's tail: end it with what failed, in plain text.
    reporters: ["default", new FailureSummary()],
    projects: [
      {
        extends: false,
        test: { name: "unit", include: ["**/*.unit.spec.ts"], exclude: ignored, setupFiles },
      },
      {
        extends: false,
        test: {
          name: "integration",
          include: ["**/*.int.spec.ts"],
          exclude: ignored,
          setupFiles,
          globalSetup: [servers],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        extends: false,
        test: {
          name: "e2e",
          include: ["**/*.e2e.spec.ts"],
          exclude: ignored,
          setupFiles,
          globalSetup: [servers],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
