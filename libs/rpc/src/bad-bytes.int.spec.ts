import { gzipSync } from "node:zlib";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { UInt32ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import { testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bearer,
  connectErrorOf,
  envelope,
  grpcStatusOf,
  grpcWebStatusOf,
  type Protocol,
  protocols,
  type RawAnswer,
  rawRequest,
  startTestServer,
  type TestServer,
} from "./testing/rpc-test-server.ts";

// Defect 11 of issue #20: gRPC-Web with malformed protobuf was answered grpc-status 13, and
// Connect's rewritten 400 kept the old content-length (the client saw a protocol error). Bad bytes
// are the caller's fault: INVALID_ARGUMENT with a clear message, in a well-formed answer, on every
// protocol; an unsupported compression is UNIMPLEMENTED, as the gRPC compression spec asks.

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(() => t.close());

const createContextPath = "/context.v1.ContextCommandService/CreateContext";

/**
 * A method like `method` whose client sends a google.protobuf.UInt32Value instead: field 1 as a
 * varint, where the server reads a string (story_id). What a client built from another version of
 * the proto, or a broken one, puts on the wire.
 */
function withWrongInput<M extends DescMethod>(service: DescService, method: M): DescService {
  const wrong = { ...method, input: UInt32ValueSchema } as unknown as DescMethod;
  return {
    ...service,
    methods: [wrong],
    method: { [method.localName]: wrong },
  } as unknown as DescService;
}

const wrongCreate = withWrongInput(
  ContextCommandService,
  ContextCommandService.method.createContext,
);
const wrongWatch = withWrongInput(ContextQueryService, ContextQueryService.method.watchContext);

function transportFor(protocol: Protocol, binary: boolean, sessions: Http2SessionManager) {
  const options = {
    baseUrl: t.url,
    sessionManager: sessions,
    useBinaryFormat: binary,
    interceptors: [bearer(testAuth().authorization)],
  };
  if (protocol === "grpc") return createGrpcTransport(options);
  if (protocol === "grpc-web") return createGrpcWebTransport({ ...options, httpVersion: "2" });
  return createConnectTransport({ ...options, httpVersion: "2" });
}

async function failure(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

describe("a message that is not the method's input", () => {
  for (const protocol of protocols) {
    for (const binary of [true, false]) {
      const name = `${protocol} ${binary ? "proto" : "JSON"}`;
      it(`given ${name}, when the bytes are no valid request, then the caller gets INVALID_ARGUMENT, unary and streaming`, async () => {
        const sessions = new Http2SessionManager(t.url);
        try {
          const transport = transportFor(protocol, binary, sessions);
          const unary = createClient(wrongCreate, transport) as unknown as {
            createContext(req: { value: number }): Promise<unknown>;
          };
          const watch = createClient(wrongWatch, transport) as unknown as {
            watchContext(req: { value: number }): AsyncIterable<unknown>;
          };
          const unaryError = await failure(() => unary.createContext({ value: 7 }));
          expect(unaryError.code, `${name} unary: ${unaryError.message}`).toBe(
            Code.InvalidArgument,
          );
          if (binary) expect(unaryError.rawMessage).toMatch(/^invalid request message: /);
          const streamError = await failure(async () => {
            for await (const _ of watch.watchContext({ value: 7 })) {
              // No message arrives: the request cannot be read.
            }
          });
          expect(streamError.code, `${name} stream: ${streamError.message}`).toBe(
            Code.InvalidArgument,
          );
        } finally {
          sessions.abort();
        }
      });
    }
  }

  it("counts what it refused as malformed, and logs none of it as unexpected", async () => {
    expect(
      await t.metric("ctx_rpc_refused_total", { reason: "malformed_request" }),
    ).toBeGreaterThanOrEqual(6);
    expect(t.logged).toEqual([]);
  });
});

/** A raw request to CreateContext on one protocol; the status as that protocol carries it. */
async function send(
  protocol: Protocol,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ code: number | string | undefined; message: string; answer: RawAnswer }> {
  const contentType = {
    grpc: "application/grpc+proto",
    "grpc-web": "application/grpc-web+proto",
    connect: "application/proto",
  }[protocol];
  const answer = await rawRequest(
    t.url,
    {
      ":path": createContextPath,
      "content-type": contentType,
      ...(protocol === "grpc" ? { te: "trailers" } : {}),
      ...(protocol === "connect" ? { "connect-protocol-version": "1" } : {}),
      ...headers,
    },
    body,
  );
  if (protocol === "grpc") return { ...grpcStatusOf(answer), answer };
  if (protocol === "grpc-web") return { ...grpcWebStatusOf(answer.body), answer };
  if (answer.status === 200) return { code: "ok", message: "", answer };
  const error = connectErrorOf(answer);
  return { code: error.code, message: error.message ?? "", answer };
}

/** The status each protocol uses for a code. */
const invalid = {
  grpc: Code.InvalidArgument,
  "grpc-web": Code.InvalidArgument,
  connect: "invalid_argument",
};

describe("bad envelopes and frames", () => {
  const message = Buffer.from([0x0a, 0x01, 0x73, 0x22, 0x01, 0x54]); // story_id "s", title "T"

  it("given an envelope whose body ends early, then INVALID_ARGUMENT on gRPC (both paths) and gRPC-Web", async () => {
    for (const protocol of ["grpc", "grpc-web"] as const) {
      // Three bytes of a five-byte prefix; a prefix announcing 100 bytes followed by 3.
      for (const body of [
        Buffer.from([0, 0, 0]),
        Buffer.concat([envelope(Buffer.alloc(100)).subarray(0, 5), Buffer.alloc(3)]),
      ]) {
        for (const headers of [{}, { "grpc-encoding": "gzip" }]) {
          const { code, message: text } = await send(protocol, body, headers);
          expect(
            code,
            `${protocol} ${body.toString("hex")} ${JSON.stringify(headers)}: ${text}`,
          ).toBe(Code.InvalidArgument);
        }
      }
    }
  });

  it("given no message or two for a unary method, then INVALID_ARGUMENT", async () => {
    for (const protocol of ["grpc", "grpc-web"] as const) {
      for (const body of [Buffer.alloc(0), Buffer.concat([envelope(message), envelope(message)])]) {
        for (const headers of [{}, { "grpc-encoding": "gzip" }]) {
          const { code, message: text } = await send(protocol, body, headers);
          expect(
            code,
            `${protocol} ${body.byteLength} bytes ${JSON.stringify(headers)}: ${text}`,
          ).toBe(Code.InvalidArgument);
          expect(text).toMatch(/message/);
        }
      }
    }
  });

  it("given a message flagged compressed in a request that names no compression, then INVALID_ARGUMENT", async () => {
    for (const protocol of ["grpc", "grpc-web"] as const) {
      const { code, message: text } = await send(protocol, envelope(gzipSync(message), 1));
      expect(code, `${protocol}: ${text}`).toBe(Code.InvalidArgument);
      expect(text).toMatch(/compressed, but the request names no compression/);
    }
  });

  it("given bytes that are no protobuf message, then INVALID_ARGUMENT in a well-formed answer on every protocol", async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (const protocol of protocols) {
      const body = protocol === "connect" ? garbage : envelope(garbage);
      const { code, message: text, answer } = await send(protocol, body);
      expect(code, `${protocol}: ${text}`).toBe(invalid[protocol]);
      expect(text).toMatch(/^invalid request message: parse binary: /);
      if (protocol === "connect") expect(answer.status).toBe(400);
    }
  });
});

describe("compression", () => {
  const message = Buffer.from([0x0a, 0x01, 0x73, 0x22, 0x01, 0x54]);
  const gzipped = gzipSync(message);
  const corrupt: [string, Buffer][] = [
    ["not gzip at all", Buffer.from("definitely not gzip")],
    ["cut short", gzipped.subarray(0, gzipped.byteLength - 6)],
  ];

  it("given a corrupt gzip message, then INVALID_ARGUMENT on every protocol", async () => {
    for (const protocol of protocols) {
      for (const [what, bytes] of corrupt) {
        const body = protocol === "connect" ? bytes : envelope(bytes, 1);
        const header = protocol === "connect" ? "content-encoding" : "grpc-encoding";
        const { code, message: text } = await send(protocol, body, { [header]: "gzip" });
        expect(code, `${protocol}, ${what}: ${text}`).toBe(invalid[protocol]);
      }
    }
  });

  it("given an encoding the server does not support, then UNIMPLEMENTED naming the ones it does", async () => {
    for (const protocol of ["grpc", "grpc-web"] as const) {
      const { code, message: text } = await send(protocol, envelope(message, 1), {
        "grpc-encoding": "snappy",
      });
      expect(code, `${protocol}: ${text}`).toBe(Code.Unimplemented);
      expect(text).toMatch(/"snappy": supported encodings are gzip/);
    }
    const { code } = await send("connect", message, { "content-encoding": "snappy" });
    expect(code).toBe("unimplemented");
  });

  it("given a well-formed gzip request, then it is served", async () => {
    for (const protocol of protocols) {
      const body = protocol === "connect" ? gzipped : envelope(gzipped, 1);
      const header = protocol === "connect" ? "content-encoding" : "grpc-encoding";
      const { answer } = await send(protocol, body, { [header]: "gzip" });
      if (protocol === "connect") expect(answer.status, protocol).toBe(200);
      else if (protocol === "grpc") expect(grpcStatusOf(answer).code, protocol).toBe(0);
      else expect(grpcWebStatusOf(answer.body).code, protocol).toBe(0);
    }
  });
});
