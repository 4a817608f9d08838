// The service shell: what every process of the context service does the same way: its NATS
// identity (credentials, TLS, its own reply inbox), its ops and gRPC listeners with their security,
// readiness and a graceful stop.

export type {
  NatsAuth,
  NatsConnectionConfig,
  NatsConnectionSettings,
} from "./nats-connection.ts";
export {
  connectNats,
  definesNatsConnection,
  describeAuth,
  isNatsConnectError,
  NatsConnectError,
  natsConnectionOf,
  natsConnectionSchema,
  natsConnectOptions,
  natsLoginVariables,
  prefixedNatsConnectionSchema,
} from "./nats-connection.ts";
export type {
  ServeRpcOptions,
  ServiceShell,
  ServiceShellOptions,
  ShellNatsOptions,
} from "./service-shell.ts";
export { openServiceShell } from "./service-shell.ts";
export type { WaitForProvisioningOptions } from "./wait-for-provisioning.ts";
export { waitForProvisioning } from "./wait-for-provisioning.ts";
