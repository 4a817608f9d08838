export type { ConfigProblem } from "./config-error.ts";
export { ConfigError, isConfigError } from "./config-error.ts";
export type { StoresConfig } from "./load-config.ts";
export { env, loadConfig, storesSchema } from "./load-config.ts";
export type { Logger, LoggerOptions } from "./logger.ts";
export { createLogger } from "./logger.ts";
