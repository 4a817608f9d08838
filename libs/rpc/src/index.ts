export type { Access, AccessPolicy, ServiceRule } from "./access-policy.ts";
export { createAccessPolicy } from "./access-policy.ts";
export { AuthFailure, AuthFailureReason, isAuthFailure } from "./auth-failure.ts";
export type { Authenticator, AuthenticatorOptions, Credentials } from "./authenticator.ts";
export { createAuthenticator } from "./authenticator.ts";
export type { CallConnection } from "./call-connection.ts";
export { callConnectionOf } from "./call-connection.ts";
export type { Correlation } from "./correlation.ts";
// For sibling libs and tests.
export {
  adoptCorrelationId,
  correlationHeaders,
  correlationInterceptor,
  correlationOf,
} from "./correlation.ts";
export { errorInterceptor } from "./error-edge.ts";
export type { ErrorClassifier } from "./errors.ts";
export type { HealthRegistry } from "./health.ts";
export { createHealthRegistry, registerHealthService, ServingStatus } from "./health.ts";
export type { JwtVerifier, JwtVerifierOptions } from "./jwt-verifier.ts";
export { createJwtVerifier, defaultJwtAlgorithms } from "./jwt-verifier.ts";
export type { RpcLimits } from "./limits.ts";
export { defaultRpcLimits, rpcLimitsOf } from "./limits.ts";
export { metricsInterceptor } from "./metrics.ts";
export type { OpsServer, OpsServerOptions } from "./ops-server.ts";
export { startOpsListeners, startOpsServer } from "./ops-server.ts";
export type { Principal } from "./principal.ts";
export { principalOf, Role } from "./principal.ts";
export type { Reflection } from "./reflection.ts";
export { createReflection, registerReflectionService } from "./reflection.ts";
export type { OpsSecurity, RpcSecurity } from "./rpc-security.ts";
export { loadOpsSecurity, loadRpcSecurity } from "./rpc-security.ts";
export type { RpcAuth, RpcServer, RpcServerOptions, RpcTls } from "./rpc-server.ts";
export { startRpcServer } from "./rpc-server.ts";
export { turnBudgetInterceptor } from "./turn-budget.ts";
