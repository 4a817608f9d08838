import neo4j, { type Driver, type ManagedTransaction } from "neo4j-driver";
import { unavailableAsStoreError } from "./neo4j-unavailable.ts";

/** Managed transactions on one database, with outages turned into StoreUnavailableError. */
export interface Neo4jSessions {
  /** The database option of a session or query (empty: the server's default database). */
  readonly config: { readonly database?: string };
  read<T>(work: (tx: ManagedTransaction) => Promise<T>): Promise<T>;
  write<T>(work: (tx: ManagedTransaction) => Promise<T>): Promise<T>;
}

/**
 * One short session per unit of work, as the driver recommends: sessions are cheap, connections
 * come from the driver's pool, and a managed transaction is retried by the driver on transient
 * errors (within its `maxTransactionRetryTime`).
 */
export function neo4jSessions(driver: Driver, database: string | undefined): Neo4jSessions {
  const config = database === undefined ? {} : { database };
  const run = <T>(
    mode: "READ" | "WRITE",
    work: (tx: ManagedTransaction) => Promise<T>,
  ): Promise<T> =>
    unavailableAsStoreError(async () => {
      const session = driver.session({ ...config, defaultAccessMode: neo4j.session[mode] });
      try {
        return mode === "READ" ? await session.executeRead(work) : await session.executeWrite(work);
      } finally {
        await session.close();
      }
    });
  return {
    config,
    read: (work) => run("READ", work),
    write: (work) => run("WRITE", work),
  };
}
