import * as http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { storyId } from "@ctx/domain";
import { ContextCommandService } from "@ctx/proto";
import { sendTestToken, stack, testAuth, uniqueName } from "@ctx/test-support";
import { type Deadline, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandHarness,
  call,
  encodeRequest,
  grpcMessage,
  type Message,
  resultOf,
  startCommandHarness,
  statusOf,
} from "./testing/command-harness.ts";

// The transport around the commands: bad bytes, deadlines, health, and the other two protocols the
// server speaks on the same port (Connect and gRPC-Web).

let h: CommandHarness;

beforeAll(async () => {
  h = await startCommandHarness({ natsUrl: stack().natsUrl });
});

afterAll(async () => {
  await h?.stop();
});

const createContextPath = "/context.v1.ContextCommandService/CreateContext";
const newStory = () => uniqueName("story");

/** The server still answers a normal call. */
async function stillServes(): Promise<void> {
  const story = newStory();
  const result = resultOf(await call(h.client, "CreateContext", { story_id: story, title: "T" }));
  expect(result.version).toBe(1);
}

/** Sends bytes as the request message, unserialized: what a broken client puts on the wire. */
function sendRawMessage(bytes: Buffer): Promise<{ code: status; message: string }> {
  return new Promise((resolve) => {
    h.client.makeUnaryRequest<Buffer, Buffer>(
      createContextPath,
      (b) => b,
      (b) => b,
      bytes,
      new Metadata(),
      {},
      (error: ServiceError | null) => {
        resolve(
          error
            ? { code: error.code, message: grpcMessage(error) }
            : { code: status.OK, message: "" },
        );
      },
    );
  });
}

const encodeCreateContext = (request: Message) => encodeRequest("CreateContext", request);

describe("malformed requests", () => {
  const garbage = [
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    // story_id (field 1, length-delimited) claiming 100 bytes, followed by 3.
    Buffer.from([0x0a, 0x64, 0x61, 0x62, 0x63]),
    // story_id holding bytes that are not UTF-8.
    Buffer.from([0x0a, 0x02, 0xc3, 0x28, 0x22, 0x01, 0x54]),
  ];

  it("fails a call whose bytes are not a protobuf message, then serves the next call", async () => {
    for (const bytes of garbage) {
      const reply = await sendRawMessage(bytes);
      expect(reply.message).toMatch(/^invalid request message: parse binary: /);
      expect([status.INVALID_ARGUMENT, status.INTERNAL]).toContain(reply.code);
      await stillServes();
    }
  });

  // Connect parses the request before any interceptor runs and reports a binary parse failure as
  // INTERNAL; libs/rpc's node adapter turns it into INVALID_ARGUMENT.
  it("answers INVALID_ARGUMENT to bytes that are not a protobuf message", async () => {
    for (const bytes of garbage) {
      const reply = await sendRawMessage(bytes);
      expect(reply.code, `${bytes.toString("hex")}: ${reply.message}`).toBe(
        status.INVALID_ARGUMENT,
      );
    }
  });

  it("ignores unknown fields, as proto3 requires", async () => {
    const story = newStory();
    const known = encodeCreateContext({ story_id: story, title: "T" });
    // Field 99, varint 1: a field a newer client might send.
    const withUnknown = Buffer.concat([known, Buffer.from([0x98, 0x06, 0x01])]);
    expect(await sendRawMessage(withUnknown)).toEqual({ code: status.OK, message: "" });
    expect(await h.store.read(storyId(story))).toHaveLength(1);
  });
});

