import { runService } from "@ctx/config";
import { withTracing } from "@ctx/telemetry";
import { startProjectorApp } from "./app.ts";
import { loadProjectorConfig } from "./config.ts";

// Entry point: `PROJECTION=neo4j|valkey node services/projector/src/main.ts`; see docs/OPERATIONS.md.
// The replica hands its partitions over on SIGTERM.
await runService("projector", loadProjectorConfig, withTracing("projector", startProjectorApp));
