import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import { testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "./testing/rpc-test-server.ts";

// Issue #24: the generic gRPC client people reach for first, grpcurl, against the same server as
// the services run it (cleartext HTTP/2 with prior knowledge, bearer tokens, server reflection).
// curl and `buf curl` are in http1.int.spec.ts. grpcurl is built by `make test` (scripts/go-tool.sh).

const run = promisify(execFile);
const grpcurl = new URL("../../../.tools/bin/grpcurl", import.meta.url).pathname;

let t: TestServer;
beforeAll(async () => {
  if (!existsSync(grpcurl)) {
    throw new Error(`${grpcurl} is missing: make test builds it (or: make .tools/bin/grpcurl)`);
  }
  t = await startTestServer({ reflection: [ContextCommandService, ContextQueryService] });
});
afterAll(() => t?.close());

const address = () => `127.0.0.1:${t.port}`;
const auth = () => ["-H", `authorization: ${testAuth().authorization}`];

describe("grpcurl", () => {
  it("given reflection and a token, when it lists the services, then both are there", async () => {
    const { stdout } = await run(grpcurl, ["-plaintext", ...auth(), address(), "list"]);
    expect(stdout.split("\n")).toEqual(
      expect.arrayContaining([
        "context.v1.ContextCommandService",
        "context.v1.ContextQueryService",
      ]),
    );
  });

  it("given reflection and a token, when it calls GetContext with JSON, then it prints the context", async () => {
    const { stdout } = await run(grpcurl, [
      "-plaintext",
      ...auth(),
      "-d",
      JSON.stringify({ story_id: "from-grpcurl" }),
      address(),
      "context.v1.ContextQueryService/GetContext",
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ context: { storyId: "from-grpcurl" } });
  });

  it("given no token, when it calls, then it reports Unauthenticated and exits non-zero", async () => {
    const failed = await run(grpcurl, [
      "-plaintext",
      "-d",
      JSON.stringify({ story_id: "s" }),
      address(),
      "context.v1.ContextQueryService/GetContext",
    ]).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(failed?.code).not.toBe(0);
    expect(failed?.stderr).toContain("Unauthenticated");
  });
});
