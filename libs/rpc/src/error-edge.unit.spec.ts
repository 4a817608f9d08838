import {
  Code,
  ConnectError,
  createContextValues,
  type StreamResponse,
  type UnaryRequest,
} from "@connectrpc/connect";
import { createLogger } from "@ctx/config";
import { ContextQueryService } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { errorInterceptor } from "./error-edge.ts";
import type { ErrorClassifier } from "./errors.ts";

// The error edge is the one place where errors become status codes, for unary calls and for
// streams alike, and it keeps what caused them.

class StoryGone extends Error {
  override readonly name = "StoryGone";
}

const classify: ErrorClassifier = (e) =>
  e instanceof StoryGone ? new ConnectError(e.message, Code.NotFound) : undefined;

function edge() {
  const logged: { err: unknown; msg: string }[] = [];
  const logger = createLogger({ name: "error-edge-spec", level: "silent" });
  logger.error = ((obj: { err: unknown }, msg: string) => {
    logged.push({ err: obj.err, msg });
  }) as typeof logger.error;
  return { interceptor: errorInterceptor(classify, logger), logged };
}

const method = ContextQueryService.method.watchContext;
const request = {
  method,
  service: ContextQueryService,
  contextValues: createContextValues(),
  header: new Headers(),
  signal: new AbortController().signal,
} as unknown as UnaryRequest;

async function unaryFailure(thrown: unknown) {
  const { interceptor, logged } = edge();
  const call = interceptor(async () => {
    throw thrown;
  });
  try {
    await call(request);
  } catch (e) {
    return { error: e as ConnectError, logged };
  }
  throw new Error("the call succeeded");
}

/** A stream that yields one message and then fails with `thrown`, read through the edge. */
async function streamFailure(thrown: unknown) {
  const { interceptor, logged } = edge();
  async function* messages() {
    yield { first: true };
    throw thrown;
  }
  const call = interceptor(
    async () => ({ stream: true, message: messages() }) as unknown as StreamResponse,
  );
  const res = (await call(request)) as unknown as StreamResponse;
  const received: unknown[] = [];
  try {
    for await (const m of res.message) received.push(m);
  } catch (e) {
    return { error: e as ConnectError, logged, received };
  }
  throw new Error("the stream ended without an error");
}

describe("errorInterceptor", () => {
  it("given a unary call that fails with an error the service knows, then its code, and the cause kept", async () => {
    const cause = new StoryGone("story s is gone");
    const { error, logged } = await unaryFailure(cause);
    expect(error.code).toBe(Code.NotFound);
    expect(error.cause).toBe(cause);
    expect(logged).toEqual([]);
  });

  it("given a unary call that fails with an unknown error, then INTERNAL without details, logged with its cause", async () => {
    const cause = new Error("a bug");
    const { error, logged } = await unaryFailure(cause);
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).not.toMatch(/a bug/);
    expect(error.cause).toBe(cause);
    expect(logged).toEqual([{ err: cause, msg: "unexpected error" }]);
  });

  it("given a stream that fails after its first message with an error the service knows, then its code, and the cause kept", async () => {
    const cause = new StoryGone("story s is gone");
    const { error, received, logged } = await streamFailure(cause);
    expect(received).toHaveLength(1);
    expect(error.code).toBe(Code.NotFound);
    expect(error.cause).toBe(cause);
    expect(logged).toEqual([]);
  });

  it("given a stream that fails with an unknown error, then INTERNAL without details, logged with its cause, and the cause kept", async () => {
    const cause = new Error("a bug in a stream");
    const { error, logged } = await streamFailure(cause);
    expect(error.code).toBe(Code.Internal);
    expect(error.cause).toBe(cause);
    expect(logged).toEqual([{ err: cause, msg: "unexpected error in a stream" }]);
  });

  it("given Connect's INTERNAL for request bytes it could not parse, then INVALID_ARGUMENT, unary or stream", async () => {
    const parse = () => new ConnectError("parse binary: premature EOF", Code.Internal);
    for (const { error } of [await unaryFailure(parse()), await streamFailure(parse())]) {
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe("invalid request message: parse binary: premature EOF");
      expect(ConnectError.from(error.cause).rawMessage).toBe("parse binary: premature EOF");
    }
  });

  it("given a ConnectError of the service's own, then it passes unchanged", async () => {
    const own = new ConnectError("no", Code.PermissionDenied);
    expect((await unaryFailure(own)).error).toBe(own);
    expect((await streamFailure(own)).error).toBe(own);
  });
});
