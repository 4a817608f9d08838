import { Counter, Gauge, type Registry } from "prom-client";

/** Why the server refused or shed a call (the `reason` label of ctx_rpc_refused_total). */
export const RefusalReason = {
  /** A request message over the limit (RPC_MAX_REQUEST_BYTES), before or after decompression. */
  requestTooLarge: "request_too_large",
  /** A response message over the limit (RPC_MAX_RESPONSE_BYTES): not sent. */
  responseTooLarge: "response_too_large",
  /** The turn budget's queue was full (RPC_MAX_QUEUED_CALLS). */
  queueFull: "queue_full",
  /** The request did not arrive in full within RPC_REQUEST_READ_TIMEOUT_MS. */
  readTimeout: "read_timeout",
  /** Bytes that are no valid request: bad framing, compression or protobuf. */
  malformed: "malformed_request",
  /** A connection beyond RPC_MAX_CONNECTIONS, closed as it arrived. */
  tooManyConnections: "too_many_connections",
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** Why the server closed a connection (the `reason` label of ctx_rpc_connections_closed_total). */
export const SessionCloseReason = {
  handshakeTimeout: "handshake_timeout",
  keepaliveTimeout: "keepalive_timeout",
  idleTimeout: "idle_timeout",
} as const;
export type SessionCloseReason = (typeof SessionCloseReason)[keyof typeof SessionCloseReason];

/** What the RPC server counts of the calls and connections it refuses or closes. */
export interface ServerMetrics {
  refused(reason: RefusalReason): void;
  sessionClosed(reason: SessionCloseReason): void;
}

/**
 * ctx_rpc_refused_total{reason}, ctx_rpc_connections_closed_total{reason} and
 * ctx_rpc_connections (open connections, read from `openSessions` when scraped).
 */
export function createServerMetrics(registry: Registry, openSessions: () => number): ServerMetrics {
  const refused = new Counter({
    name: "ctx_rpc_refused_total",
    help: "Calls and connections the RPC server refused or shed, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  const closed = new Counter({
    name: "ctx_rpc_connections_closed_total",
    help: "Connections the RPC server closed, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  new Gauge({
    name: "ctx_rpc_connections",
    help: "Open HTTP/2 connections of the RPC server",
    registers: [registry],
    collect() {
      this.set(openSessions());
    },
  });
  // Children made once (and so exported at 0 from the start): prom-client hashes labels per call.
  const refusedBy = new Map(
    Object.values(RefusalReason).map((r) => [r, refused.labels(r)] as const),
  );
  const closedBy = new Map(
    Object.values(SessionCloseReason).map((r) => [r, closed.labels(r)] as const),
  );
  return {
    refused: (reason) => refusedBy.get(reason)?.inc(),
    sessionClosed: (reason) => closedBy.get(reason)?.inc(),
  };
}
