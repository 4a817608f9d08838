import type * as http2 from "node:http2";

export interface H2Client {
  /** One unary gRPC call: the request message's bytes in, the response message's bytes out. */
  unary(path: string, message: Uint8Array): Promise<Uint8Array>;
}

/**
 * A minimal gRPC client on one node:http2 session: a POST with the length-prefixed message, the
 * response message from the body and the status from `grpc-status` (trailers, or headers for a
 * trailers-only answer); anything but 0 fails the call. No compression, deadlines or retries: the
 * same calls on the wire as connect-node's client makes, for a fraction of its CPU, so that on a
 * shared machine the client takes less of the cores the service and NATS need.
 *
 * Like any client of a long-lived service it opens a new connection when the server has closed
 * the last one (the services close a connection idle for RPC_IDLE_TIMEOUT_MS, and the benches
 * open theirs minutes before they measure).
 */
export function h2Client(
  open: () => http2.ClientHttp2Session,
  /** The authorization header to send (the services run with authentication on). */
  authorization?: string,
): H2Client {
  let session: http2.ClientHttp2Session | undefined;
  const current = () => {
    if (session === undefined || session.closed || session.destroyed) session = open();
    return session;
  };
  return {
    unary(path, message) {
      const session = current();
      return new Promise((resolve, reject) => {
        const frame = Buffer.allocUnsafe(5 + message.byteLength);
        frame[0] = 0;
        frame.writeUInt32BE(message.byteLength, 1);
        frame.set(message, 5);
        const req = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc+proto",
          te: "trailers",
          ...(authorization ? { authorization } : {}),
        });
        const chunks: Buffer[] = [];
        let status: string | undefined;
        let statusMessage = "";
        const take = (h: http2.IncomingHttpHeaders) => {
          const s = h["grpc-status"];
          if (typeof s === "string") {
            status = s;
            statusMessage = decodeURIComponent(String(h["grpc-message"] ?? ""));
          }
        };
        req.on("response", take);
        req.on("trailers", take);
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("error", reject);
        req.on("close", () => {
          if (status !== "0") {
            reject(new Error(`gRPC status ${status ?? "missing"}: ${statusMessage}`));
            return;
          }
          const body = Buffer.concat(chunks);
          if (body.byteLength < 5 || body[0] !== 0) {
            reject(new Error("gRPC response without an uncompressed message"));
            return;
          }
          resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
        });
        req.end(frame);
      });
    },
  };
}
