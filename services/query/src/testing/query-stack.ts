import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type CommandApp, loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { createLogger } from "@ctx/config";
import { type StoryId, storyId } from "@ctx/domain";
import {
  commandSnapshotNames,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  provisionCommandSnapshotStream,
  provisionEventStream,
} from "@ctx/event-store";
import { type Projection, rebuildStory } from "@ctx/projector";
import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import { createNeo4jProjection } from "@ctx/read-model-neo4j";
import { createValkeyClient, createValkeyProjection } from "@ctx/read-model-valkey";
import { provisionSnapshotStream } from "@ctx/snapshots";
import {
  connectTestNats,
  stack,
  storeEnv,
  testAuth,
  uniqueName,
  valkeyLogin,
} from "@ctx/test-support";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Valkey } from "iovalkey";
import neo4j, { type Driver } from "neo4j-driver";
import { type QueryApp, startQueryApp } from "../app.ts";
import { loadQueryConfig } from "../config.ts";

// Test harness of the e2e specs: an event stream, read models and snapshot stream no other test
// uses, the query service (and the command service) in-process on it, and real gRPC clients
// (connect-node's gRPC transport over HTTP/2).

export type QueryClient = Client<typeof ContextQueryService>;
export type CommandClient = Client<typeof ContextCommandService>;

export interface RunningQuery {
  readonly app: QueryApp;
  /** http://127.0.0.1:port */
  readonly baseUrl: string;
  readonly client: QueryClient;
}

export interface QueryStack {
  readonly settings: EventStreamSettings;
  readonly namespace: string;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** The event stream, over the test's own connection. */
  readonly store: EventStore;
  /** Starts a query service on the stack; `env` overrides its configuration. */
  startQuery(env?: Readonly<Record<string, string>>): Promise<RunningQuery>;
  /** Starts the command service on the stack's stream. */
  startCommand(): Promise<{ app: CommandApp; baseUrl: string; client: CommandClient }>;
  /** Brings a story's read models (Valkey and Neo4j) up to its events, as a projector would. */
  project(story: string): Promise<void>;
  /**
   * Marks a story stale in a read model (Valkey unless said), as a projector does when it parks
   * one of the story's events.
   */
  markStale(story: string, reason: string, model?: "valkey" | "neo4j"): Promise<void>;
  stop(): Promise<void>;
}

const logger = createLogger({ name: "query-e2e", level: "silent", pretty: false });

export async function startQueryStack(): Promise<QueryStack> {
  const s = stack();
  const name = uniqueName("QRY");
  const settings: EventStreamSettings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: 4,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  const namespace = uniqueName("q");
  const nc = await connectTestNats();
  const jsm = await jetstreamManager(nc);
  await provisionEventStream(jsm, settings);
  // The command service only checks for its snapshot stream; the test provisions it as ctx would.
  await provisionCommandSnapshotStream(jsm, commandSnapshotNames(settings));
  const store = createEventStore(nc, { names: settings });
  const valkey: Valkey = createValkeyClient(valkeyLogin(s));
  const driver: Driver = neo4j.driver(s.neo4jUrl, neo4j.auth.basic(s.neo4jUser, s.neo4jPassword));
  const projections: Projection[] = [
    createValkeyProjection(valkey, { keyPrefix: namespace }),
    createNeo4jProjection(driver, { namespace }),
  ];
  for (const p of projections) await p.init();
  const snapshotStreams: string[] = [];
  const stoppers: (() => Promise<void>)[] = [];
  const baseEnv = {
    ...s.natsEnv,
    // The query service reads Valkey as its own read-only user.
    ...storeEnv(s, "query"),
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    SHUTDOWN_GRACE_MS: "2000",
    LOG_LEVEL: "silent",
    ...testAuth().env,
  };

  return {
    settings,
    namespace,
    nc,
    jsm,
    store,

    async startQuery(env = {}) {
      const snapshotStream = uniqueName("QSNAP");
      snapshotStreams.push(snapshotStream);
      const config = loadQueryConfig({
        ...baseEnv,
        READ_MODEL_NAMESPACE: namespace,
        QUERY_LISTEN: "127.0.0.1:0",
        QUERY_OPS_LISTEN: "127.0.0.1:0",
        SNAPSHOT_STREAM: snapshotStream,
        SNAPSHOT_SUBJECT_PREFIX: snapshotStream.toLowerCase(),
        SNAPSHOTTER_CONSUMER: uniqueName("snapshotter"),
        ...env,
      });
      // The service only checks for its snapshot stream; the test provisions it as ctx would.
      if (config.SNAPSHOTS || config.SNAPSHOTTER) {
        await provisionSnapshotStream(jsm, {
          stream: config.SNAPSHOT_STREAM,
          subjectPrefix: config.SNAPSHOT_SUBJECT_PREFIX,
          replicas: 1,
          duplicateWindowMs: 60_000,
        });
      }
      const app = await startQueryApp(config, logger);
      stoppers.push(() => app.stop());
      const baseUrl = `http://127.0.0.1:${app.rpcPort}`;
      const client = createClient(
        ContextQueryService,
        createGrpcTransport({ baseUrl, interceptors: [withTestToken] }),
      );
      return { app, baseUrl, client };
    },

    async startCommand() {
      const config = loadCommandConfig({
        ...baseEnv,
        COMMAND_LISTEN: "127.0.0.1:0",
        COMMAND_OPS_LISTEN: "127.0.0.1:0",
      });
      const app = await startCommandApp(config, logger);
      stoppers.push(() => app.stop());
      const baseUrl = `http://127.0.0.1:${app.rpcPort}`;
      const client = createClient(
        ContextCommandService,
        createGrpcTransport({ baseUrl, interceptors: [withTestToken] }),
      );
      return { app, baseUrl, client };
    },

    async project(story) {
      for (const p of projections) await rebuildStory(p, store, storyId(story));
    },

    async markStale(story, reason, model = "valkey") {
      const projection = projections[model === "valkey" ? 0 : 1] as Projection;
      await projection.markStale(await projection.activeGeneration(), storyId(story), reason);
    },

    async stop() {
      for (const stopOne of stoppers.reverse()) await stopOne().catch(() => undefined);
      for (const p of projections) {
        for (const g of await p.generations()) await p.dropGeneration(g);
      }
      await valkey.quit().catch(() => valkey.disconnect());
      await driver.close();
      await jsm.streams.delete(settings.stream).catch(() => undefined);
      await jsm.streams.delete(commandSnapshotNames(settings).stream).catch(() => undefined);
      for (const stream of snapshotStreams) await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    },
  };
}

/** A story id no other test uses. */
export const newStory = (): StoryId => storyId(uniqueName("story"));

/**
 * A Connect client interceptor that sends the test issuer's token (all roles) unless the call
 * sets an authorization header of its own.
 */
export const withTestToken: Interceptor = (next) => (req) => {
  if (!req.header.has("authorization")) req.header.set("authorization", testAuth().authorization);
  return next(req);
};
