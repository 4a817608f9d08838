import { type RpcServerConfig, rpcServerDefaults } from "@ctx/config";

/**
 * The bounds of an RPC server: sizes, times and counts. Each has a setting (RPC_*, see
 * `rpcServerSchema` in @ctx/config), a default, and a row in docs/OPERATIONS.md ("Limits", RPC
 * server) that says what a caller sees when it is reached.
 */
export interface RpcLimits {
  /** Largest request message, counted after decompression; larger: RESOURCE_EXHAUSTED. */
  readonly maxRequestBytes: number;
  /** Largest response message; larger is not sent: RESOURCE_EXHAUSTED. */
  readonly maxResponseBytes: number;
  /** Longest deadline of a unary call, and the deadline of one that sends none. */
  readonly maxDeadlineMs: number;
  /** Longest deadline of a streaming call (0: none). */
  readonly maxStreamDeadlineMs: number;
  /** Time for a one-message request (unary, server stream) to arrive in full. */
  readonly requestReadTimeoutMs: number;
  /** Calls waiting for a turn before new ones are shed (UNAVAILABLE). */
  readonly maxQueuedCalls: number;
  /** HTTP/2 streams a connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Open connections; more are closed as they arrive. */
  readonly maxConnections: number;
  /** Time a connection has to send its HTTP/2 preface and SETTINGS. */
  readonly handshakeTimeoutMs: number;
  /** A connection without calls this long is closed with GOAWAY (0: never). */
  readonly idleTimeoutMs: number;
  /** How often every connection is pinged (0: never). */
  readonly keepaliveIntervalMs: number;
  /** A ping unanswered this long closes its connection. */
  readonly keepaliveTimeoutMs: number;
}

/** The defaults, as documented (the same as the RPC_* settings' defaults). */
export const defaultRpcLimits: RpcLimits = rpcServerDefaults;

/** The limits a service's validated RPC_* settings give. */
export function rpcLimitsOf(config: RpcServerConfig): RpcLimits {
  return {
    maxRequestBytes: config.RPC_MAX_REQUEST_BYTES,
    maxResponseBytes: config.RPC_MAX_RESPONSE_BYTES,
    maxDeadlineMs: config.RPC_MAX_DEADLINE_MS,
    maxStreamDeadlineMs: config.RPC_MAX_STREAM_DEADLINE_MS,
    requestReadTimeoutMs: config.RPC_REQUEST_READ_TIMEOUT_MS,
    maxQueuedCalls: config.RPC_MAX_QUEUED_CALLS,
    maxConcurrentStreams: config.RPC_MAX_CONCURRENT_STREAMS,
    maxConnections: config.RPC_MAX_CONNECTIONS,
    handshakeTimeoutMs: config.RPC_HANDSHAKE_TIMEOUT_MS,
    idleTimeoutMs: config.RPC_IDLE_TIMEOUT_MS,
    keepaliveIntervalMs: config.RPC_KEEPALIVE_INTERVAL_MS,
    keepaliveTimeoutMs: config.RPC_KEEPALIVE_TIMEOUT_MS,
  };
}

/** Which limits may be 0 (off); every other one is a whole number ≥ 1. */
const mayBeOff: ReadonlySet<keyof RpcLimits> = new Set([
  "maxStreamDeadlineMs",
  "idleTimeoutMs",
  "keepaliveIntervalMs",
]);

/** The defaults with `given` over them, checked (a RangeError names a bad one). */
export function resolveRpcLimits(given: Partial<RpcLimits> = {}): RpcLimits {
  const limits = { ...defaultRpcLimits, ...given };
  for (const [name, value] of Object.entries(limits) as [keyof RpcLimits, number][]) {
    const min = mayBeOff.has(name) ? 0 : 1;
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(`RPC limit ${name} must be a whole number ≥ ${min}, not ${value}`);
    }
  }
  return limits;
}
