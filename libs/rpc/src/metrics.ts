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
  return (next) => async (req) => {
    const labels = { service: req.service.typeName, method: req.method.name };
    const end = duration.startTimer(labels);
    try {
      const res = await next(req);
      handled.inc({ ...labels, code: "OK" });
      return res;
    } catch (e) {
      handled.inc({ ...labels, code: Code[ConnectError.from(e).code] ?? "Unknown" });
      throw e;
    } finally {
      end();
    }
  };
}
