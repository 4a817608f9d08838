// @ctx/client: the Context Service's typed client for Node and browsers.

export { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
export { Code } from "@connectrpc/connect";
export type {
  ChangeInit,
  ContextClient,
  ContextClientOptions,
  ContextCommands,
  ContextQueries,
  UpdateOptions,
} from "./client.ts";
export { createContextClient } from "./client.ts";
export { newCommandId } from "./command-id.ts";
export type { FieldViolation } from "./errors.ts";
export {
  ConcurrencyError,
  ContextServiceError,
  isConcurrencyError,
  isContextServiceError,
  isNotFoundError,
  isValidationError,
  NotFoundError,
  ValidationError,
} from "./errors.ts";
// The API's messages and enums (protoc-gen-es v2), for requests, answers and their types.
export * from "./gen/context/v1/command_service_pb.js";
export * from "./gen/context/v1/context_pb.js";
export * from "./gen/context/v1/events_pb.js";
export * from "./gen/context/v1/query_service_pb.js";
export type { RetryPolicy } from "./retry.ts";
export type { Protocol, TransportChoice } from "./transport.ts";
export type { WatchOptions } from "./watch.ts";
