import { runService } from "@ctx/config";
import { withTracing } from "@ctx/telemetry";
import { startQueryApp } from "./app.ts";
import { loadQueryConfig } from "./config.ts";

// Entry point: `node services/query/src/main.ts`. Configuration: see config.ts and docs/QUERY.md.
await runService("query-service", loadQueryConfig, withTracing("query-service", startQueryApp));
