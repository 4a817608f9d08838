import * as http2 from "node:http2";
import { createGzip } from "node:zlib";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { frame, type Protocol, protocols } from "./support/raw-rpc.ts";

// Bodies no service should take in: a request that claims (and streams) a gigabyte, and a small
// compressed request that inflates to hundreds of megabytes. On every protocol the service stops
// reading at its request limit (4 MiB by default), answers RESOURCE_EXHAUSTED, and its memory
// does not grow with what the client sent.

const MiB = 2 ** 20;
const RESOURCE_EXHAUSTED = 8;

let s: QueryStack;
let command: Awaited<ReturnType<QueryStack["startCommand"]>>;
let query: Awaited<ReturnType<QueryStack["startQuery"]>>;
let commandUrl: string;
let queryUrl: string;

beforeAll(async () => {
  s = await startQueryStack();
  command = await s.startCommand();
  query = await s.startQuery();
  commandUrl = command.baseUrl;
  queryUrl = query.baseUrl;
}, 120_000);

afterAll(async () => {
  await s?.stop();
});

/** A gzip stream of `inflated` zero bytes: a few hundred KB on the wire. */
async function gzipBomb(inflated: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gzip.on("data", (d: Buffer) => out.push(d));
  const zeros = Buffer.alloc(MiB);
  for (let written = 0; written < inflated; written += MiB) {
    if (!gzip.write(zeros)) await new Promise((r) => gzip.once("drain", r));
  }
  await new Promise<void>((resolve) => gzip.end(resolve));
  return Buffer.concat(out);
}

interface Sent {
  /** The status the service answered with (-1: none). */
  readonly code: number;
  /** Bytes of the body the client got to send before the call ended. */
  readonly sent: number;
}

/**
 * Streams `total` bytes (the message prefix first, then zeros) to a unary method, with the headers
 * of the protocol, until the service answers or resets the stream; reads the status from wherever
 * the protocol puts it.
 */
function stream(
  baseUrl: string,
  path: string,
  protocol: Protocol,
  prefix: Uint8Array,
  total: number,
  extraHeaders: http2.OutgoingHttpHeaders = {},
): Promise<Sent> {
  const contentType: Record<Protocol, string> = {
    grpc: "application/grpc+proto",
    "grpc-web": "application/grpc-web+proto",
    "connect+proto": "application/proto",
    "connect+json": "application/json",
  };
  return new Promise((resolve) => {
    const session = http2.connect(baseUrl);
    session.on("error", () => undefined);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      authorization: testAuth().authorization,
      "content-type": contentType[protocol],
      ...(protocol === "grpc" ? { te: "trailers" } : {}),
      ...(protocol.startsWith("connect") ? { "connect-protocol-version": "1" } : {}),
      ...extraHeaders,
    });
    let sent = 0;
    let ended = false;
    let status: http2.IncomingHttpHeaders = {};
    const body: Buffer[] = [];
    req.on("response", (h) => {
      status = { ...status, ...h };
    });
    req.on("trailers", (t) => {
      status = { ...status, ...t };
    });
    req.on("data", (d: Buffer) => body.push(d));
    req.on("error", () => undefined);
    req.on("close", () => {
      ended = true;
      session.close();
      resolve({ code: codeOf(protocol, status, Buffer.concat(body)), sent });
    });
    const chunk = Buffer.alloc(MiB);
    const pump = async () => {
      const first = Buffer.from(prefix);
      req.write(first);
      sent += first.length;
      while (!ended && sent < total) {
        const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += piece.length;
        if (!req.write(piece)) {
          await new Promise<void>((r) => {
            const go = () => {
              req.off("drain", go);
              req.off("close", go);
              r();
            };
            req.once("drain", go);
            req.once("close", go);
          });
        }
      }
      if (!ended) req.end();
    };
    void pump();
  });
}

function codeOf(protocol: Protocol, h: http2.IncomingHttpHeaders, body: Buffer): number {
  if (protocol === "grpc") return Number(h["grpc-status"] ?? -1);
  if (protocol === "grpc-web") {
    if (h["grpc-status"] !== undefined) return Number(h["grpc-status"]);
    const match = /grpc-status:\s*(\d+)/.exec(body.toString("latin1"));
    return match ? Number(match[1]) : -1;
  }
  if (Number(h[":status"]) === 200) return 0;
  try {
    const code = (JSON.parse(body.toString("utf8")) as { code?: string }).code;
    return code === "resource_exhausted" ? RESOURCE_EXHAUSTED : code ? 100 : -1;
  } catch {
    return -1;
  }
}

const createContext = "/context.v1.ContextCommandService/CreateContext";
const getContext = "/context.v1.ContextQueryService/GetContext";

describe("a request body beyond the limit", () => {
  it.each(protocols)("streamed over %s is refused before it is read whole", async (protocol) => {
    const claimed = 1_000 * MiB;
    // gRPC and gRPC-Web announce the message length first; Connect unary sends a content-length.
    const framed = protocol === "grpc" || protocol === "grpc-web";
    const prefix = framed ? frame(new Uint8Array(0)).subarray(0, 5) : new Uint8Array(0);
    if (framed) new DataView(prefix.buffer, prefix.byteOffset).setUint32(1, claimed);
    const rssBefore = process.memoryUsage().rss;
    const { code, sent } = await stream(
      commandUrl,
      createContext,
      protocol,
      prefix,
      64 * MiB,
      framed ? {} : { "content-length": String(claimed) },
    );
    expect(code).toBe(RESOURCE_EXHAUSTED);
    expect(sent).toBeLessThan(64 * MiB);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(48 * MiB);
  });
});

describe("a compressed request that inflates beyond the limit", () => {
  let bomb: Buffer;
  beforeAll(async () => {
    bomb = await gzipBomb(256 * MiB);
  });

  it.each(protocols)("over %s is refused as it inflates", async (protocol) => {
    expect(bomb.length).toBeLessThan(1 * MiB);
    const framed = protocol === "grpc" || protocol === "grpc-web";
    const headers: http2.OutgoingHttpHeaders = framed
      ? { "grpc-encoding": "gzip" }
      : { "content-encoding": "gzip" };
    const body = framed ? frame(bomb, 1) : bomb;
    const rssBefore = process.memoryUsage().rss;
    const { code } = await stream(queryUrl, getContext, protocol, body, body.length, headers);
    expect(code).toBe(RESOURCE_EXHAUSTED);
    // Inflating the whole body would take 256 MiB.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MiB);
  });
});

describe("after the abuse", () => {
  it("both services still answer", async () => {
    const story = newStory();
    await command.client.createContext({ storyId: story, title: "after" });
    await s.project(story);
    expect((await query.client.getContext({ storyId: story })).version).toBe(1);
  });
});
