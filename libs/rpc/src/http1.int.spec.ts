import { execFile } from "node:child_process";
import * as http from "node:http";
import * as net from "node:net";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { eventually, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, startTestServer, type TestServer } from "./testing/rpc-test-server.ts";

// Issue #24: HTTP/1.1 and HTTP/2 on one port. Browsers (Connect-Web, gRPC-Web), plain curl with
// JSON and `buf curl` with its default flags speak HTTP/1.1 to a cleartext address; gRPC clients
// speak HTTP/2 with prior knowledge. Both reach the same handlers, with the same bounds and codes.

const run = promisify(execFile);
const origin = "https://app.example.com";
const getContext = "/context.v1.ContextQueryService/GetContext";
const createContext = "/context.v1.ContextCommandService/CreateContext";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({
    corsOrigins: [origin],
    limits: {
      maxRequestBytes: 64 * 1024,
      handshakeTimeoutMs: 1_000,
      idleTimeoutMs: 1_500,
      requestReadTimeoutMs: 1_000,
    },
  });
});
afterAll(() => t.close());

interface Http1Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly httpVersion: string;
}

/** One HTTP/1.1 request on a connection of its own (no keep-alive), the whole answer. */
function http1(
  path: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer } = {},
): Promise<Http1Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: t.port,
        path,
        method: options.method ?? "POST",
        headers: options.headers ?? {},
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            httpVersion: res.httpVersion,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const json = (extra: http.OutgoingHttpHeaders = {}) => ({
  "content-type": "application/json",
  authorization: testAuth().authorization,
  ...extra,
});

