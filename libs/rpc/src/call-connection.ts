import * as http2 from "node:http2";
import {
  type ContextValues,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";

/** The HTTP/2 stream a call arrived on, as far as a handler may need it. */
export interface CallConnection {
  /**
   * The client's address as the server's socket sees it ("" when the socket is gone): what a limit
   * per client counts by until calls carry an authenticated principal.
   */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * Ends the call at once with RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients report as
   * RESOURCE_EXHAUSTED. Unlike an error thrown by the handler, this also ends a server stream
   * whose response waits on a client that stopped reading (HTTP/2 flow control), when no status
   * can be written any more: the call's signal is aborted and its writes fail.
   */
  shed(): void;
}

// The stream itself is stored (no object per call); callConnectionOf builds the view on demand.
const streamKey = createContextKey<http2.ServerHttp2Stream | undefined>(undefined, {
  description: "the HTTP/2 stream of the call",
});

/** The connection of the call being handled; undefined outside a server built by startRpcServer. */
export function callConnectionOf(ctx: Pick<HandlerContext, "values">): CallConnection | undefined {
  const stream = ctx.values.get(streamKey);
  if (stream === undefined) return undefined;
  const socket = stream.session?.socket;
  return {
    remoteAddress: socket?.remoteAddress ?? "",
    remotePort: socket?.remotePort ?? 0,
    shed() {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    },
  };
}

/** Context values that carry the call's stream (for the node adapter). */
export function callContextValues(stream: http2.ServerHttp2Stream): ContextValues {
  const values = createContextValues();
  values.set(streamKey, stream);
  return values;
}

/** The HTTP/2 stream of a call (for interceptors of this lib); undefined outside our server. */
export function callStreamOf(values: ContextValues): http2.ServerHttp2Stream | undefined {
  return values.get(streamKey);
}
