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
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackEndpoints;
  }
}
