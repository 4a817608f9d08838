/** Where the servers of a test run listen. Passed from the global setup to every spec. */
export interface StackEndpoints {
  readonly natsUrl: string;
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
