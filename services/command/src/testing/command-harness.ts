import { join, resolve } from "node:path";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { createLogger } from "@ctx/config";
import {
  commandSnapshotNames,
  createEventStore,
  type EventStore,
  provisionCommandSnapshotStream,
  provisionEventStream,
} from "@ctx/event-store";
import { connectNats, natsConnectionOf } from "@ctx/service";
import { stack, testAuth, uniqueName } from "@ctx/test-support";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type CommandApp, startCommandApp } from "../app.ts";
import { eventStreamSettingsOf, loadCommandConfig } from "../config.ts";

// Test harness of the e2e specs: the command service in-process on a stream of its own, called by a
// generic gRPC client that knows nothing but the .proto files (no generated code).

const repoRoot = resolve(import.meta.dirname, "../../../..");

/** Where a generic client finds the wire contract: our proto/ and the third-party protos it imports. */
const protoIncludeDirs = [join(repoRoot, "proto"), join(repoRoot, ".tools/proto-deps")];

/** A message as the generic client sees it: snake_case fields, enums by name, oneofs by case name. */
export type Message = Record<string, unknown>;

export interface CommandResult {
  readonly version: number;
  readonly event_ids: readonly string[];
  readonly deduplicated: boolean;
}

let packages: grpc.GrpcObject | undefined;

/** The command service and grpc.health.v1, loaded with @grpc/proto-loader from the .proto files. */
function grpcPackages(): grpc.GrpcObject {
  packages ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(["context/v1/command_service.proto", "grpc/health/v1/health.proto"], {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: protoIncludeDirs,
    }),
  );
  return packages;
}

function serviceClient(path: string): grpc.ServiceClientConstructor {
  let node: unknown = grpcPackages();
  for (const part of path.split(".")) node = (node as Record<string, unknown>)[part];
  if (typeof node !== "function") throw new Error(`${path} is not in the loaded protos`);
  return node as grpc.ServiceClientConstructor;
}

/**
 * A client of context.v1.ContextCommandService built from the .proto files alone. It sends the
 * test issuer's token (all roles) on every call that carries no authorization of its own; pass
 * `authorization: null` for a client without credentials.
 */
export function commandClient(
  address: string,
  options: { authorization?: string | null } = {},
): grpc.Client {
  const Client = serviceClient("context.v1.ContextCommandService");
  const authorization =
    options.authorization === undefined ? testAuth().authorization : options.authorization;
  return new Client(address, grpc.credentials.createInsecure(), {
    interceptors: authorization === null ? [] : [bearer(authorization)],
  });
}

/** A grpc-js interceptor that adds `authorization` to calls that do not set it. */
export function bearer(authorization: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        if (metadata.get("authorization").length === 0) {
          metadata.set("authorization", authorization);
        }
        next(metadata, listener);
      },
    });
}

/** A request of the command service encoded by the .proto-loaded serializer, for raw-bytes calls. */
export function encodeRequest(method: string, request: Message): Buffer {
  const definition = serviceClient("context.v1.ContextCommandService").service[method];
  if (definition === undefined) throw new Error(`no method ${method}`);
  return definition.requestSerialize(request);
}

/** A client of grpc.health.v1.Health built from the .proto files alone. */
export function healthClient(address: string): grpc.Client {
  const Client = serviceClient("grpc.health.v1.Health");
  return new Client(address, grpc.credentials.createInsecure());
}

/** What a unary call came back with: the response or the error, and the headers and trailers. */
export type Reply<T = Message> =
  | {
      readonly ok: true;
      readonly response: T;
      readonly headers: grpc.Metadata;
      readonly trailers: grpc.Metadata;
    }
  | {
      readonly ok: false;
      readonly error: grpc.ServiceError;
      readonly headers: grpc.Metadata;
      readonly trailers: grpc.Metadata;
    };

