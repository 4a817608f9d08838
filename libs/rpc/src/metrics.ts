import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";

/** Counts and times every RPC by method and status code. */
export function metricsInterceptor(registry: Registry): Interceptor {
  const handled = new Counter({
    name: "rpc_server_handled_total",
    help: "RPCs completed, by service, method and gRPC status code",
    labelNames: ["service", "method", "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "rpc_server_handling_seconds",
    help: "Time to handle an RPC, by service and method",
    labelNames: ["service", "method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  // The children of a method, looked up once: prom-client hashes the label values on every call.
  const byMethod = new Map<
    DescMethod,
    { ok: ReturnType<typeof handled.labels>; duration: ReturnType<typeof duration.labels> }
  >();
  const childrenOf = (method: DescMethod) => {
    let children = byMethod.get(method);
    if (children === undefined) {
      const labels = [method.parent.typeName, method.name] as const;
      children = { ok: handled.labels(...labels, "OK"), duration: duration.labels(...labels) };
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
      handled.labels(req.service.typeName, req.method.name, code).inc();
      throw e;
    } finally {
      children.duration.observe((performance.now() - started) / 1000);
    }
  };
}
