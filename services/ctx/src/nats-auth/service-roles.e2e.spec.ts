import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type CommandApp, loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { createLogger } from "@ctx/config";
import type { ProjectorApp } from "@ctx/projector-service";
import { ContextCommandService, ContextQueryService, ContextSource } from "@ctx/proto";
import type { QueryApp } from "@ctx/query-service";
import { connectNats, natsConnectionOf } from "@ctx/service";
import {
  type CtxRun,
  eventually,
  freePort,
  runCtx,
  sendTestToken,
  stack,
  startNatsServer,
  storeEnv,
  type TestNatsServer,
  testAuth,
  uniqueName,
} from "@ctx/test-support";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProjectors, startQuery } from "../testing/service-set.ts";

// Issue #21: every service does its whole job with its own NATS user, on a server that runs the
// shipped users (deploy/local/nats.sh): the services wait, not ready, until the operator runs
// `ctx provision`; then append → both projectors → query (current, temporal with snapshots, watch)
// → ctx status, rebuild and parked replay with the operator's identity.

const logger = createLogger({ name: "service-roles", level: "silent", pretty: false });

let server: TestNatsServer;
let common: Record<string, string>;
const stoppers: (() => Promise<void>)[] = [];

/** Runs `bin/ctx` with the operator's identity. */
function ctx(...args: string[]): Promise<CtxRun> {
  return runCtx(args, {
    ...process.env,
    ...common,
    ...storeEnv(stack(), "ctx"),
    ...server.env("ctx"),
  });
}

const readyz = async (port: number) =>
  (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status;

beforeAll(async () => {
  server = await startNatsServer();
  common = {
    READ_MODEL_NAMESPACE: uniqueName("roles"),
    EVENT_PARTITIONS: "4",
    SHUTDOWN_GRACE_MS: "2000",
    LOG_LEVEL: "silent",
  };
});

afterAll(async () => {
  for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
  await server?.stop();
});

describe("the services with their own NATS users", () => {
  let command: CommandApp;
  let query: QueryApp;
  const projectors: ProjectorApp[] = [];

  it("wait, alive and not ready, until the operator provisions; then start", async () => {
    const opsPort = await freePort();
    const starting = startCommandApp(
      loadCommandConfig({
        ...common,
        ...server.env("command"),
        ...testAuth().env,
        COMMAND_LISTEN: "127.0.0.1:0",
        COMMAND_OPS_LISTEN: `127.0.0.1:${opsPort}`,
      }),
      logger,
    );
    await eventually(async () => expect(await readyz(opsPort)).toBe(503));

    const provisioned = await ctx("provision");
    expect(provisioned.stderr).toBe("");
    expect(provisioned.code).toBe(0);
    expect(provisioned.stdout).toMatch(/CONTEXT_EVENTS: 0 events, 4 partitions/);
    expect(provisioned.stdout).toMatch(/KV projector_leases_CONTEXT_EVENTS_valkey: ready/);
    // Twice is fine: provisioning is idempotent.
    expect((await ctx("provision")).code).toBe(0);

    command = await starting;
    stoppers.push(() => command.stop());
    await eventually(async () => expect(await readyz(opsPort)).toBe(200));

    for (const app of await startProjectors(server, common, logger)) {
      stoppers.push(() => app.stop());
      projectors.push(app);
    }
    // The snapshotter writes with its own user; the query user only reads.
    query = await startQuery(server, common, logger, 2);
    stoppers.push(() => query.stop());
  });

  it("append, project into both read models, answer current, temporal and watch queries", async () => {
    const commands = createClient(
      ContextCommandService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${command.rpcPort}`,
        interceptors: [sendTestToken],
      }),
    );
    const queries = createClient(
      ContextQueryService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${query.rpcPort}`,
        interceptors: [sendTestToken],
      }),
    );
    const story = uniqueName("story");
    await commands.createContext({ storyId: story, title: "Checkout" });
    const watch = new AbortController();
    const watched = (async () => {
      const versions: number[] = [];
      for await (const answer of queries.watchContext(
        { storyId: story },
        { signal: watch.signal },
      )) {
        versions.push(answer.state?.version ?? 0);
        if (answer.state?.version === 5) break;
      }
      return versions;
    })();
    await commands.addSubtask({ storyId: story, subtaskId: "s1", title: "Pay" });
    await commands.addSubtask({
      storyId: story,
      subtaskId: "s2",
      title: "Ship",
      dependsOn: ["s1"],
    });
    await commands.addSubtask({ storyId: story, subtaskId: "s3", title: "Bill" });
    await commands.addSubtask({ storyId: story, subtaskId: "s4", title: "Mail" });

    expect((await watched).at(-1)).toBe(5);
    watch.abort();
    await eventually(async () => {
      const current = await queries.getContext({ storyId: story });
      expect(current.source).toBe(ContextSource.READ_MODEL);
      expect(current.version).toBe(5);
    });
    await eventually(async () => {
      const blockers = await queries.getBlockers({ storyId: story, subtaskId: "s2" });
      expect(blockers.blockers.map((b) => b.subtaskId)).toEqual(["s1"]);
    });
    await eventually(async () => expect(await query.snapshotter?.lag()).toBe(0));
    const admin = await connectNats(natsConnectionOf(server.env("admin")));
    try {
      const snapshots = await (await jetstreamManager(admin)).streams.info("CONTEXT_SNAPSHOTS");
      expect(snapshots.state.messages).toBeGreaterThan(0);
    } finally {
      await admin.close();
    }
    const past = await queries.getContextAtVersion({ storyId: story, version: 3 });
    expect(past.version).toBe(3);
    expect(past.context?.subtasks.map((t) => t.subtaskId)).toEqual(["s1", "s2"]);
  });

  it("let the operator see status, rebuild, list, replay and discard parked events", async () => {
    await eventually(async () => {
      const status = await ctx("projections", "status");
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/neo4j: generation \d+, lag 0 events, parked 0, replicas 1/);
      expect(status.stdout).toMatch(/valkey: generation \d+, lag 0 events, parked 0, replicas 1/);
    });
    const stats = await ctx("events", "stats");
    expect(stats.code).toBe(0);
    const rebuild = await ctx("projections", "rebuild", "valkey");
    expect(rebuild.stderr).not.toMatch(/permission/i);
    expect(rebuild.code).toBe(0);

    // An event no projection can read (written past the command service by the admin) is parked.
    const admin = await connectNats(natsConnectionOf(server.env("admin")));
    const broken = uniqueName("broken");
    try {
      await jetstream(admin).publish(
        `context.events.${broken}.SubtaskAdded`,
        new Uint8Array([0x0a, 0xff, 0xff, 0x01]),
      );
    } finally {
      await admin.close();
    }
    await eventually(async () => {
      const list = await ctx("parked", "list");
      expect(list.code).toBe(0);
      expect(list.stdout).toContain(broken);
    });
    const replay = await ctx("parked", "replay", "--story", broken);
    expect(`${replay.stdout}${replay.stderr}`).not.toMatch(/permission/i);
    expect(replay.stdout).toMatch(/still fails/);
    const discard = await ctx("parked", "discard", "--all");
    expect(discard.stderr).toBe("");
    expect(discard.code).toBe(0);
  });
});