export interface CallOptions {
  /** Request metadata (headers). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly deadline?: grpc.Deadline;
}

type UnaryMethod = (
  request: Message,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Message) => void,
) => grpc.ClientUnaryCall;

/** Calls a unary method by its proto name (e.g. "CreateContext"); never throws for a status. */
export function call<T = Message>(
  client: grpc.Client,
  method: string,
  request: Message,
  options: CallOptions = {},
): Promise<Reply<T>> {
  const fn = (client as unknown as Record<string, UnaryMethod | undefined>)[method];
  if (fn === undefined) throw new Error(`no method ${method}`);
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(options.headers ?? {})) metadata.set(key, value);
  return new Promise((resolvePromise) => {
    let headers = new grpc.Metadata();
    let settled: { error: grpc.ServiceError | null; response?: Message } | undefined;
    let trailers: grpc.Metadata | undefined;
    const finish = () => {
      if (!settled || !trailers) return;
      resolvePromise(
        settled.error
          ? { ok: false, error: settled.error, headers, trailers }
          : { ok: true, response: settled.response as T, headers, trailers },
      );
    };
    const callOptions: grpc.CallOptions = options.deadline ? { deadline: options.deadline } : {};
    const pending = fn.call(client, request, metadata, callOptions, (error, response) => {
      settled = response === undefined ? { error } : { error, response };
      finish();
    });
    pending.on("metadata", (m: grpc.Metadata) => {
      headers = m;
    });
    pending.on("status", (status: grpc.StatusObject) => {
      trailers = status.metadata;
      finish();
    });
  });
}

/** The command result of a successful command call; fails the test with the status otherwise. */
export function resultOf(reply: Reply): CommandResult {
  if (!reply.ok) {
    throw new Error(`expected OK, got ${grpc.status[reply.error.code]}: ${reply.error.details}`);
  }
  return reply.response.result as CommandResult;
}

/** The status of a call that should have failed (OK when it did not). */
export function statusOf(reply: Reply): {
  code: grpc.status;
  message: string;
  trailers: grpc.Metadata;
} {
  if (reply.ok) return { code: grpc.status.OK, message: "", trailers: reply.trailers };
  return { code: reply.error.code, message: grpcMessage(reply.error), trailers: reply.trailers };
}

/**
 * The status message as sent. Connect percent-encodes grpc-message with encodeURIComponent, and
 * grpc-js decodes it with decodeURI, which leaves reserved characters escaped (":" arrives as "%3A");
 * this undoes the escapes of printable ASCII that decodeURI left.
 */
export function grpcMessage(error: grpc.ServiceError): string {
  return error.details.replace(/%([0-9A-Fa-f]{2})/g, (escaped, hex: string) => {
    const code = Number.parseInt(hex, 16);
    return code >= 0x20 && code < 0x7f ? String.fromCharCode(code) : escaped;
  });
}

/** One protovalidate violation from the status details: the field path, the rule id, the message. */
export interface Violation {
  readonly field: string;
  readonly ruleId: string;
  readonly message: string;
}

/**
 * The buf.validate.Violations in the grpc-status-details-bin trailer (a google.rpc.Status), decoded
 * field by field from the wire format, as any client could without generated code.
 */
export function violationsOf(trailers: grpc.Metadata): Violation[] {
  const [bin] = trailers.get("grpc-status-details-bin");
  if (bin === undefined) return [];
  const status = new BinaryReader(typeof bin === "string" ? Buffer.from(bin, "base64") : bin);
  const out: Violation[] = [];
  fields(status, (no, r) => {
    if (no !== 3) return false; // google.rpc.Status.details (Any)
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array(0);
    fields(new BinaryReader(r.bytes()), (n, any) => {
      if (n === 1) typeUrl = any.string();
      else if (n === 2) value = any.bytes();
      else return false;
      return true;
    });
    if (typeUrl.endsWith("/buf.validate.Violations")) {
      fields(new BinaryReader(value), (n, list) => {
        if (n !== 1) return false;
        out.push(violation(new BinaryReader(list.bytes())));
        return true;
      });
    }
    return true;
  });
  return out;
}

function violation(r: BinaryReader): Violation {
  let field = "";
  let ruleId = "";
  let message = "";
  fields(r, (no, v) => {
    if (no === 2) ruleId = v.string();
    else if (no === 3) message = v.string();
    else if (no === 5) field = fieldPath(new BinaryReader(v.bytes()));
    else return false;
    return true;
  });
  return { field, ruleId, message };
}

