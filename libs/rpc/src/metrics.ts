import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";

/** The kind of an RPC as go-grpc-prometheus's `grpc_type` label names it. */
const grpcType = {
  unary: "unary",
  server_streaming: "server_stream",
  client_streaming: "client_stream",
  bidi_streaming: "bidi_stream",
} as const;

/**
 * Counts and times every RPC by method and status code, under the names and labels of the gRPC
 * ecosystem (go-grpc-prometheus, which Grafana's gRPC dashboards read): `grpc_server_handled_total`
 * and `grpc_server_handling_seconds`, labelled `grpc_type`, `grpc_service`, `grpc_method` and (for
 * the count) `grpc_code`, the code's name ("OK", "NotFound", ...).
 */
export function metricsInterceptor(registry: Registry): Interceptor {
  const handled = new Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the server, by type, service, method and gRPC status code",
    labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "grpc_server_handling_seconds",
    help: "Time to handle an RPC on the server until its response (for a stream: its start), by type, service and method",
    labelNames: ["grpc_type", "grpc_service", "grpc_method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  // The children of a method, looked up once: prom-client hashes the label values on every call.
  const byMethod = new Map<
    DescMethod,
    {
      labels: readonly [string, string, string];
      ok: ReturnType<typeof handled.labels>;
      duration: ReturnType<typeof duration.labels>;
    }
  >();
  const childrenOf = (method: DescMethod) => {
    let children = byMethod.get(method);
    if (children === undefined) {
      const labels = [grpcType[method.methodKind], method.parent.typeName, method.name] as const;
      children = {
        labels,
        ok: handled.labels(...labels, "OK"),
        duration: duration.labels(...labels),
      };
      byMethod.set(method, children);
    }
    return children;
  };
  return (next) => async (req) => {
    const children = childrenOf(req.method);
    const started = performance.now();
    try {
      const res = await next(req);
      children.ok.inc();
      return res;
    } catch (e) {
      const code = Code[ConnectError.from(e).code] ?? "Unknown";
      handled.labels(...children.labels, code).inc();
      throw e;
    } finally {
      children.duration.observe((performance.now() - started) / 1000);
    }
  };
}
