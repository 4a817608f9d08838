import type * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "@ctx/config";

/**
 * Connect parses a request's protobuf bytes before any interceptor runs, and reports bytes that are
 * no valid message as INTERNAL ("parse binary: ..."), though it is the caller's input that is bad
 * (JSON it cannot parse is already INVALID_ARGUMENT). This turns that one case into INVALID_ARGUMENT,
 * for gRPC (status in the trailers) and for the Connect protocol (status in the JSON error body).
 */
function withParseErrorsAsInvalidArgument(handler: UniversalHandler): UniversalHandler {
  const fixed = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    const body = res.body;
    if (body === undefined) return res;
    if (res.status === 500) {
      // The Connect protocol: the error is the (small) JSON body of a 500 response.
      const chunks: Uint8Array[] = [];
      for await (const chunk of body) chunks.push(chunk);
      const text = Buffer.concat(chunks).toString("utf8");
      const error = parseJson(text);
      if (error?.code === "internal" && error.message?.startsWith("parse binary:")) {
        const fixedBody = JSON.stringify({
          code: "invalid_argument",
          message: `invalid request message: ${error.message}`,
        });
        return { ...res, status: 400, body: once(new TextEncoder().encode(fixedBody)) };
      }
      return { ...res, body: once(Buffer.concat(chunks)) };
    }
    const { trailer } = res;
    if (!trailer) return res;
    // gRPC: the status arrives in the trailers, written after the body.
    return {
      ...res,
      body: (async function* () {
        yield* body;
        if (trailer.get("grpc-status") === String(Code.Internal)) {
          const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
          if (message.startsWith("parse binary:")) {
            trailer.set("grpc-status", String(Code.InvalidArgument));
            trailer.set("grpc-message", encodeURIComponent(`invalid request message: ${message}`));
          }
        }
      })(),
    };
  };
  return Object.assign(fixed, {
    requestPath: handler.requestPath,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
    service: handler.service,
    method: handler.method,
  }) as UniversalHandler;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function parseJson(text: string): { code?: string; message?: string } | undefined {
  try {
    return JSON.parse(text) as { code?: string; message?: string };
  } catch {
    return undefined;
  }
}

export interface NodeAdapterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly logger: Logger;
}

/**
 * The Node request handler for our routes: connect-node's adapter, with bad protobuf input answered
 * INVALID_ARGUMENT (see withParseErrorsAsInvalidArgument).
 */
export function createNodeAdapter(
  options: NodeAdapterOptions,
): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void {
  const router = createConnectRouter({
    interceptors: options.interceptors,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers)
    paths.set(handler.requestPath, withParseErrorsAsInvalidArgument(handler));
  return (req, res) => {
    const handler = paths.get(req.url.split("?", 2)[0] ?? "");
    if (!handler) {
      res.writeHead(404);
      res.end();
      return;
    }
    handler(universalRequestFromNodeRequest(req, res, undefined, undefined))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, method: handler.method.name }, "handler failed");
      });
  };
}
