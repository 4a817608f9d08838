import { readFileSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { startContainerStack } from "./container-stack.ts";
import type { StackEndpoints } from "./endpoints.ts";
import { type RunningStack, startLocalStack, valkeyUsers } from "./local-stack.ts";

/**
 * One set of real servers per test run, shared by every project that needs them:
 * - TEST_NATS_URL, TEST_VALKEY_URL and TEST_NEO4J_URL set: those servers are used as they are
 *   (TEST_NATS_NKEY_SEED_FILE: the NATS identity, if the server has users);
 * - TEST_STACK=containers: testcontainers (needs a Docker engine);
 * - otherwise: the deploy/local processes on free ports, stopped at the end.
 */
interface Shared {
  stack: Promise<RunningStack>;
  users: number;
}
const key = Symbol.for("context-service.test-stack");
const registry = globalThis as unknown as Record<symbol, Shared | undefined>;

function fromEnvironment(): RunningStack | undefined {
  const { TEST_NATS_URL, TEST_VALKEY_URL, TEST_NEO4J_URL } = process.env;
  if (!TEST_NATS_URL || !TEST_VALKEY_URL || !TEST_NEO4J_URL) return undefined;
  const passwordFile = process.env.TEST_NEO4J_PASSWORD_FILE ?? "";
  const endpoints: StackEndpoints = {
    natsUrl: TEST_NATS_URL,
    // TEST_NATS_NKEY_SEED_FILE: the seed of an identity that may create and delete streams.
    natsEnv: {
      NATS_URL: TEST_NATS_URL,
      ...(process.env.TEST_NATS_NKEY_SEED_FILE
        ? { NATS_NKEY_SEED_FILE: process.env.TEST_NATS_NKEY_SEED_FILE }
        : {}),
    },
    valkeyUrl: TEST_VALKEY_URL,
    neo4jUrl: TEST_NEO4J_URL,
    neo4jUser: process.env.TEST_NEO4J_USER ?? "neo4j",
    neo4jPassword:
      process.env.TEST_NEO4J_PASSWORD ??
      (passwordFile ? readFileSync(passwordFile, "utf8").replace(/\r?\n$/, "") : ""),
    neo4jPasswordFile: passwordFile,
    valkeyUsers: externalValkeyUsers(),
  };
  return { endpoints, stop: async () => undefined };
}

/**
 * Valkey users of given servers: TEST_VALKEY_SECRETS_DIR holds a password file per user, as
 * deploy/local/valkey.sh writes them; unset, every role is the default user without a password.
 */
function externalValkeyUsers(): StackEndpoints["valkeyUsers"] {
  const dir = process.env.TEST_VALKEY_SECRETS_DIR;
  if (dir) return valkeyUsers(dir);
  const anonymous = { user: "default", password: "", passwordFile: "" };
  return { admin: anonymous, projector: anonymous, ctx: anonymous, query: anonymous };
}

function start(): Promise<RunningStack> {
  const given = fromEnvironment();
  if (given) return Promise.resolve(given);
  return process.env.TEST_STACK === "containers" ? startContainerStack() : startLocalStack();
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let shared = registry[key];
  if (!shared) {
    shared = { stack: start(), users: 0 };
    registry[key] = shared;
  }
  shared.users += 1;
  const stack = await shared.stack;
  project.provide("stack", stack.endpoints);
  return async () => {
    const current = registry[key];
    if (!current) return;
    current.users -= 1;
    if (current.users === 0) {
      registry[key] = undefined;
      await stack.stop();
    }
  };
}
