export type { ConfigProblem } from "./config-error.ts";
export { ConfigError, isConfigError } from "./config-error.ts";
export type { EventStreamConfig, StoresConfig } from "./load-config.ts";
export { env, eventStreamSchema, loadConfig, storesSchema } from "./load-config.ts";
export type { Logger, LoggerOptions } from "./logger.ts";
export { createLogger } from "./logger.ts";
