// The query service as a library, for tests, benchmarks and the ctx CLI.
export type { QueryApp } from "./app.ts";
export { startQueryApp } from "./app.ts";
export type { QueryConfig } from "./config.ts";
export { loadQueryConfig, queryConfigSchema } from "./config.ts";
export { printContextAtTwoTimes } from "./demo.ts";
