import type { StoresConfig } from "@ctx/config";
import type { Projection } from "@ctx/projector";
import { createNeo4jProjection } from "@ctx/read-model-neo4j";
import { createValkeyClient, createValkeyProjection } from "@ctx/read-model-valkey";
import neo4j from "neo4j-driver";
import type { ReadModelKind } from "./config.ts";

export interface ReadModelSettings
  extends Pick<StoresConfig, "VALKEY_URL" | "NEO4J_URL" | "NEO4J_USER" | "NEO4J_PASSWORD"> {
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
      const valkey = createValkeyClient(settings.VALKEY_URL);
      return {
        projection: createValkeyProjection(valkey, { keyPrefix: settings.READ_MODEL_NAMESPACE }),
        close: async () => {
          await valkey.quit().catch(() => valkey.disconnect());
        },
      };
    }
    case "neo4j": {
      const auth =
        settings.NEO4J_PASSWORD === ""
          ? neo4j.auth.basic(settings.NEO4J_USER, "")
          : neo4j.auth.basic(settings.NEO4J_USER, settings.NEO4J_PASSWORD);
      const driver = neo4j.driver(settings.NEO4J_URL, auth, {
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
