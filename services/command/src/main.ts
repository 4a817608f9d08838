import { runService } from "@ctx/config";
import { startCommandApp } from "./app.ts";
import { loadCommandConfig } from "./config.ts";

// Entry point: `node services/command/src/main.ts`. Configuration: see config.ts and docs/OPERATIONS.md.
await runService("command-service", loadCommandConfig, startCommandApp);
