import * as http from "node:http";
import * as http2 from "node:http2";
import { testAuth } from "@ctx/test-support";

/**
 * A client that puts exactly the bytes it is given on the wire, for each protocol our services
 * speak on one port, and reads back what a well-behaved client of that protocol would: the status
 * code, its message, and whether the response was well formed. Generated clients refuse to send
 * broken messages; an attacker's client does not.
 */

/** The protocols (and codecs) a call can use. */
export const Protocol = {
  grpc: "grpc",
  grpcWeb: "grpc-web",
  connectProto: "connect+proto",
  connectJson: "connect+json",
} as const;
export type Protocol = (typeof Protocol)[keyof typeof Protocol];
export const protocols: readonly Protocol[] = Object.values(Protocol);

/** gRPC's status codes by name, as the Connect protocol spells them in its JSON errors. */
const connectCodes: Readonly<Record<string, number>> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};

export interface RawReply {
  /** The gRPC status code (0 = OK), from wherever the protocol puts it. */
  readonly code: number;
  readonly message: string;
  /** Problems with the response's framing, headers or body: empty when well formed. */
  readonly malformed: readonly string[];
  /** The HTTP status. */
  readonly httpStatus: number;
}

export interface RawCall {
  /** `/package.Service/Method` */
  readonly path: string;
  readonly protocol: Protocol;
  /** The message bytes: protobuf, or JSON text for connect+json. */
  readonly body: Uint8Array;
  /** Server streaming: framed on the Connect protocol (application/connect+…). */
  readonly streaming?: boolean;
  /** Sent as the protocol's deadline header. */
  readonly timeoutMs: number;
  /** Over HTTP/1.1, as browsers and curl send it (gRPC-Web and Connect only). */
  readonly http1?: boolean;
}

/** Sends raw calls to a service. */
export interface RawClient {
  call(c: RawCall): Promise<RawReply>;
  close(): void;
}

/**
 * Each call on a connection of its own, so that a response that breaks the HTTP/2 session (a
 * protocol error) is blamed on the call that caused it and not on the calls beside it.
 */
export function rawClient(baseUrl: string): RawClient {
  const open = new Set<http2.ClientHttp2Session>();
  return {
    async call(c) {
      if (c.http1) return rawHttp1Call(baseUrl, c);
      const session = http2.connect(baseUrl);
      session.on("error", () => undefined);
      open.add(session);
      try {
        return await rawCall(session, c);
      } finally {
        open.delete(session);
        session.close();
      }
    },
    close() {
      for (const session of open) session.destroy();
    },
  };
}

/** The five-byte gRPC / Connect-streaming envelope around a message. */
export function frame(body: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

function requestHeaders(c: RawCall): http2.OutgoingHttpHeaders {
  const base = { ":method": "POST", ":path": c.path, authorization: testAuth().authorization };
  switch (c.protocol) {
    case "grpc":
      return {
        ...base,
        "content-type": "application/grpc+proto",
        te: "trailers",
        "grpc-timeout": `${c.timeoutMs}m`,
      };
    case "grpc-web":
      return {
        ...base,
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "grpc-timeout": `${c.timeoutMs}m`,
      };
    case "connect+proto":
    case "connect+json": {
      const codec = c.protocol === "connect+proto" ? "proto" : "json";
      return {
        ...base,
        "content-type": c.streaming ? `application/connect+${codec}` : `application/${codec}`,
        "connect-protocol-version": "1",
        "connect-timeout-ms": String(c.timeoutMs),
      };
    }
  }
}

function requestBody(c: RawCall): Uint8Array {
  return c.protocol === "grpc" || c.protocol === "grpc-web" || c.streaming ? frame(c.body) : c.body;
}

function rawCall(session: http2.ClientHttp2Session, c: RawCall): Promise<RawReply> {
  return new Promise((resolve) => {
    const stream = session.request(requestHeaders(c));
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    // A stream the test gives up on (a watch that keeps going) counts as what it said so far.
    const giveUp = setTimeout(
      () => stream.close(http2.constants.NGHTTP2_CANCEL),
      c.timeoutMs + 5_000,
    );
    stream.on("response", (h) => {
      headers = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (d: Buffer) => chunks.push(d));
    const done = (error?: Error) => {
      clearTimeout(giveUp);
      const body = Buffer.concat(chunks);
      resolve(interpret(c, headers, trailers, body, error));
    };
    stream.on("close", () => done());
    stream.on("error", (e) => done(e));
    stream.end(requestBody(c));
  });
}

/** One call over HTTP/1.1 on a connection of its own (the same reasons as above). */
function rawHttp1Call(baseUrl: string, c: RawCall): Promise<RawReply> {
  if (c.protocol === "grpc") throw new RangeError("gRPC needs HTTP/2");
  return new Promise((resolve) => {
    const { ":method": method, ":path": path, ...headers } = requestHeaders(c);
    const req = http.request(`${baseUrl}${String(path)}`, {
      method: String(method),
      headers,
      agent: false,
    });
    const chunks: Buffer[] = [];
    let answer: http2.IncomingHttpHeaders = {};
    let settled = false;
    const done = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(giveUp);
      resolve(interpret(c, answer, undefined, Buffer.concat(chunks), error));
    };
    const giveUp = setTimeout(() => {
      req.destroy();
      done();
    }, c.timeoutMs + 5_000);
    req.on("response", (res) => {
      answer = {
        ...res.headers,
        ":status": String(res.statusCode ?? 0),
      } as http2.IncomingHttpHeaders;
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => done());
      res.on("error", (e) => done(e));
    });
    req.on("error", (e) => done(e));
    req.end(requestBody(c));
  });
}

