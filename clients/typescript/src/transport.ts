import type { Interceptor, Transport } from "@connectrpc/connect";

/**
 * How the client reaches the services: "node" (connect-node: HTTP/2 or HTTP/1.1, loaded only when
 * chosen, so a browser bundle never runs it), "web" (connect-web over fetch: browsers, Deno, Node),
 * or transports of your own (one for both services, or one each).
 */
export type TransportChoice =
  | "node"
  | "web"
  | Transport
  | { readonly command: Transport; readonly query: Transport };

/** The wire protocol: Connect (default), gRPC (node only, HTTP/2) or gRPC-Web. */
export type Protocol = "connect" | "grpc" | "grpc-web";

export interface TransportSettings {
  readonly transport: "node" | "web";
  readonly protocol: Protocol;
  /** node only: "2" (default) or "1.1" (not with gRPC). */
  readonly httpVersion: "1.1" | "2";
  readonly interceptors: readonly Interceptor[];
  /** web only: the fetch to call (default globalThis.fetch). */
  readonly fetch?: typeof globalThis.fetch;
}

/**
 * A transport to the URL `baseUrl()` gives, as the settings say. Settings that cannot work throw
 * here; the URL is asked for and the transport's module imported on the first call (a client
 * used for queries only needs no command URL, a browser bundle never runs connect-node).
 */
export function createTransport(baseUrl: () => string, settings: TransportSettings): Transport {
  if (settings.protocol === "grpc" && settings.transport === "web") {
    throw new TypeError('protocol "grpc" needs HTTP/2 trailers: use transport "node"');
  }
  if (settings.protocol === "grpc" && settings.httpVersion !== "2") {
    throw new TypeError('protocol "grpc" needs httpVersion "2"');
  }
  let made: Promise<Transport> | undefined;
  const get = () => {
    made ??= connect(baseUrl(), settings);
    return made;
  };
  return {
    unary: (async (...args: Parameters<Transport["unary"]>) =>
      (await get()).unary(...args)) as Transport["unary"],
    stream: (async (...args: Parameters<Transport["stream"]>) =>
      (await get()).stream(...args)) as Transport["stream"],
  };
}

async function connect(baseUrl: string, settings: TransportSettings): Promise<Transport> {
  const interceptors = [...settings.interceptors];
  if (settings.transport === "web") {
    const web = await import("@connectrpc/connect-web");
    const options = { baseUrl, interceptors, ...(settings.fetch ? { fetch: settings.fetch } : {}) };
    return settings.protocol === "grpc-web"
      ? web.createGrpcWebTransport(options)
      : web.createConnectTransport(options);
  }
  const node = await import("@connectrpc/connect-node");
  const { httpVersion } = settings;
  switch (settings.protocol) {
    case "grpc":
      return node.createGrpcTransport({ baseUrl, interceptors });
    case "grpc-web":
      return node.createGrpcWebTransport({ baseUrl, httpVersion, interceptors });
    case "connect":
      return node.createConnectTransport({ baseUrl, httpVersion, interceptors });
    default: {
      const never: never = settings.protocol;
      return never;
    }
  }
}

/**
 * The bearer token on every call that has no authorization header of its own; `getToken` is
 * asked before each call, so a refreshed token is used as soon as it exists.
 */
export function bearerToken(getToken: () => string | Promise<string>): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has("authorization")) {
      req.header.set("authorization", `Bearer ${await getToken()}`);
    }
    return next(req);
  };
}