describe("HTTP/1.1 on the gRPC port", () => {
  it("given plain JSON over HTTP/1.1 (curl's way), when it calls GetContext, then it gets the context as JSON", async () => {
    const answer = await http1(getContext, {
      headers: json(),
      body: JSON.stringify({ storyId: "s1" }),
    });
    expect(answer.httpVersion).toBe("1.1");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(answer.body)).toMatchObject({ context: { storyId: "s1" }, version: 1 });
  });

  it("given the curl binary with default flags, when it posts JSON, then the answer is the context", async () => {
    const { stdout } = await run("curl", [
      "--silent",
      "--show-error",
      "--fail-with-body",
      "-H",
      "content-type: application/json",
      "-H",
      `authorization: ${testAuth().authorization}`,
      "--data",
      JSON.stringify({ storyId: "from-curl" }),
      `${t.url}${getContext}`,
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ context: { storyId: "from-curl" } });
  });

  it("given buf curl with its default flags (Connect over HTTP/1.1), when it calls GetContext, then it prints the context", async () => {
    const { stdout } = await run(
      "buf",
      [
        "curl",
        "--schema",
        ".",
        "-H",
        `authorization: ${testAuth().authorization}`,
        "--data",
        JSON.stringify({ storyId: "from-buf" }),
        `${t.url}${getContext}`,
      ],
      { cwd: new URL("../../..", import.meta.url).pathname },
    );
    expect(JSON.parse(stdout)).toMatchObject({ context: { storyId: "from-buf" } });
  }, 60_000);

  for (const protocol of ["connect", "grpc-web"] as const) {
    for (const useBinaryFormat of [true, false]) {
      const format = useBinaryFormat ? "binary" : "JSON";
      it(`given ${protocol} (${format}) over HTTP/1.1, when it calls unary methods and a server stream, then each answers as over HTTP/2`, async () => {
        const tuning = { httpVersion: "1.1" as const, useBinaryFormat };
        const command = t.commandClient(protocol, tuning);
        const query = t.queryClient(protocol, tuning);
        const created = await command.createContext({ storyId: `h1-${protocol}`, title: "T" });
        expect(created.result?.version).toBe(1);
        const got = await query.getContext({ storyId: `h1-${protocol}-${format}` });
        expect(got.context?.storyId).toBe(`h1-${protocol}-${format}`);
        await expect(query.getContext({ storyId: "fail-known" })).rejects.toMatchObject({
          code: Code.NotFound,
        });
        // A server stream: its first message, then the client goes; the server sees it go.
        const storyId = `watch-${protocol}-${format}`;
        const watching = new AbortController();
        const updates = query.watchContext({ storyId }, { signal: watching.signal });
        const first = await updates[Symbol.asyncIterator]().next();
        expect(first.value?.state?.context?.storyId).toBe(storyId);
        watching.abort();
        await eventually(() => expect(t.watches.get(storyId)?.aborted).toBe(true));
      });
    }
  }

  it("given bytes that are no request message, when they come over HTTP/1.1, then the answer is INVALID_ARGUMENT, well formed", async () => {
    const answer = await http1(getContext, {
      headers: { ...json(), "content-type": "application/proto" },
      body: Buffer.from([0x0a, 0xff, 0xff, 0xff]),
    });
    expect(answer.status).toBe(400);
    expect(Number(answer.headers["content-length"])).toBe(Buffer.byteLength(answer.body));
    expect(JSON.parse(answer.body)).toMatchObject({ code: "invalid_argument" });
  });

  it("given a body over the server's limit, when it comes over HTTP/1.1, then the answer is RESOURCE_EXHAUSTED and the connection closes", async () => {
    const answer = await http1(getContext, {
      headers: json(),
      body: JSON.stringify({ storyId: "x".repeat(200 * 1024) }),
    });
    expect(JSON.parse(answer.body)).toMatchObject({ code: "resource_exhausted" });
    const client = t.queryClient("connect", { httpVersion: "1.1" });
    await expect(
      client.getContext({ storyId: "y".repeat(200 * 1024) }).catch((e) => {
        throw ConnectError.from(e);
      }),
    ).rejects.toMatchObject({ code: Code.ResourceExhausted });
  });

  it("given a connection that sends half a request head, then it is answered 408 and closed after the handshake timeout", async () => {
    const socket = net.connect(t.port, "127.0.0.1");
    const received: Buffer[] = [];
    socket.on("data", (c: Buffer) => received.push(c));
    socket.write(`POST ${getContext} HTTP/1.1\r\nHost: x\r\n`);
    await new Promise((resolve) => socket.once("close", resolve));
    expect(Buffer.concat(received).toString()).toMatch(/^HTTP\/1\.1 408/);
  });

  it("given a body that stops arriving, then the call is answered DEADLINE_EXCEEDED and the connection closes", async () => {
    const socket = net.connect(t.port, "127.0.0.1");
    let received = "";
    socket.on("data", (c: Buffer) => {
      received += c.toString();
    });
    const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(
      `POST ${getContext} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
        `authorization: ${testAuth().authorization}\r\ncontent-length: 100\r\n\r\n{"storyId":`,
    );
    await ended;
    expect(received).toMatch(/^HTTP\/1\.1 504/);
    expect(received).toContain('"code":"deadline_exceeded"');
  });

  it("given request headers over Node's 16 KiB, then the answer is 431 and the connection closes", async () => {
    const answer = await http1(getContext, {
      headers: json({ "x-padding": "p".repeat(20 * 1024) }),
      body: JSON.stringify({ storyId: "s1" }),
    });
    expect(answer.status).toBe(431);
  });

  it("given a keep-alive connection left idle, then the server closes it after the idle timeout", async () => {
    // A raw client: Node's agent would close an idle connection itself, before the server does.
    const socket = net.connect(t.port, "127.0.0.1");
    const received: Buffer[] = [];
    socket.on("data", (c: Buffer) => received.push(c));
    const ended = new Promise<number>((resolve) => socket.once("end", () => resolve(Date.now())));
    const body = JSON.stringify({ storyId: "keep-alive" });
    socket.write(
      `POST ${getContext} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
        `authorization: ${testAuth().authorization}\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    await eventually(() => expect(Buffer.concat(received).toString()).toContain("keep-alive"));
    const answered = Date.now();
    // The server ends the connection (FIN), not before the idle timeout (1.5 s here).
    expect(await ended).toBeGreaterThanOrEqual(answered + 1_000);
    socket.destroy();
  });

  it("given a connection that sends nothing, then it is closed after the handshake timeout and counted", async () => {
    const before = await t.metric("ctx_rpc_connections_closed_total", {
      reason: "handshake_timeout",
    });
    const socket = net.connect(t.port, "127.0.0.1");
    socket.on("error", () => undefined);
    await new Promise((resolve) => socket.once("close", resolve));
    expect(
      await t.metric("ctx_rpc_connections_closed_total", { reason: "handshake_timeout" }),
    ).toBe(before + 1);
  });
});

describe("CORS", () => {
  const preflightHeaders = (from: string) => ({
    origin: from,
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type,connect-protocol-version,authorization",
  });

  it("given a preflight from an allowed origin, then it is answered 204 with what Connect and gRPC-Web need", async () => {
    const answer = await http1(getContext, {
      method: "OPTIONS",
      headers: preflightHeaders(origin),
    });
    expect(answer.status).toBe(204);
    expect(answer.headers["access-control-allow-origin"]).toBe(origin);
    expect(answer.headers["access-control-allow-methods"]).toContain("POST");
    const allowed = String(answer.headers["access-control-allow-headers"])
      .toLowerCase()
      .split(", ");
    for (const header of [
      "content-type",
      "connect-protocol-version",
      "authorization",
      "x-grpc-web",
    ]) {
      expect(allowed).toContain(header);
    }
    expect(answer.headers.vary).toBe("Origin");
  });

  it("given a preflight over HTTP/2 (a browser on a TLS origin), then the answer is the same", async () => {
    const answer = await rawRequest(
      `${t.url}${getContext}`,
      { ":method": "OPTIONS", ...preflightHeaders(origin) },
      new Uint8Array(),
    );
    expect(answer.status).toBe(204);
    expect(answer.headers["access-control-allow-origin"]).toBe(origin);
  });

  it("given a preflight from another origin, then it is refused without allowing it", async () => {
    const answer = await http1(getContext, {
      method: "OPTIONS",
      headers: preflightHeaders("https://evil.example.com"),
    });
    expect(answer.status).toBe(403);
    expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("given a call from an allowed origin, then its answer lets the page read it and its status headers", async () => {
    const answer = await http1(createContext, {
      headers: json({ origin }),
      body: JSON.stringify({ storyId: "cors-story", title: "T" }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers["access-control-allow-origin"]).toBe(origin);
    const exposed = String(answer.headers["access-control-expose-headers"])
      .toLowerCase()
      .split(", ");
    expect(exposed).toEqual(
      expect.arrayContaining(["grpc-status", "grpc-message", "x-correlation-id"]),
    );
  });

  it("given a call from another origin, then its answer does not allow the page to read it", async () => {
    const answer = await http1(getContext, {
      headers: json({ origin: "https://evil.example.com" }),
      body: JSON.stringify({ storyId: "s1" }),
    });
    expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
  });
});

describe("closing the server", () => {
  it("given an idle keep-alive connection and one with a call in flight, then both close without waiting for the grace period", async () => {
    const server = await startTestServer();
    const raw = (body: string) =>
      `POST ${createContext} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `authorization: ${testAuth().authorization}\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    const open = (request: string) => {
      const socket = net.connect(server.port, "127.0.0.1");
      let received = "";
      socket.on("data", (c: Buffer) => {
        received += c.toString();
      });
      const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.write(request);
      return { received: () => received, ended };
    };
    // Idle: its call answered, the connection kept alive.
    const idle = open(raw(JSON.stringify({ storyId: "closing-idle", title: "T" })));
    await eventually(() => expect(idle.received()).toContain("keep-alive"));
    // In flight: a call the server holds until released.
    const busy = open(raw(JSON.stringify({ storyId: "closing-busy", title: "ignore" })));
    await eventually(() => expect(server.ignoring.count).toBe(1));
    // A grace period longer than the test: closing must not wait for it.
    const closed = server.server.close(600_000);
    await idle.ended;
    server.ignoring.release();
    await busy.ended;
    expect(busy.received()).toMatch(/^HTTP\/1\.1 200/);
    expect(busy.received().toLowerCase()).toContain("connection: close");
    await closed;
  });
});
