export type { CallConnection } from "./call-connection.ts";
export { callConnectionOf } from "./call-connection.ts";
export type { Correlation } from "./correlation.ts";
// For sibling libs and tests.
export { correlationHeaders, correlationInterceptor, correlationOf } from "./correlation.ts";
export { errorInterceptor } from "./error-edge.ts";
export type { ErrorClassifier } from "./errors.ts";
export type { HealthRegistry } from "./health.ts";
export { createHealthRegistry, registerHealthService, ServingStatus } from "./health.ts";
export type { RpcLimits } from "./limits.ts";
export { defaultRpcLimits, rpcLimitsOf } from "./limits.ts";
export { metricsInterceptor } from "./metrics.ts";
export type { OpsServer, OpsServerOptions } from "./ops-server.ts";
export { startOpsServer } from "./ops-server.ts";
export type { Reflection } from "./reflection.ts";
export { createReflection, registerReflectionService } from "./reflection.ts";
export type { RpcServer, RpcServerOptions } from "./rpc-server.ts";
export { startRpcServer } from "./rpc-server.ts";
export { turnBudgetInterceptor } from "./turn-budget.ts";
