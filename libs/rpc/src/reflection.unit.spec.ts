import { create, createFileRegistry, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldOptionsSchema,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "@ctx/proto/grpc";
import { describe, expect, it } from "vitest";
import { createReflection, registerReflectionService } from "./reflection.ts";

// Reflection answered in memory (Connect's router transport): the same handler the servers mount.

const transport = createRouterTransport((router) =>
  registerReflectionService(router, [ContextQueryService, ContextCommandService]),
);
const client = createClient(ServerReflection, transport);

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>["messageRequest"];

/** Sends the requests on one stream and returns the answers in order. */
async function ask(...requests: NonNullable<Request>[]): Promise<ServerReflectionResponse[]> {
  async function* stream() {
    for (const messageRequest of requests) {
      yield create(ServerReflectionRequestSchema, { host: "localhost", messageRequest });
    }
  }
  const out: ServerReflectionResponse[] = [];
  for await (const response of client.serverReflectionInfo(stream())) out.push(response);
  return out;
}

function files(response: ServerReflectionResponse | undefined) {
  const r = response?.messageResponse;
  if (r?.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${r?.case}`);
  return r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/** What a client does with the files: a registry, imports first (they come in any order). */
function registryFrom(protos: readonly FileDescriptorProto[]) {
  const byName = new Map(protos.map((p) => [p.name, p]));
  const sorted: FileDescriptorProto[] = [];
  const visit = (name: string) => {
    const proto = byName.get(name);
    if (proto === undefined) return;
    byName.delete(name);
    for (const dep of proto.dependency) visit(dep);
    sorted.push(proto);
  };
  for (const p of protos) visit(p.name);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: sorted }));
}

function error(response: ServerReflectionResponse | undefined) {
  const r = response?.messageResponse;
  if (r?.case !== "errorResponse") throw new Error(`expected an error, got ${r?.case}`);
  return r.value;
}

describe("gRPC server reflection", () => {
  it("lists the services, health and reflection", async () => {
    const [listed] = await ask({ case: "listServices", value: "" });
    expect(listed?.validHost).toBe("localhost");
    expect(listed?.messageResponse).toMatchObject({
      case: "listServicesResponse",
      value: {
        service: [
          { name: "context.v1.ContextCommandService" },
          { name: "context.v1.ContextQueryService" },
          { name: "grpc.health.v1.Health" },
          { name: "grpc.reflection.v1.ServerReflection" },
          { name: "grpc.reflection.v1alpha.ServerReflection" },
        ],
      },
    });
  });

  it("answers a symbol with its file and every import, enough to rebuild the service", async () => {
    const [answer] = await ask({
      case: "fileContainingSymbol",
      value: "context.v1.ContextQueryService",
    });
    const protos = files(answer);
    expect(protos[0]?.name).toBe("context/v1/query_service.proto");
    expect(protos.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        "buf/validate/validate.proto",
        "context/v1/context.proto",
        "context/v1/events.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/descriptor.proto",
      ]),
    );
    const registry = registryFrom(protos);
    const service = registry.getService("context.v1.ContextQueryService");
    expect(service?.methods.map((m) => m.name)).toEqual(
      ContextQueryService.methods.map((m) => m.name),
    );
    const watch = service?.methods.find((m) => m.name === "WatchContext");
    expect(watch?.methodKind).toBe("server_streaming");
    expect(watch?.output.typeName).toBe("context.v1.WatchContextResponse");
    // The validation rules travel with the descriptors.
    const storyId = registry.getMessage("context.v1.GetContextRequest")?.field.storyId;
    expect(storyId?.proto.options?.$unknown?.[0]?.no).toBe(1159);
  });

  it("sends each import once per stream, the asked file every time", async () => {
    const [first, second] = await ask(
      { case: "fileContainingSymbol", value: "context.v1.ContextQueryService" },
      { case: "fileContainingSymbol", value: "context.v1.ContextCommandService" },
    );
    const firstNames = files(first).map((p) => p.name);
    const secondNames = files(second).map((p) => p.name);
    expect(secondNames[0]).toBe("context/v1/command_service.proto");
    expect(secondNames.slice(1).filter((n) => firstNames.includes(n))).toEqual([]);
  });

  it("resolves methods, fields, enum values and nested names to their file", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: "context.v1.ContextQueryService.GetContextAtTime" },
      { case: "fileContainingSymbol", value: "context.v1.Context.title" },
      { case: "fileContainingSymbol", value: "context.v1.ContextStatus.CONTEXT_STATUS_OPEN" },
      { case: "fileContainingSymbol", value: "context.v1.ContextPoint.point" },
      { case: "fileByFilename", value: "context/v1/events.proto" },
    );
    expect(answers.map((a) => files(a)[0]?.name)).toEqual([
      "context/v1/query_service.proto",
      "context/v1/context.proto",
      "context/v1/context.proto",
      "context/v1/query_service.proto",
      "context/v1/events.proto",
    ]);
  });

  it("answers extensions by number and lists the numbers of a type", async () => {
    const [numbers, file] = await ask(
      { case: "allExtensionNumbersOfType", value: FieldOptionsSchema.typeName },
      {
        case: "fileContainingExtension",
        value: { containingType: FieldOptionsSchema.typeName, extensionNumber: 1159 },
      },
    );
    expect(numbers?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.FieldOptions" },
    });
    const r = numbers?.messageResponse;
    expect(r?.case === "allExtensionNumbersResponse" && r.value.extensionNumber).toContain(1159);
    expect(files(file)[0]?.name).toBe("buf/validate/validate.proto");
  });

  it("says NOT_FOUND for what it does not know, INVALID_ARGUMENT for an empty request", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: "context.v1.NoSuchService" },
      { case: "fileContainingSymbol", value: "context.v1.ContextQueryService.NoSuchMethod" },
      { case: "fileByFilename", value: "no/such.proto" },
      { case: "allExtensionNumbersOfType", value: "no.Such" },
      {
        case: "fileContainingExtension",
        value: { containingType: FieldOptionsSchema.typeName, extensionNumber: 1 },
      },
    );
    for (const answer of answers) expect(error(answer).errorCode).toBe(Code.NotFound);
    expect(error(answers[0]).errorMessage).toBe("symbol context.v1.NoSuchService not found");
    const reflection = createReflection([ContextQueryService]);
    const empty = create(ServerReflectionRequestSchema, { host: "h" });
    expect(error(reflection.answer(empty, new Set())).errorCode).toBe(Code.InvalidArgument);
  });

  it("answers the v1alpha name of the service the same way", async () => {
    const alpha = createReflection([ContextQueryService]).registry.getService(
      "grpc.reflection.v1alpha.ServerReflection",
    );
    expect(alpha?.methods[0]?.methodKind).toBe("bidi_streaming");
    const alphaClient = createClient(alpha as unknown as typeof ServerReflection, transport);
    async function* one() {
      yield create(ServerReflectionRequestSchema, {
        messageRequest: { case: "fileByFilename", value: "context/v1/context.proto" },
      }) as ServerReflectionRequest;
    }
    const out: unknown[] = [];
    for await (const r of alphaClient.serverReflectionInfo(one())) out.push(r);
    expect(out).toHaveLength(1);
  });
});
