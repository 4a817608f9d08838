import type { Logger } from "@ctx/config";
import { loadProjectorConfig, type ProjectorApp, startProjectorApp } from "@ctx/projector-service";
import { loadQueryConfig, type QueryApp, startQueryApp } from "@ctx/query-service";
import { stack, storeEnv, type TestNatsServer, testAuth } from "@ctx/test-support";

/**
 * Both projectors (neo4j, valkey), one replica each, on a server that runs the shipped NATS users:
 * each with its own user, as deploy/local and the manifests start them. `common`: the variables
 * every process of the spec shares (namespace, partitions, log level).
 */
export async function startProjectors(
  server: TestNatsServer,
  common: Readonly<Record<string, string>>,
  logger: Logger,
): Promise<ProjectorApp[]> {
  const apps: ProjectorApp[] = [];
  for (const projection of ["neo4j", "valkey"] as const) {
    apps.push(
      await startProjectorApp(
        loadProjectorConfig({
          ...common,
          ...server.env(`projector-${projection}`),
          ...storeEnv(stack(), "projector"),
          PROJECTION: projection,
          PROJECTOR_REPLICA_ID: `${projection}-0`,
          PROJECTOR_OPS_LISTEN: "127.0.0.1:0",
        }),
        logger,
      ),
    );
  }
  return apps;
}

/**
 * The query service with its snapshotter, each with its own NATS user (the snapshotter writes, the
 * query user only reads), snapshots every `snapshotInterval` events.
 */
export function startQuery(
  server: TestNatsServer,
  common: Readonly<Record<string, string>>,
  logger: Logger,
  snapshotInterval: number,
): Promise<QueryApp> {
  const snapshotter = Object.fromEntries(
    Object.entries(server.env("snapshotter")).map(([k, v]) => [`SNAPSHOTTER_${k}`, v]),
  );
  return startQueryApp(
    loadQueryConfig({
      ...common,
      ...server.env("query"),
      ...storeEnv(stack(), "query"),
      ...snapshotter,
      ...testAuth().env,
      QUERY_LISTEN: "127.0.0.1:0",
      QUERY_OPS_LISTEN: "127.0.0.1:0",
      SNAPSHOT_INTERVAL: String(snapshotInterval),
    }),
    logger,
  );
}
