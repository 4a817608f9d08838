import type * as http from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import {
  type ContextValues,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";

/** The connection a call arrived on, as far as a handler may need it. */
export interface CallConnection {
  /**
   * The client's address as the server's socket sees it ("" when the socket is gone): what a limit
   * per client counts by until calls carry an authenticated principal.
   */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * Ends the call at once: over HTTP/2 with RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients
   * report as RESOURCE_EXHAUSTED; over HTTP/1.1 by closing the connection. Unlike an error thrown
   * by the handler, this also ends a server stream whose response waits on a client that stopped
   * reading (flow control), when no status can be written any more: the call's signal is aborted
   * and its writes fail.
   */
  shed(): void;
}

/** A call that arrived over HTTP/1.1: its request and response (see createNodeAdapter). */
export interface Http1Exchange {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
}

/** What a call arrived on: an HTTP/2 stream, or an HTTP/1.1 exchange. */
export type CallExchange = http2.ServerHttp2Stream | Http1Exchange;

// The exchange itself is stored (no object per call); callConnectionOf builds the view on demand.
const exchangeKey = createContextKey<CallExchange | undefined>(undefined, {
  description: "the HTTP/2 stream or HTTP/1.1 exchange of the call",
});

const isHttp1 = (exchange: CallExchange): exchange is Http1Exchange => "res" in exchange;

/** The connection of the call being handled; undefined outside a server built by startRpcServer. */
export function callConnectionOf(ctx: Pick<HandlerContext, "values">): CallConnection | undefined {
  const exchange = ctx.values.get(exchangeKey);
  if (exchange === undefined) return undefined;
  const socket = socketOf(exchange);
  return {
    remoteAddress: socket?.remoteAddress ?? "",
    remotePort: socket?.remotePort ?? 0,
    shed() {
      if (isHttp1(exchange)) {
        // HTTP/1.1 has no stream to reset: the connection goes, and the client sees it cut.
        exchange.res.destroy();
      } else if (!exchange.destroyed) {
        exchange.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      }
    },
  };
}

/** Context values that carry the call's stream or exchange (for the node adapter). */
export function callContextValues(exchange: CallExchange): ContextValues {
  const values = createContextValues();
  values.set(exchangeKey, exchange);
  return values;
}

/** The socket a call arrived on (for interceptors of this lib); undefined outside our server. */
export function callSocketOf(values: ContextValues): Socket | undefined {
  const exchange = values.get(exchangeKey);
  return exchange === undefined ? undefined : socketOf(exchange);
}

function socketOf(exchange: CallExchange): Socket | undefined {
  return isHttp1(exchange) ? exchange.req.socket : exchange.session?.socket;
}