describe("deadlines", () => {
  const withDeadline = (deadline: Deadline) =>
    call(h.client, "CreateContext", { story_id: newStory(), title: "T" }, { deadline });

  it("fails a call whose deadline has passed or is 1 ms away with DEADLINE_EXCEEDED", async () => {
    expect(statusOf(await withDeadline(Date.now() - 1_000)).code).toBe(status.DEADLINE_EXCEEDED);
    expect(statusOf(await withDeadline(Date.now() + 1)).code).toBe(status.DEADLINE_EXCEEDED);
    await stillServes();
  });

  it("answers DEADLINE_EXCEEDED itself when the grpc-timeout it got is too short", async () => {
    for (const timeout of ["1n", "999u"]) {
      const story = newStory();
      const body = encodeCreateContext({ story_id: story, title: "T" });
      const reply = await rawGrpc(h.address, createContextPath, body, { "grpc-timeout": timeout });
      expect(reply.status, `${timeout}: ${reply.message}`).toBe(String(status.DEADLINE_EXCEEDED));
      // A deadline under a millisecond has passed before the handler could start: nothing appended.
      expect(await h.store.read(storyId(story))).toHaveLength(0);
    }
    await stillServes();
  });
});

describe("grpc.health.v1", () => {
  const check = (service: string) => call(h.health, "Check", { service });

  it("reports SERVING for the server and for the command service", async () => {
    for (const service of ["", "context.v1.ContextCommandService"]) {
      const reply = await check(service);
      expect(reply.ok && reply.response).toEqual({ status: "SERVING" });
    }
    expect(statusOf(await check("no.such.Service")).code).toBe(status.NOT_FOUND);
  });
});

describe("Connect and gRPC-Web", () => {
  it("serve the same commands on the same port", async () => {
    const baseUrl = `http://${h.address}`;
    const sessions = new Http2SessionManager(baseUrl);
    try {
      const connect = createClient(
        ContextCommandService,
        createConnectTransport({
          baseUrl,
          httpVersion: "2",
          sessionManager: sessions,
          interceptors: [sendTestToken],
        }),
      );
      const grpcWeb = createClient(
        ContextCommandService,
        createGrpcWebTransport({
          baseUrl,
          httpVersion: "2",
          sessionManager: sessions,
          interceptors: [sendTestToken],
        }),
      );
      const story = newStory();

      const headers = new Headers({ "x-correlation-id": "connect-call" });
      const created = await connect.createContext(
        { storyId: story, title: "Over Connect" },
        { headers },
      );
      expect(created.result?.version).toBe(1);
      const added = await grpcWeb.addSubtask({
        storyId: story,
        expectedVersion: 1,
        subtaskId: "s",
        title: "Over gRPC-Web",
      });
      expect(added.result?.version).toBe(2);

      const stored = await h.store.read(storyId(story));
      expect(stored.map((e) => e.eventId)).toEqual([
        ...(created.result?.eventIds ?? []),
        ...(added.result?.eventIds ?? []),
      ]);
      expect(stored[0]?.envelope.correlationId).toBe("connect-call");

      // Errors keep their codes on both protocols.
      const again = await connect.createContext({ storyId: story, title: "Again" }).catch((e) => e);
      expect(ConnectError.from(again).code).toBe(Code.AlreadyExists);
      const stale = await grpcWeb
        .archiveContext({ storyId: story, expectedVersion: 1 })
        .catch((e) => e);
      expect(ConnectError.from(stale).code).toBe(Code.Aborted);
      expect(ConnectError.from(stale).metadata.get("x-actual-version")).toBe("2");
    } finally {
      sessions.abort();
    }
  });
});

/** One gRPC call over plain http2: status and message from the trailers (or trailers-only headers). */
function rawGrpc(
  address: string,
  path: string,
  message: Buffer,
  extraHeaders: Record<string, string>,
): Promise<{ status: string | undefined; message: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", reject);
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: testAuth().authorization,
      ...extraHeaders,
    });
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => {
      headers = h;
    });
    req.on("trailers", (t) => {
      headers = { ...headers, ...t };
    });
    req.on("data", () => undefined);
    req.on("end", () => {
      session.close();
      const value = (name: string) => {
        const v = headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const text = value("grpc-message");
      resolve({
        status: value("grpc-status"),
        message: text === undefined ? undefined : decodeURIComponent(text),
      });
    });
    req.on("error", reject);
    req.end(frame);
  });
}
