import { Code, ConnectError } from "@connectrpc/connect";
import { RefusalReason } from "./server-metrics.ts";

/**
 * Turns an error a service threw into the ConnectError its callers should see, or returns undefined
 * for errors it does not know (which become INTERNAL). Each service passes one to the RPC server;
 * with `toConnectError` below it is the only place where errors become status codes.
 */
export type ErrorClassifier = (error: unknown) => ConnectError | undefined;

/*
 * The RPC server's own refusals. Each names the limit, so a caller (or whoever reads its log) knows
 * what to change: the request, the client's pace, or the server's setting.
 */

/** A request message (or request body) over the server's limit: RESOURCE_EXHAUSTED. */
export function requestTooLarge(limit: number, size?: number): ConnectError {
  const what = size === undefined ? "the request message" : `the request message (${size} bytes)`;
  return new ConnectError(
    `${what} is larger than the server's limit of ${limit} bytes`,
    Code.ResourceExhausted,
  );
}

/** A response message over the server's limit: not sent, RESOURCE_EXHAUSTED instead. */
export function responseTooLarge(limit: number, size?: number): ConnectError {
  const what = size === undefined ? "the response message" : `the response message (${size} bytes)`;
  return new ConnectError(
    `${what} is larger than the server's limit of ${limit} bytes; ask for less`,
    Code.ResourceExhausted,
  );
}

/**
 * The server sheds a call it has no room to queue: UNAVAILABLE, the code gRPC clients retry
 * (with back-off, and another replica if there is one). The call was not started, so a retry is
 * safe whatever the method.
 */
export function overloaded(queued: number): ConnectError {
  return new ConnectError(
    `the server is overloaded (${queued} calls waiting to start); retry with back-off`,
    Code.Unavailable,
  );
}

/** The request did not arrive in full in time (a client that stopped sending). */
export function requestReadTimeout(ms: number): ConnectError {
  return new ConnectError(
    `the request did not arrive in full within ${ms} ms`,
    Code.DeadlineExceeded,
  );
}

/** The call's deadline passed: the client's, or the server's longest (RPC_MAX_DEADLINE_MS). */
export function deadlineExceeded(ms: number | undefined): ConnectError {
  return new ConnectError(
    ms === undefined ? "the deadline passed" : `the deadline of ${ms} ms passed`,
    Code.DeadlineExceeded,
  );
}

/** Bytes that are not a request of the method: INVALID_ARGUMENT. */
export function malformedRequest(detail: string, cause?: unknown): ConnectError {
  return new ConnectError(
    `invalid request message: ${detail}`,
    Code.InvalidArgument,
    undefined,
    undefined,
    cause,
  );
}

/** What a client-caused error of Connect's becomes, and why it counts as refused. */
export interface Normalized {
  readonly code: Code;
  readonly message: string;
  readonly reason: RefusalReason;
}

const readMaxBytes = /readMaxBytes (\d+)/;
const writeMaxBytes = /message size (\d+) is larger than configured writeMaxBytes (\d+)/;
const sizeFirst = /message size (\d+)/;

/**
 * Connect's own errors for what a client sent, in our words and codes. Connect parses, splits and
 * decompresses a request before any interceptor runs, and reports some of the client's mistakes
 * as INTERNAL (bytes that are no protobuf message, a compressed message without an encoding, a
 * truncated gzip stream) or UNIMPLEMENTED (a unary request with no message, or two): all are bad
 * input, INVALID_ARGUMENT. Its size limits become our messages. Anything else: undefined (kept).
 *
 * An unsupported encoding stays UNIMPLEMENTED, as the gRPC compression spec asks.
 */
export function normalizeConnectError(code: Code, message: string): Normalized | undefined {
  switch (code) {
    case Code.Internal:
      if (message.startsWith("parse binary:")) {
        return {
          code: Code.InvalidArgument,
          message: `invalid request message: ${message}`,
          reason: RefusalReason.malformed,
        };
      }
      if (message.startsWith("received compressed envelope, but do not know how to decompress")) {
        return {
          code: Code.InvalidArgument,
          message:
            "invalid request message: the message is compressed, but the request names no compression",
          reason: RefusalReason.malformed,
        };
      }
      if (message.startsWith("decompression failed")) {
        return {
          code: Code.InvalidArgument,
          message: "invalid request message: decompression failed",
          reason: RefusalReason.malformed,
        };
      }
      return undefined;
    case Code.InvalidArgument:
      if (message.startsWith("decompression failed")) {
        return {
          code,
          message: "invalid request message: decompression failed",
          reason: RefusalReason.malformed,
        };
      }
      if (message.startsWith("protocol error:")) {
        return { code, message: `invalid request: ${message}`, reason: RefusalReason.malformed };
      }
      return undefined;
    case Code.Unimplemented:
      if (
        message.startsWith("protocol error: missing input message") ||
        message.startsWith("protocol error: received extra input message")
      ) {
        return {
          code: Code.InvalidArgument,
          message: `invalid request: ${message}`,
          reason: RefusalReason.malformed,
        };
      }
      return undefined;
    case Code.ResourceExhausted: {
      const read = readMaxBytes.exec(message);
      if (read) {
        const size = message.includes("after decompression")
          ? undefined
          : sizeFirst.exec(message)?.[1];
        const e = requestTooLarge(Number(read[1]), size === undefined ? undefined : Number(size));
        return { code, message: e.rawMessage, reason: RefusalReason.requestTooLarge };
      }
      const write = writeMaxBytes.exec(message);
      if (write) {
        const e = responseTooLarge(Number(write[2]), Number(write[1]));
        return { code, message: e.rawMessage, reason: RefusalReason.responseTooLarge };
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The one mapping from what a call failed with to what its caller sees, for unary calls and
 * streams alike: a ConnectError stands (Connect's own client-caused ones normalized), a service
 * error goes through the service's classifier, and anything else is INTERNAL without details
 * (`unexpected` is told, to log it). The cause is kept on the error either way.
 */
export function toConnectError(
  e: unknown,
  classify: ErrorClassifier,
  unexpected: (e: unknown) => void,
): { error: ConnectError; reason?: RefusalReason } {
  if (e instanceof ConnectError) {
    const normalized = normalizeConnectError(e.code, e.rawMessage);
    if (normalized === undefined) return { error: e };
    const error = new ConnectError(normalized.message, normalized.code, e.metadata, undefined, e);
    return { error, reason: normalized.reason };
  }
  const known = classify(e);
  if (known) {
    if (known.cause === undefined) known.cause = e;
    return { error: known };
  }
  unexpected(e);
  return {
    error: new ConnectError(
      "internal error; the server log has the details",
      Code.Internal,
      undefined,
      undefined,
      e,
    ),
  };
}
