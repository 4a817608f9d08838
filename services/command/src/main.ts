import { runService } from "@ctx/config";
import { withTracing } from "@ctx/telemetry";
import { startCommandApp } from "./app.ts";
import { loadCommandConfig } from "./config.ts";

// Entry point: `node services/command/src/main.ts`. Configuration: see config.ts and docs/OPERATIONS.md.
// Tracing: the standard OTEL_* variables (docs/OPERATIONS.md, "Tracing").
await runService(
  "command-service",
  loadCommandConfig,
  withTracing("command-service", startCommandApp),
);
