// The service shell: what every process of the context service does the same way. For now, how it
// connects to NATS (credentials, TLS, its own reply inbox) from validated configuration.
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
  prefixedNatsConnectionSchema,
} from "./nats-connection.ts";
export type { WaitForProvisioningOptions } from "./wait-for-provisioning.ts";
export { waitForProvisioning } from "./wait-for-provisioning.ts";