// buf.validate.FieldPath: elements (1) of field_name (2) and, for list items, index (6).
function fieldPath(r: BinaryReader): string {
  const parts: string[] = [];
  fields(r, (no, v) => {
    if (no !== 1) return false;
    let name = "";
    let index: bigint | undefined;
    fields(new BinaryReader(v.bytes()), (n, e) => {
      if (n === 2) name = e.string();
      else if (n === 6) index = e.uint64() as bigint;
      else return false;
      return true;
    });
    parts.push(index === undefined ? name : `${name}[${index}]`);
    return true;
  });
  return parts.join(".");
}

// Reads every field of a message; `read` consumes the ones it knows and returns false for the rest.
function fields(r: BinaryReader, read: (fieldNo: number, r: BinaryReader) => boolean): void {
  while (r.pos < r.len) {
    const [fieldNo, wireType] = r.tag();
    if (!read(fieldNo, r)) r.skip(wireType);
  }
}

export interface CommandHarness {
  readonly app: CommandApp;
  /** host:port of the gRPC server. */
  readonly address: string;
  readonly client: grpc.Client;
  readonly health: grpc.Client;
  /** The service's event stream, read with the event store over a connection of the test's own. */
  readonly store: EventStore;
  readonly stream: string;
  stop(): Promise<void>;
}

export interface CommandHarnessOptions {
  readonly natsUrl: string;
  /** NATS credentials (NATS_NKEY_SEED_FILE, …) for a server of the spec's own; default the stack's. */
  readonly natsEnv?: Readonly<Record<string, string>>;
  /** Join the stream of another harness (it deletes the stream) instead of using a new one. */
  readonly stream?: string;
  /** Configuration variables of the service, over the harness's own (e.g. limits). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Starts the command service in-process on 127.0.0.1:0 with a stream and subject prefix no other test
 * uses, plus a generic gRPC client of it and an event store over the same stream.
 */
export async function startCommandHarness(options: CommandHarnessOptions): Promise<CommandHarness> {
  const own = options.stream === undefined;
  const stream = options.stream ?? uniqueName("CMD_E2E");
  const natsEnv = { ...(options.natsEnv ?? stack().natsEnv), NATS_URL: options.natsUrl };
  const config = loadCommandConfig({
    // The test identity's credentials, at the given address (a proxy in the outage spec).
    ...natsEnv,
    COMMAND_LISTEN: "127.0.0.1:0",
    COMMAND_OPS_LISTEN: "127.0.0.1:0",
    EVENT_STREAM: stream,
    EVENT_SUBJECT_PREFIX: stream.toLowerCase(),
    SHUTDOWN_GRACE_MS: "2000",
    ...testAuth().env,
    ...options.env,
  });
  const logger = createLogger({ name: "command-e2e", level: "silent", pretty: false });
  // Reconnects for as long as it takes, like the service (the outage spec stops NATS for a while).
  const nc: NatsConnection = await connectNats(natsConnectionOf(natsEnv), {
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  // The service only checks for its stream; the test provisions it, as `ctx provision` would.
  const settings = eventStreamSettingsOf(config);
  if (own) {
    const jsm = await jetstreamManager(nc);
    await provisionEventStream(jsm, settings);
    await provisionCommandSnapshotStream(jsm, commandSnapshotNames(settings));
  }
  const app = await startCommandApp(config, logger);
  const store = createEventStore(nc, {
    names: { stream, subjectPrefix: config.EVENT_SUBJECT_PREFIX },
  });
  const address = `127.0.0.1:${app.rpcPort}`;
  const client = commandClient(address);
  const health = healthClient(address);
  return {
    app,
    address,
    client,
    health,
    store,
    stream,
    async stop() {
      client.close();
      health.close();
      await app.stop();
      if (own) {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(stream);
        await jsm.streams.delete(commandSnapshotNames(settings).stream);
      }
      await nc.close();
    },
  };
}
