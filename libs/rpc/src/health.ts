import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@ctx/proto/grpc";

export { HealthCheckResponse_ServingStatus as ServingStatus } from "@ctx/proto/grpc";

/**
 * The serving status of a server and of each of its gRPC services, as grpc.health.v1 reports it.
 * The empty service name stands for the whole server.
 */
export interface HealthRegistry {
  set(service: string, status: ServingStatus): void;
  /** Sets every registered service, and the server, to one status (e.g. NOT_SERVING while draining). */
  setAll(status: ServingStatus): void;
  get(service: string): ServingStatus | undefined;
}

type Watcher = (status: ServingStatus) => void;

class Registry implements HealthRegistry {
  readonly statuses = new Map<string, ServingStatus>();
  readonly watchers = new Map<string, Set<Watcher>>();

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const watcher of this.watchers.get(service) ?? []) watcher(status);
  }

  setAll(status: ServingStatus): void {
    for (const service of [...this.statuses.keys(), ""]) this.set(service, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  watch(service: string, watcher: Watcher): () => void {
    let set = this.watchers.get(service);
    if (!set) {
      set = new Set();
      this.watchers.set(service, set);
    }
    set.add(watcher);
    return () => set.delete(watcher);
  }
}

export function createHealthRegistry(services: readonly string[]): HealthRegistry {
  const registry = new Registry();
  for (const service of ["", ...services]) registry.set(service, ServingStatus.NOT_SERVING);
  return registry;
}

const response = (status: ServingStatus): HealthCheckResponse =>
  create(HealthCheckResponseSchema, { status });

/** Serves grpc.health.v1.Health (Check and Watch) from the registry. */
export function registerHealthService(router: ConnectRouter, health: HealthRegistry): void {
  const registry = health as Registry;
  router.service(Health, {
    check(req) {
      const status = registry.get(req.service);
      if (status === undefined)
        throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return response(status);
    },
    async *watch(req, ctx) {
      const queue: ServingStatus[] = [registry.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN];
      let wake: (() => void) | undefined;
      const stop = registry.watch(req.service, (status) => {
        queue.push(status);
        wake?.();
      });
      const aborted = new Promise<void>((resolve) =>
        ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      try {
        while (!ctx.signal.aborted) {
          while (queue.length > 0) yield response(queue.shift() as ServingStatus);
          await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
        }
      } finally {
        stop();
      }
    },
  });
}
