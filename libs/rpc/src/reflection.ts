import {
  clone,
  create,
  createFileRegistry,
  type DescFile,
  type DescService,
  type FileRegistry,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  file_grpc_reflection_v1_reflection,
  Health,
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "@ctx/proto/grpc";

/**
 * Serves gRPC server reflection (grpc.reflection.v1.ServerReflection, and the same service under
 * its older name grpc.reflection.v1alpha, which some clients still ask for) for the given services,
 * grpc.health.v1.Health and reflection itself: generic clients (grpcurl, Postman, grpcui) then list
 * and call them without the .proto files.
 *
 * The descriptors come from the generated code: a registry (`createFileRegistry`) of the services'
 * files and their transitive imports. A file is answered as its `FileDescriptorProto` bytes,
 * followed by the imports not sent yet on the same stream, as grpc-go does.
 */
export function registerReflectionService(
  router: ConnectRouter,
  services: readonly DescService[],
): void {
  const reflection = createReflection(services);
  const alpha = reflection.registry.getService(v1alphaName);
  if (alpha === undefined) throw new Error(`${v1alphaName} is missing from the registry`);
  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) yield reflection.answer(request, sent);
    },
  });
  // v1alpha is v1 under another package name: the same bytes on the wire.
  const [info] = alpha.methods;
  if (info === undefined) throw new Error("grpc.reflection.v1alpha has no method");
  router.rpc(info, async function* (requests: AsyncIterable<unknown>) {
    const sent = new Set<string>();
    for await (const request of requests) {
      const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(info.input, request as never));
      const answer = reflection.answer(v1, sent);
      yield fromBinary(info.output, toBinary(ServerReflectionResponseSchema, answer));
    }
  } as never);
}

/** What reflection answers, for a set of services (exported for tests). */
export interface Reflection {
  readonly registry: FileRegistry;
  /** One response; `sent` names the files already sent on this stream. */
  answer(request: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse;
}

/**
 * The reflection answers for `services` (plus health and reflection), from a registry of their
 * files and imports.
 */
export function createReflection(described: readonly DescService[]): Reflection {
  const services = [...described, Health, ServerReflection, v1alphaService()];
  const registry = registryOf(services);
  const serviceNames = [...new Set(services.map((s) => s.typeName))].sort();
  const bytes = new Map<string, Uint8Array>();
  const encoded = (file: DescFile) => {
    let b = bytes.get(file.proto.name);
    if (b === undefined) {
      b = toBinary(FileDescriptorProtoSchema, file.proto);
      bytes.set(file.proto.name, b);
    }
    return b;
  };

  /** The file first (always), then its transitive imports not sent yet. */
  const withImports = (file: DescFile, sent: Set<string>): Uint8Array[] => {
    const out = [encoded(file)];
    sent.add(file.proto.name);
    const visit = (f: DescFile) => {
      for (const dep of f.dependencies) {
        if (sent.has(dep.proto.name)) continue;
        sent.add(dep.proto.name);
        out.push(encoded(dep));
        visit(dep);
      }
    };
    visit(file);
    return out;
  };

  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const found = registry.get(symbol);
    if (found !== undefined) return found.file;
    // A member: service.method, message.field or message.oneof, enum.value.
    const at = symbol.lastIndexOf(".");
    if (at < 0) return undefined;
    const parent = registry.get(symbol.slice(0, at));
    const name = symbol.slice(at + 1);
    switch (parent?.kind) {
      case "service":
        return parent.methods.some((m) => m.name === name) ? parent.file : undefined;
      case "message":
        return parent.fields.some((f) => f.name === name) ||
          parent.oneofs.some((o) => o.name === name)
          ? parent.file
          : undefined;
      case "enum":
        return parent.values.some((v) => v.name === name) ? parent.file : undefined;
      default:
        return undefined;
    }
  };

  const extensionsOf = (typeName: string) => {
    const out = [];
    for (const type of registry) {
      if (type.kind === "extension" && type.extendee.typeName === typeName) out.push(type);
    }
    return out;
  };

  return {
    registry,
    answer(request, sent) {
      const reply = (messageResponse: ResponseInit) =>
        create(ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse,
        });
      const files = (file: DescFile | undefined, what: string) =>
        file === undefined
          ? reply(notFound(what))
          : reply({
              case: "fileDescriptorResponse",
              value: { fileDescriptorProto: withImports(file, sent) },
            });
      const r = request.messageRequest;
      switch (r.case) {
        case "fileByFilename":
          return files(registry.getFile(r.value), `file ${r.value}`);
        case "fileContainingSymbol":
          return files(fileOfSymbol(r.value), `symbol ${r.value}`);
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = r.value;
          const extension = extensionsOf(containingType).find((e) => e.number === extensionNumber);
          return files(extension?.file, `extension ${extensionNumber} of ${containingType}`);
        }
        case "allExtensionNumbersOfType": {
          if (registry.getMessage(r.value) === undefined) return reply(notFound(`type ${r.value}`));
          const extensionNumber = extensionsOf(r.value)
            .map((e) => e.number)
            .sort((a, b) => a - b);
          return reply({
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: r.value, extensionNumber },
          });
        }
        case "listServices":
          return reply({
            case: "listServicesResponse",
            value: { service: serviceNames.map((name) => ({ name })) },
          });
        case undefined:
          return reply({
            case: "errorResponse",
            value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
          });
        default: {
          const unknown: never = r;
          throw new TypeError(`unknown reflection request ${JSON.stringify(unknown)}`);
        }
      }
    },
  };
}

type ResponseInit = NonNullable<
  MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"]
>;

function notFound(what: string): ResponseInit {
  return {
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  };
}

/** One registry of the services' files and every file they import, transitively. */
function registryOf(services: readonly DescService[]): FileRegistry {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) visit(dep);
  };
  for (const service of services) visit(service.file);
  const roots = [...new Set(services.map((s) => s.file))];
  return createFileRegistry(
    ...roots.map((root) => createFileRegistry(root.proto, (name) => files.get(name))),
  );
}

const v1alphaName = "grpc.reflection.v1alpha.ServerReflection";

/** grpc.reflection.v1alpha.ServerReflection: the v1 file under the v1alpha package name. */
function v1alphaService(): DescService {
  const proto = clone(FileDescriptorProtoSchema, file_grpc_reflection_v1_reflection.proto);
  proto.name = "grpc/reflection/v1alpha/reflection.proto";
  proto.package = "grpc.reflection.v1alpha";
  proto.options = undefined; // java/go package options name the v1 packages
  const rename = (typeName: string) =>
    typeName.replace(/^\.grpc\.reflection\.v1\./, ".grpc.reflection.v1alpha.");
  for (const message of proto.messageType) {
    for (const field of message.field) field.typeName = rename(field.typeName);
  }
  for (const service of proto.service) {
    for (const method of service.method) {
      method.inputType = rename(method.inputType);
      method.outputType = rename(method.outputType);
    }
  }
  const service = createFileRegistry(proto, () => undefined).getService(v1alphaName);
  if (service === undefined) throw new Error(`could not build ${v1alphaName}`);
  return service;
}
