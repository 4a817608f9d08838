/** Where the servers of a test run listen. Passed from the global setup to every spec. */
export interface StackEndpoints {
  readonly natsUrl: string;
  /**
   * The variables of the test run's NATS identity (NATS_URL and its credentials): the admin of the
   * local stack, which may create and delete the unique streams each spec uses.
   */
  readonly natsEnv: Readonly<Record<string, string>>;
  readonly valkeyUrl: string;
  readonly neo4jUrl: string;
  readonly neo4jUser: string;
  readonly neo4jPassword: string;
  /** The file neo4jPassword is in, for the services' NEO4J_PASSWORD_FILE. */
  readonly neo4jPasswordFile: string;
  /** Valkey's ACL users (deploy/local/valkey.sh); tests' own clients log in as admin. */
  readonly valkeyUsers: Readonly<Record<ValkeyRole, StoreLogin>>;
}

/** Valkey's users: admin may do anything; projector and ctx write the read model; query reads it. */
export type ValkeyRole = "admin" | "projector" | "ctx" | "query";

/** A user of a store, with the password and the file it is in (what a service is given). */
export interface StoreLogin {
  readonly user: string;
  readonly password: string;
  readonly passwordFile: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackEndpoints;
  }
}
