export type { ConfigProblem } from "./config-error.ts";
export { ConfigError, isConfigError } from "./config-error.ts";
export type { FileValue } from "./file-env.ts";
export { fileEnv } from "./file-env.ts";
export type {
  EventStreamConfig,
  ReadModelConfig,
  RpcServerConfig,
  StoresConfig,
} from "./load-config.ts";
export {
  defaultCallsPerTurn,
  env,
  eventStreamSchema,
  loadConfig,
  readModelSchema,
  rpcServerDefaults,
  rpcServerSchema,
  splitUrls,
  storesSchema,
} from "./load-config.ts";
export type { Logger, LoggerOptions } from "./logger.ts";
export { createLogger } from "./logger.ts";
export type {
  AuthMode,
  OpsListenerConfig,
  ReflectionAccess,
  RpcSecurityConfig,
} from "./rpc-security-schema.ts";
export {
  authModes,
  checkOpsListener,
  checkRpcSecurity,
  opsListenerSchema,
  reflectionAccess,
  rpcSecuritySchema,
} from "./rpc-security-schema.ts";
export type { StoppableService } from "./run-service.ts";
export { runService } from "./run-service.ts";
export { untilAborted } from "./until-aborted.ts";
