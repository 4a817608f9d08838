import type { Projection } from "@ctx/projector";
import {
  createNeo4jDriver,
  createNeo4jProjection,
  type Neo4jConnectionConfig,
  neo4jConnection,
} from "@ctx/read-model-neo4j";
import {
  createValkeyClient,
  createValkeyProjection,
  type ValkeyConnectionConfig,
  valkeyConnection,
} from "@ctx/read-model-valkey";
import type { ReadModelKind } from "./config.ts";

export interface ReadModelSettings extends ValkeyConnectionConfig, Neo4jConnectionConfig {
  readonly NEO4J_DATABASE?: string | undefined;
  readonly READ_MODEL_NAMESPACE: string;
}

/** An open read model: the projection, and how to close the client it owns. */
export interface OpenReadModel {
  readonly projection: Projection;
  close(): Promise<void>;
}

/** Opens the read model of a kind with its own client (the projector service and ctx use this). */
export function openReadModel(kind: ReadModelKind, settings: ReadModelSettings): OpenReadModel {
  switch (kind) {
    case "valkey": {
      const valkey = createValkeyClient(valkeyConnection(settings));
      return {
        projection: createValkeyProjection(valkey, { keyPrefix: settings.READ_MODEL_NAMESPACE }),
        close: async () => {
          await valkey.quit().catch(() => valkey.disconnect());
        },
      };
    }
    case "neo4j": {
      const driver = createNeo4jDriver(neo4jConnection(settings), {
        connectionAcquisitionTimeout: 5_000,
        connectionTimeout: 3_000,
        maxTransactionRetryTime: 0,
      });
      return {
        projection: createNeo4jProjection(driver, {
          namespace: settings.READ_MODEL_NAMESPACE,
          ...(settings.NEO4J_DATABASE ? { database: settings.NEO4J_DATABASE } : {}),
        }),
        close: () => driver.close(),
      };
    }
    default: {
      const exhaustive: never = kind;
      throw new Error(`unknown read model ${String(exhaustive)}`);
    }
  }
}
