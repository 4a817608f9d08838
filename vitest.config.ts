import { defineConfig } from "vitest/config";

// Three suites, told apart by file suffix (see ../README.md#tests):
// unit (pure, no servers), integration (real NATS / Valkey / Neo4j), e2e (running services over gRPC).
const servers = "test/support/global-setup.ts";
const ignored = ["**/node_modules/**", ".tools/**", ".stack/**"];

export default defineConfig({
  test: {
    projects: [
      {
        extends: false,
        test: { name: "unit", include: ["**/*.unit.spec.ts"], exclude: ignored },
      },
      {
        extends: false,
        test: {
          name: "integration",
          include: ["**/*.int.spec.ts"],
          exclude: ignored,
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
          globalSetup: [servers],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
