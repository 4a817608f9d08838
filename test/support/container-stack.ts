import type { StackEndpoints } from "./endpoints.ts";
import type { RunningStack } from "./local-stack.ts";

/**
 * The same three servers from their official images, for machines with a Docker engine
 * (TEST_STACK=containers). Kept thin on purpose: the local process stack is the one CI runs.
 */
const anonymous = { user: "default", password: "", passwordFile: "" };

export async function startContainerStack(): Promise<RunningStack> {
  const [{ NatsContainer }, { ValkeyContainer }, { Neo4jContainer }] = await Promise.all([
    import("@testcontainers/nats"),
    import("@testcontainers/valkey"),
    import("@testcontainers/neo4j"),
  ]);
  const [nats, valkey, neo4j] = await Promise.all([
    new NatsContainer("nats:2.12-alpine").withJetStream().start(),
    new ValkeyContainer("valkey/valkey:8.0").start(),
    new Neo4jContainer("neo4j:5.26-community").withPassword("test-password").start(),
  ]);
  const natsUrl = `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`;
  const endpoints: StackEndpoints = {
    natsUrl,
    // The image's server runs without users (deploy/local's does not).
    natsEnv: { NATS_URL: natsUrl },
    valkeyUrl: valkey.getConnectionUrl(),
    neo4jUrl: neo4j.getBoltUri(),
    neo4jUser: neo4j.getUsername(),
    neo4jPassword: neo4j.getPassword(),
    // No password files, no ACL users: the containers run as their images come (see DEVELOPMENT.md).
    neo4jPasswordFile: "",
    valkeyUsers: { admin: anonymous, projector: anonymous, ctx: anonymous, query: anonymous },
  };
  return {
    endpoints,
    stop: async () => {
      await Promise.all([nats.stop(), valkey.stop(), neo4j.stop()]);
    },
  };
}
