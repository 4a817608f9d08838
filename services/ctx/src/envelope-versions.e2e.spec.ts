import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type CommandApp, loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { createLogger } from "@ctx/config";
import {
  ContextCommandService,
  ContextQueryService,
  ContextSource,
  SubtaskStatus,
} from "@ctx/proto";
import type { QueryApp } from "@ctx/query-service";
import { connectNats, natsConnectionOf } from "@ctx/service";
import {
  type CtxRun,
  eventually,
  runCtx,
  runVerifyChain,
  sendTestToken,
  stack,
  startNatsServer,
  storeEnv,
  type TestNatsServer,
  testAuth,
  uniqueName,
} from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProjectors, startQuery } from "./testing/service-set.ts";

// Issue #26: a story written partly in envelope version 1 (a command service at
// EVENT_ENVELOPE_VERSION=1, as before an upgrade) and partly in version 2 (after it), and a story
// written in version 2 alone, are read, projected into both read models, queried (current,
// temporal with snapshots across the boundary, graph) and verified (ctx and the independent
// verifier) alike: one chain per story, whatever the envelope of each of its events.

const logger = createLogger({ name: "envelope-versions", level: "silent", pretty: false });

let server: TestNatsServer;
let common: Record<string, string>;
let query: QueryApp;
const stoppers: (() => Promise<void>)[] = [];

function ctx(...args: string[]): Promise<CtxRun> {
  return runCtx(
    args,
    { ...process.env, ...common, ...storeEnv(stack(), "ctx"), ...server.env("ctx") },
    60_000,
  );
}

async function startCommand(envelopeVersion: "1" | "2"): Promise<CommandApp> {
  const app = await startCommandApp(
    loadCommandConfig({
      ...common,
      ...server.env("command"),
      ...testAuth().env,
      COMMAND_LISTEN: "127.0.0.1:0",
      COMMAND_OPS_LISTEN: "127.0.0.1:0",
      EVENT_ENVELOPE_VERSION: envelopeVersion,
    }),
    logger,
  );
  stoppers.push(() => app.stop());
  return app;
}

