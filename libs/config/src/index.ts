export type { ConfigProblem } from "./config-error.ts";
export { ConfigError, isConfigError } from "./config-error.ts";
export type { EventStreamConfig, ReadModelConfig, StoresConfig } from "./load-config.ts";
export {
  env,
  eventStreamSchema,
  loadConfig,
  readModelSchema,
  storesSchema,
} from "./load-config.ts";
export type { Logger, LoggerOptions } from "./logger.ts";
export { createLogger } from "./logger.ts";
export type { StoppableService } from "./run-service.ts";
export { runService } from "./run-service.ts";
