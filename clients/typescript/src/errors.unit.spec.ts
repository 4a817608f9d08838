import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  ConcurrencyError,
  ContextServiceError,
  isConcurrencyError,
  isNotFoundError,
  isValidationError,
  NotFoundError,
  toCallError,
  toContextError,
  type ValidationError,
} from "./errors.ts";
import { ViolationsSchema } from "./gen/buf/validate/validate_pb.js";

describe("toContextError", () => {
  it("ABORTED is a ConcurrencyError with the versions of the service's metadata", () => {
    const e = toContextError(
      new ConnectError("story s-1 is at version 4, not 3", Code.Aborted, {
        "x-expected-version": "3",
        "x-actual-version": "4",
      }),
    );
    expect(e).toBeInstanceOf(ConcurrencyError);
    expect(isConcurrencyError(e)).toBe(true);
    expect(e).toMatchObject({
      name: "ConcurrencyError",
      code: Code.Aborted,
      codeName: "ABORTED",
      message: "story s-1 is at version 4, not 3",
      expectedVersion: 3,
      actualVersion: 4,
    });
  });

  it("ABORTED without the metadata leaves the versions undefined", () => {
    const e = toContextError(new ConnectError("conflict", Code.Aborted));
    expect(e).toMatchObject({ expectedVersion: undefined, actualVersion: undefined });
  });

  it("NOT_FOUND is a NotFoundError", () => {
    const e = toContextError(new ConnectError("story s-9 not found", Code.NotFound));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(isNotFoundError(e)).toBe(true);
  });

  it("INVALID_ARGUMENT is a ValidationError with protovalidate's violations by field", () => {
    const details = create(ViolationsSchema, {
      violations: [
        {
          field: { elements: [{ fieldName: "story_id", fieldNumber: 1 }] },
          ruleId: "string.pattern",
          message: "value does not match regex pattern",
        },
        {
          field: {
            elements: [
              { fieldName: "changes", subscript: { case: "index", value: 0n } },
              { fieldName: "add_decision" },
              { fieldName: "title" },
            ],
          },
          ruleId: "string.min_len",
          message: "value length must be at least 1 characters",
        },
      ],
    });
    const e = toContextError(
      new ConnectError("invalid request", Code.InvalidArgument, undefined, [
        { desc: ViolationsSchema, value: details },
      ]),
    );
    expect(isValidationError(e)).toBe(true);
    const v = e as ValidationError;
    expect(v.violations).toEqual([
      {
        field: "story_id",
        ruleId: "string.pattern",
        message: "value does not match regex pattern",
      },
      {
        field: "changes[0].add_decision.title",
        ruleId: "string.min_len",
        message: "value length must be at least 1 characters",
      },
    ]);
    expect(v.byField).toEqual({
      story_id: ["value does not match regex pattern"],
      "changes[0].add_decision.title": ["value length must be at least 1 characters"],
    });
  });

  it("INVALID_ARGUMENT without details is a ValidationError without violations", () => {
    const e = toContextError(
      new ConnectError("too many changes", Code.InvalidArgument, { "x-limit": "changes" }),
    ) as ValidationError;
    expect(e.violations).toEqual([]);
    expect(e.metadata.get("x-limit")).toBe("changes");
  });

  it.each([
    [Code.AlreadyExists, "ALREADY_EXISTS"],
    [Code.FailedPrecondition, "FAILED_PRECONDITION"],
    [Code.Unavailable, "UNAVAILABLE"],
    [Code.PermissionDenied, "PERMISSION_DENIED"],
  ])("code %s is a ContextServiceError %s", (code, name) => {
    const e = toContextError(new ConnectError("no", code, { "x-rule": "r" }));
    expect(e).toBeInstanceOf(ContextServiceError);
    expect(isConcurrencyError(e) || isNotFoundError(e) || isValidationError(e)).toBe(false);
    expect(e).toMatchObject({ code, codeName: name });
    expect((e as ContextServiceError).metadata.get("x-rule")).toBe("r");
  });

  it("keeps the original error as the cause and leaves the SDK's own errors alone", () => {
    const original = new ConnectError("gone", Code.NotFound);
    const e = toContextError(original) as NotFoundError;
    expect(e.cause).toBe(original);
    expect(toContextError(e)).toBe(e);
  });

  it("a plain error is UNKNOWN; a caller's abort passes through", () => {
    expect(toContextError(new Error("socket hang up"))).toMatchObject({ code: Code.Unknown });
    const abort = new DOMException("aborted", "AbortError");
    expect(toContextError(abort)).toBe(abort);
  });
});

describe("toCallError", () => {
  const fromWire = (code: Code, metadata?: Record<string, string>) => {
    const e = new ConnectError("from the service", code, metadata);
    e.isWireError = true;
    return e;
  };

  it.each([Code.Unknown, Code.Internal, Code.Canceled, Code.Aborted])(
    "a connection that failed (%s, no status from the wire) is UNAVAILABLE",
    (code) => {
      const socket = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
      const cause = new ConnectError("write EPIPE", code, undefined, undefined, socket);
      const e = toCallError(cause, undefined) as ContextServiceError;
      expect(e).toMatchObject({ code: Code.Unavailable, cause });
      expect(e.message).toContain("write EPIPE");
    },
  );

  it.each([
    ["fetch failed", new TypeError("fetch failed")],
    ["Failed to fetch", new TypeError("Failed to fetch")],
    ["an HTTP/2 reset", new Error("http/2 stream closed with error code CANCEL (0x8)")],
  ])("%s is a connection that failed", (_name, cause) => {
    const e = ConnectError.from(cause);
    expect(toCallError(e, undefined)).toMatchObject({ code: Code.Unavailable });
  });

  it("an error of the client's own (a bug, a bad answer) is not taken for one", () => {
    const e = ConnectError.from(new SyntaxError("Unexpected token < in JSON"));
    expect(toCallError(e, undefined)).toMatchObject({ code: Code.Unknown });
  });

  it("a status the service sent keeps its code and class", () => {
    const conflict = toCallError(
      fromWire(Code.Aborted, { "x-expected-version": "1", "x-actual-version": "2" }),
      undefined,
    );
    expect(conflict).toMatchObject({ name: "ConcurrencyError", actualVersion: 2 });
    expect(toCallError(fromWire(Code.Internal), undefined)).toMatchObject({ code: Code.Internal });
  });

  it("a call the caller's signal ended stays CANCELED", () => {
    const controller = new AbortController();
    controller.abort();
    const e = toCallError(new ConnectError("aborted", Code.Canceled), controller.signal);
    expect(e).toMatchObject({ code: Code.Canceled });
  });
});