const commandsOf = (app: CommandApp) =>
  createClient(
    ContextCommandService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${app.rpcPort}`,
      interceptors: [sendTestToken],
    }),
  );

beforeAll(async () => {
  server = await startNatsServer();
  common = {
    READ_MODEL_NAMESPACE: uniqueName("envelopes"),
    EVENT_PARTITIONS: "4",
    SHUTDOWN_GRACE_MS: "1000",
    LOG_LEVEL: "silent",
  };
  expect((await ctx("provision")).code).toBe(0);
  for (const app of await startProjectors(server, common, logger)) stoppers.push(() => app.stop());
  query = await startQuery(server, common, logger, 2);
  stoppers.push(() => query.stop());
}, 120_000);

afterAll(async () => {
  for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
  await server?.stop();
});

describe("histories in envelope versions 1 and 2", () => {
  it("are read, projected, queried and verified alike", async () => {
    const mixed = uniqueName("mixed");
    const fresh = uniqueName("fresh");

    // Given a story begun by a command service that writes version 1 …
    const before = await startCommand("1");
    const v1 = commandsOf(before);
    await v1.createContext({ storyId: mixed, title: "Checkout" });
    await v1.addSubtask({ storyId: mixed, subtaskId: "s1", title: "Pay" });
    await v1.addSubtask({ storyId: mixed, subtaskId: "s2", title: "Ship", dependsOn: ["s1"] });
    await before.stop();
    // … and carried on, after the upgrade, by one that writes version 2 (a cold load of it, too).
    const after = await startCommand("2");
    const v2 = commandsOf(after);
    await v2.addDecision({
      storyId: mixed,
      decisionId: "d1",
      title: "Use NATS",
      rationale: "Streams and KV in one server",
      madeBy: "ana",
      affectsSubtaskIds: ["s2"],
    });
    await v2.updateSubtask({
      storyId: mixed,
      subtaskId: "s1",
      status: SubtaskStatus.IN_PROGRESS,
    });
    const retried = await v2.addSubtask({
      storyId: mixed,
      subtaskId: "s3",
      title: "Bill",
      commandId: "0190a6f1-7f2a-7cc1-8d5e-3b1c2d4e5f60",
    });
    // A retry of a version 2 command is answered from the stream, as for version 1.
    const again = await v2.addSubtask({
      storyId: mixed,
      subtaskId: "s3",
      title: "Bill",
      commandId: "0190a6f1-7f2a-7cc1-8d5e-3b1c2d4e5f60",
    });
    expect(again.result?.deduplicated).toBe(true);
    expect(again.result?.eventIds).toEqual(retried.result?.eventIds);
    await v2.createContext({ storyId: fresh, title: "Returns" });
    await v2.addSubtask({ storyId: fresh, subtaskId: "r1", title: "Label" });

    // Then the stream holds both versions in one story (told apart by their first byte).
    const admin = await connectNats(natsConnectionOf(server.env("admin")));
    try {
      const jsm = await jetstreamManager(admin);
      const firstBytes: number[] = [];
      for (let seq = 1; ; seq++) {
        const m = await jsm.streams.getMessage("CONTEXT_EVENTS", { seq }).catch(() => null);
        if (m === null) break;
        if (m.subject.includes(`.${mixed}.`)) firstBytes.push(m.data[0] as number);
      }
      expect(firstBytes).toEqual([0x0a, 0x0a, 0x0a, 0x08, 0x08, 0x08]);
    } finally {
      await admin.close();
    }

    const queries = createClient(
      ContextQueryService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${query.rpcPort}`,
        interceptors: [sendTestToken],
      }),
    );
    // Read: every event, one chain across the versions.
    const listed = await queries.listEvents({ storyId: mixed });
    expect(listed.events.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(listed.events.map((e) => e.envelopeVersion)).toEqual([0, 0, 0, 2, 2, 2]);
    for (let i = 1; i < listed.events.length; i++) {
      expect(listed.events[i]?.prevHash).toEqual(listed.events[i - 1]?.hash);
    }
    expect(listed.events[5]?.eventId).toBe(retried.result?.eventIds[0]);
    // Projected into both read models, and queried: current, graph, temporal across the boundary.
    await eventually(async () => {
      const current = await queries.getContext({ storyId: mixed });
      expect(current.source).toBe(ContextSource.READ_MODEL);
      expect(current.version).toBe(6);
      expect(current.context?.subtasks.map((s) => s.subtaskId)).toEqual(["s1", "s2", "s3"]);
      expect(current.context?.decisions.map((d) => d.decisionId)).toEqual(["d1"]);
    });
    await eventually(async () => {
      const blockers = await queries.getBlockers({ storyId: mixed, subtaskId: "s2" });
      expect(blockers.blockers.map((b) => b.subtaskId)).toEqual(["s1"]);
      const affected = await queries.getAffectedSubtasks({ storyId: mixed, decisionId: "d1" });
      expect(affected.subtasks.map((s) => s.subtaskId)).toEqual(["s2"]);
    });
    await eventually(async () => expect(await query.snapshotter?.lag()).toBe(0));
    for (const version of [2, 3, 4, 5, 6]) {
      const past = await queries.getContextAtVersion({ storyId: mixed, version });
      expect(past.version).toBe(version);
    }
    expect(
      (await queries.getContextAtVersion({ storyId: mixed, version: 4 })).context?.decisions,
    ).toHaveLength(1);
    await eventually(async () => {
      const current = await queries.getContext({ storyId: fresh });
      expect(current.version).toBe(2);
    });

    // Verified: ctx from the stream, and the independent verifier from the bytes the query
    // service hands out (ListStoredEvents, ContextAuditService).
    const verified = await ctx("audit", "verify", "--all", "--json");
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ stories: 2, breaks: [] });
    const queryUrl = `http://127.0.0.1:${query.rpcPort}`;
    for (const story of [mixed, fresh]) {
      const one = await runVerifyChain<{ breaks: unknown[] }>(queryUrl, ["--story", story]);
      expect(one.code).toBe(0);
    }
    const all = await runVerifyChain<{ stories: number; breaks: unknown[] }>(queryUrl, ["--all"]);
    expect(all.code).toBe(0);
    expect(all.result).toMatchObject({ stories: 2, breaks: [] });
  });
});
