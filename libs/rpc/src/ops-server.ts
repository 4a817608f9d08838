import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface OpsServerOptions {
  readonly host: string;
  readonly port: number;
  /** Prometheus metrics served on /metrics. */
  readonly registry: Registry;
  /** Ready to take traffic: /readyz answers 200 when true, 503 otherwise. */
  readonly ready: () => boolean;
  /** HTTPS instead of HTTP (PEM contents). */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /**
   * What the listener serves: probes (/healthz, /readyz) and metrics by default. A listener of
   * metrics only keeps them private while the probes' port is open to the kubelet.
   */
  readonly serve?: { readonly probes: boolean; readonly metrics: boolean };
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The HTTP endpoints Kubernetes and Prometheus use: /healthz (the process is alive), /readyz (it can
 * serve: its stores are reachable and it is not draining) and /metrics.
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const serve = options.serve ?? { probes: true, metrics: true };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (serve.probes && path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (serve.probes && path === "/readyz") {
      const ready = options.ready();
      res
        .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
        .end(ready ? "ready\n" : "not ready\n");
    } else if (serve.metrics && path === "/metrics") {
      options.registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": options.registry.contentType }).end(body),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    } else {
      res.writeHead(404).end();
    }
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handle)
    : createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The ops listener, and a second one for /metrics alone when `metricsListen` is given (then the
 * first serves the probes only). Closing closes both.
 */
export async function startOpsListeners(
  options: Omit<OpsServerOptions, "serve"> & {
    readonly metricsListen?: { readonly host: string; readonly port: number };
  },
): Promise<OpsServer & { readonly metricsPort: number }> {
  const { metricsListen, ...common } = options;
  if (metricsListen === undefined) {
    const ops = await startOpsServer(common);
    return { ...ops, metricsPort: ops.port, close: () => ops.close() };
  }
  const ops = await startOpsServer({ ...common, serve: { probes: true, metrics: false } });
  const metrics = await startOpsServer({
    ...common,
    ...metricsListen,
    serve: { probes: false, metrics: true },
  }).catch(async (e: unknown) => {
    await ops.close();
    throw e;
  });
  return {
    port: ops.port,
    metricsPort: metrics.port,
    close: async () => {
      await Promise.all([ops.close(), metrics.close()]);
    },
  };
}