function interpret(
  c: RawCall,
  headers: http2.IncomingHttpHeaders,
  trailers: http2.IncomingHttpHeaders | undefined,
  body: Buffer,
  error: Error | undefined,
): RawReply {
  const httpStatus = Number(headers[":status"] ?? 0);
  const malformed: string[] = [];
  if (error) malformed.push(`stream error: ${error.message}`);
  if (httpStatus === 0) {
    return {
      code: -1,
      message: "no response headers",
      malformed: [...malformed, "no headers"],
      httpStatus,
    };
  }
  const length = headers["content-length"];
  if (length !== undefined && Number(length) !== body.length) {
    malformed.push(`content-length ${length} but ${body.length} bytes`);
  }
  switch (c.protocol) {
    case "grpc":
      return grpcStatus({ ...headers, ...trailers }, httpStatus, malformed);
    case "grpc-web":
      return grpcStatus({ ...headers, ...grpcWebTrailers(body, malformed) }, httpStatus, malformed);
    default:
      return c.streaming
        ? connectStreamStatus(body, httpStatus, malformed)
        : connectUnaryStatus(headers, body, httpStatus, malformed);
  }
}

function grpcStatus(
  h: Record<string, string | string[] | undefined>,
  httpStatus: number,
  malformed: string[],
): RawReply {
  const status = h["grpc-status"];
  if (typeof status !== "string" || !/^\d+$/.test(status)) {
    return {
      code: -1,
      message: "no grpc-status",
      malformed: [...malformed, "no grpc-status"],
      httpStatus,
    };
  }
  const message = decodeURIComponent(String(h["grpc-message"] ?? ""));
  return { code: Number(status), message, malformed, httpStatus };
}

/** gRPC-Web sends its trailers as the last frame of the body (flag 0x80). */
function grpcWebTrailers(body: Buffer, malformed: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    if (at + 5 > body.length) {
      malformed.push("truncated gRPC-Web frame header");
      break;
    }
    const flags = body[at] as number;
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) {
      malformed.push("truncated gRPC-Web frame");
      break;
    }
    if (flags & 0x80) {
      for (const line of body
        .subarray(at + 5, at + 5 + length)
        .toString("utf8")
        .split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0)
          out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    at += 5 + length;
  }
  return out;
}

function connectError(json: string, malformed: string[]): { code: number; message: string } {
  try {
    const e = JSON.parse(json) as { code?: unknown; message?: unknown };
    const code = typeof e.code === "string" ? connectCodes[e.code] : undefined;
    if (code === undefined) malformed.push(`unknown Connect error code ${String(e.code)}`);
    return { code: code ?? -1, message: typeof e.message === "string" ? e.message : "" };
  } catch {
    malformed.push("error body is not JSON");
    return { code: -1, message: json.slice(0, 200) };
  }
}

function connectUnaryStatus(
  headers: http2.IncomingHttpHeaders,
  body: Buffer,
  httpStatus: number,
  malformed: string[],
): RawReply {
  if (httpStatus === 200) return { code: 0, message: "", malformed, httpStatus };
  if (!String(headers["content-type"] ?? "").startsWith("application/json")) {
    malformed.push(`error with content-type ${String(headers["content-type"])}`);
  }
  return { ...connectError(body.toString("utf8"), malformed), malformed, httpStatus };
}

/** Connect streaming: envelopes; the one with flag 0x02 ends the stream with `{error?}`. */
function connectStreamStatus(body: Buffer, httpStatus: number, malformed: string[]): RawReply {
  if (httpStatus !== 200) {
    return { ...connectError(body.toString("utf8"), malformed), malformed, httpStatus };
  }
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at] as number;
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) break;
    if (flags & 0x02) {
      const end = JSON.parse(body.subarray(at + 5, at + 5 + length).toString("utf8")) as {
        error?: unknown;
      };
      if (end.error === undefined) return { code: 0, message: "", malformed, httpStatus };
      return { ...connectError(JSON.stringify(end.error), malformed), malformed, httpStatus };
    }
    at += 5 + length;
  }
  // No end-of-stream message: the test cancelled a stream that was still going (a live watch).
  return { code: 1, message: "cancelled by the test", malformed, httpStatus };
}
