import * as http2 from "node:http2";
import * as net from "node:net";
import { type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { eventually, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { frame } from "./support/raw-rpc.ts";

// Clients that open connections and then stall: half an HTTP/2 preface, a header block that never
// ends, a request body that never ends, a peer that stops answering pings. The service closes each
// of them within its configured timeouts (short ones here, so the test stays quick), and keeps
// serving everyone else.

const EACH = 100;

let s: QueryStack;
let baseUrl: string;
let port: number;
let queryHealthy: () => Promise<void>;

beforeAll(async () => {
  s = await startQueryStack();
  const q = await s.startQuery({
    RPC_HANDSHAKE_TIMEOUT_MS: "500",
    RPC_IDLE_TIMEOUT_MS: "1000",
    RPC_REQUEST_READ_TIMEOUT_MS: "1000",
    RPC_KEEPALIVE_INTERVAL_MS: "500",
    RPC_KEEPALIVE_TIMEOUT_MS: "500",
  });
  baseUrl = q.baseUrl;
  port = q.app.rpcPort;
  queryHealthy = async () => {
    await expect(q.client.getContext({ storyId: "no-such-story" })).rejects.toMatchObject({
      code: 5,
    });
  };
}, 120_000);

/** Whatever a test leaves open (when the service failed to close it) is closed before the stack stops. */
const leftOpen: { destroy(): void }[] = [];

afterAll(async () => {
  for (const c of leftOpen) c.destroy();
  await s?.stop();
});

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** One HTTP/2 frame: length, type, flags, stream id, payload. */
function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}
const SETTINGS = h2Frame(4, 0, 0, Buffer.alloc(0));
/** HEADERS on stream 1 with one indexed field (:method POST) and neither END_HEADERS nor END_STREAM. */
const HEADERS_WITHOUT_END = h2Frame(1, 0, 1, Buffer.from([0x83]));

/** Opens raw TCP connections, each sending `bytes` and then nothing; resolves how many are closed. */
async function stalled(count: number, bytes: Buffer): Promise<() => number> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect(port, "127.0.0.1", () => {
            socket.write(bytes);
            resolve(socket);
          });
          leftOpen.push(socket);
          socket.on("error", () => undefined);
          socket.once("error", reject);
          // What the server sends is read and dropped (a paused socket would not notice being
          // closed); nothing is ever answered: no SETTINGS acknowledgement, no PING reply.
          socket.resume();
          socket.on("close", () => {
            closed += 1;
          });
        }),
    ),
  );
  expect(sockets).toHaveLength(count);
  return () => closed;
}

describe("stalled connections", () => {
  it.each([
    ["half a preface", PREFACE.subarray(0, 10)],
    ["a preface and nothing else", PREFACE],
    ["a header block that never ends", Buffer.concat([PREFACE, SETTINGS, HEADERS_WITHOUT_END])],
  ])(`${EACH} clients that send %s are disconnected`, async (_what, bytes) => {
    const closedCount = await stalled(EACH, bytes);
    await eventually(() => expect(closedCount()).toBe(EACH), { timeout: 30_000 });
    await queryHealthy();
  });

  it(`${EACH} calls whose request body never ends are answered and closed`, async () => {
    const codes: string[] = [];
    let closed = 0;
    const sessions = Array.from({ length: EACH }, () => {
      const session = http2.connect(baseUrl);
      leftOpen.push(session);
      session.on("error", () => undefined);
      session.on("close", () => {
        closed += 1;
      });
      const req = session.request({
        ":method": "POST",
        ":path": "/context.v1.ContextQueryService/GetContext",
        "content-type": "application/grpc+proto",
        te: "trailers",
        authorization: testAuth().authorization,
      });
      req.on("error", () => undefined);
      req.on("trailers", (t) => codes.push(String(t["grpc-status"])));
      req.on("response", (h) => {
        if (h["grpc-status"] !== undefined) codes.push(String(h["grpc-status"]));
      });
      // A message announced as 100 bytes; 10 are sent, and the stream stays open.
      req.write(frame(Buffer.alloc(100)).subarray(0, 15));
      return session;
    });
    await eventually(() => expect(closed).toBe(EACH), { timeout: 30_000 });
    expect(sessions).toHaveLength(EACH);
    // Every call got a status, and none of them INTERNAL or UNKNOWN.
    expect(codes).toHaveLength(EACH);
    expect(codes.filter((c) => c === "13" || c === "2")).toEqual([]);
    await queryHealthy();
  });
});
