// The command service as a library, for tests and benchmarks that run it in-process.
export type { CommandApp } from "./app.ts";
export { startCommandApp } from "./app.ts";
export type { CommandConfig } from "./config.ts";
export { commandConfigSchema, eventStreamSettingsOf, loadCommandConfig } from "./config.ts";
