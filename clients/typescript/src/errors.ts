import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Violation as ProtoViolation,
  ViolationsSchema,
} from "./gen/buf/validate/validate_pb.js";

/**
 * Every error of a call made through the SDK that the service answered (or that never reached
 * it): the gRPC code, the message without the code's prefix, and the response's metadata (headers
 * and trailers, e.g. x-rule, x-limit). Narrow it with the guards below.
 */
export class ContextServiceError extends Error {
  override readonly name: string = "ContextServiceError";
  readonly code: Code;
  readonly metadata: Headers;

  constructor(message: string, code: Code, metadata: Headers, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.metadata = metadata;
  }

  /** The code's name as gRPC spells it (e.g. "ALREADY_EXISTS"), for logs. */
  get codeName(): string {
    return codeName(this.code);
  }
}

/**
 * ABORTED: the story was not at the version the command expected (`expectedVersion`, from the
 * command's expected_version); `actualVersion` is where it stands. Retry with a state read again:
 * `commands.update` does.
 */
export class ConcurrencyError extends ContextServiceError {
  override readonly name = "ConcurrencyError";
  readonly expectedVersion: number | undefined;
  readonly actualVersion: number | undefined;

  constructor(message: string, metadata: Headers, options?: ErrorOptions) {
    super(message, Code.Aborted, metadata, options);
    this.expectedVersion = versionOf(metadata.get("x-expected-version"));
    this.actualVersion = versionOf(metadata.get("x-actual-version"));
  }
}

/** NOT_FOUND: the story (or the decision or subtask named) does not exist, or not at that point. */
export class NotFoundError extends ContextServiceError {
  override readonly name = "NotFoundError";

  constructor(message: string, metadata: Headers, options?: ErrorOptions) {
    super(message, Code.NotFound, metadata, options);
  }
}

/** One field of a request that broke a rule of the API (protovalidate). */
export interface FieldViolation {
  /** The field's path in the request, e.g. "story_id" or "changes[0].add_decision.title". */
  readonly field: string;
  /** The rule's id, e.g. "string.pattern". */
  readonly ruleId: string;
  readonly message: string;
}

/**
 * INVALID_ARGUMENT: the request is wrong by itself. `violations` lists the fields that broke the
 * API's rules (empty when the service refused the request for another reason, e.g. a limit:
 * metadata x-limit); `byField` groups their messages by field path.
 */
export class ValidationError extends ContextServiceError {
  override readonly name = "ValidationError";
  readonly violations: readonly FieldViolation[];

  constructor(
    message: string,
    metadata: Headers,
    violations: readonly FieldViolation[],
    options?: ErrorOptions,
  ) {
    super(message, Code.InvalidArgument, metadata, options);
    this.violations = violations;
  }

  get byField(): Readonly<Record<string, readonly string[]>> {
    const out: Record<string, string[]> = {};
    for (const v of this.violations) {
      const messages = out[v.field] ?? [];
      messages.push(v.message);
      out[v.field] = messages;
    }
    return out;
  }
}

export const isContextServiceError = (e: unknown): e is ContextServiceError =>
  e instanceof ContextServiceError;
export const isConcurrencyError = (e: unknown): e is ConcurrencyError =>
  e instanceof ConcurrencyError;
export const isNotFoundError = (e: unknown): e is NotFoundError => e instanceof NotFoundError;
export const isValidationError = (e: unknown): e is ValidationError => e instanceof ValidationError;

/**
 * Any error of a call as the SDK's typed error (the one place codes become classes). The
 * caller's own abort passes through untouched: it is no error of the service.
 */
export function toContextError(e: unknown): unknown {
  if (e instanceof ContextServiceError) return e;
  if (isAbortReason(e)) return e;
  const ce = ConnectError.from(e);
  const options = { cause: e };
  switch (ce.code) {
    case Code.Aborted:
      return new ConcurrencyError(ce.rawMessage, ce.metadata, options);
    case Code.NotFound:
      return new NotFoundError(ce.rawMessage, ce.metadata, options);
    case Code.InvalidArgument:
      return new ValidationError(ce.rawMessage, ce.metadata, violationsOf(ce), options);
    default:
      return new ContextServiceError(ce.rawMessage, ce.code, ce.metadata, options);
  }
}

/**
 * An attempt's error as the SDK's error. A call whose connection was refused, reset or closed
 * before the service answered (connect-es reports these as UNKNOWN, INTERNAL, CANCELED or, for a
 * reset in connect-node, ABORTED, with no status from the wire and a network error as the cause)
 * is UNAVAILABLE, so it is retried like one, unless the caller's signal ended the call. A status
 * the service sent (the ABORTED of a conflict included) is read from the wire in every protocol.
 */
export function toCallError(e: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted !== true && isConnectionFailure(e)) {
    return new ContextServiceError(
      `the service could not be reached: ${e.rawMessage}`,
      Code.Unavailable,
      e.metadata,
      { cause: e },
    );
  }
  return toContextError(e);
}

function isConnectionFailure(e: unknown): e is ConnectError {
  return (
    e instanceof ConnectError &&
    // Set by connect-es on errors it read from a response (a status the service sent).
    !e.isWireError &&
    (e.code === Code.Unknown ||
      e.code === Code.Internal ||
      e.code === Code.Canceled ||
      e.code === Code.Aborted) &&
    causes(e).some(isNetworkError)
  );
}

// Node's socket and HTTP/2 errors (ECONNRESET, EPIPE, UND_ERR_SOCKET, ERR_HTTP2_…), connect-node's
// reset HTTP/2 streams, and fetch's TypeError when the connection failed (Node: "fetch failed";
// browsers: "Failed to fetch", "NetworkError when attempting to fetch resource.", "Load failed").
const networkCode = /^(E[A-Z]+|UND_ERR_\w+|ERR_HTTP2_\w+|ERR_STREAM_\w+)$/;
const networkMessage =
  /^(fetch failed|Failed to fetch|NetworkError when attempting to fetch resource\.|Load failed)$|http\/2 stream closed/;

function isNetworkError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return (typeof code === "string" && networkCode.test(code)) || networkMessage.test(e.message);
}

function causes(e: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let c = e; c !== undefined && c !== null && !chain.includes(c) && chain.length < 10; ) {
    chain.push(c);
    c = (c as { cause?: unknown }).cause;
  }
  return chain;
}

function violationsOf(e: ConnectError): FieldViolation[] {
  return e.findDetails(ViolationsSchema).flatMap((list) => list.violations.map(fieldViolation));
}

function fieldViolation(v: ProtoViolation): FieldViolation {
  const field = (v.field?.elements ?? [])
    .map((el) => {
      const s = el.subscript;
      switch (s.case) {
        case undefined:
          return el.fieldName;
        case "index":
        case "intKey":
        case "uintKey":
          return `${el.fieldName}[${s.value}]`;
        case "boolKey":
        case "stringKey":
          return `${el.fieldName}[${JSON.stringify(s.value)}]`;
        default: {
          const never: never = s;
          return never;
        }
      }
    })
    .join(".");
  return { field, ruleId: v.ruleId, message: v.message };
}

function versionOf(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** An AbortSignal's reason as fetch and timers throw it: the caller's cancellation, no error. */
function isAbortReason(e: unknown): boolean {
  return (
    typeof DOMException !== "undefined" &&
    e instanceof DOMException &&
    (e.name === "AbortError" || e.name === "TimeoutError")
  );
}

function codeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
