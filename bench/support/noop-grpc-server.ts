// A gRPC server on node:http2 that does nothing: every unary call gets its own request message back
// with status 0. The query bench measures it with the same load generator and rate as GetContext,
// as the floor a Node HTTP/2 service has on the machine (its event loop, its collections, its
// wake-ups), so that GetContext's latency can be read against it.
//
// Run as a child process: `node bench/support/noop-grpc-server.ts`; prints `{"port":N}` on stdout
// once it listens on 127.0.0.1 (NOOP_PORT, default a free port); stops on SIGTERM or when its stdin
// ends (its parent died).
import * as http2 from "node:http2";
import { setFlagsFromString } from "node:v8";

// The services run with this flag (libs/config runService); the floor should not differ in it.
setFlagsFromString("--no-allocation-site-pretenuring");

const server = http2.createServer();
server.on("stream", (stream) => {
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc+proto" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(Buffer.concat(chunks));
  });
  stream.on("error", () => undefined);
});
server.listen(Number(process.env.NOOP_PORT ?? 0), "127.0.0.1", () => {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once("SIGTERM", stop);
// The bench holds stdin open; if it dies, stdin ends and the server goes too.
process.stdin.on("end", stop).resume();
