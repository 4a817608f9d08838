import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type CommandApp, loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { createLogger } from "@ctx/config";
import { fold, type StoryId, toContextMessage } from "@ctx/domain";
import { createEventStore, type EventStore, type RecordedEvent } from "@ctx/event-store";
import { listParked } from "@ctx/projector";
import {
  loadProjectorConfig,
  openReadModel,
  type ProjectorApp,
  type ReadModelKind,
  readModelKinds,
  startProjectorApp,
} from "@ctx/projector-service";
import { ContextCommandService } from "@ctx/proto";
import { connectNats, natsConnectionOf } from "@ctx/service";
import {
  eventually,
  metricSum,
  runCtx,
  sendTestToken,
  stack,
  startNatsCluster,
  storeEnv,
  type TestNatsCluster,
  type TestNatsNode,
  testAuth,
  uniqueName,
} from "@ctx/test-support";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busiestNode, expectClusterCurrent, streamLeader } from "./support/cluster-state.ts";
import { type CommandLoad, createCommandLoad } from "./support/command-load.ts";
import { describeProjectors } from "./support/projector-state.ts";
import { auditStream } from "./support/stream-audit.ts";

// Issue #22, faults under load: three nats-server processes on loopback with every stream and
// bucket R3 (provisioned by `ctx provision`), the command service and two projector replicas per
// read model (in-process, each with its own replica id, NATS connections and ops listener, as
// services/projector runs one), and a 20,000-event gRPC load on the command service. During the
// load, one after the other: SIGKILL a node that does not lead the event stream and restart it;
// SIGKILL the stream's leader and restart it; freeze the leader (SIGSTOP, then SIGCONT) long enough
// for the others to elect another, while its clients' requests go unanswered. After each, once the cluster
// is current again: every acknowledged command is in the stream exactly once and nothing else is,
// stories are gapless with intact hash chains, both read models equal the fold of the stream,
// nothing is parked, every event was applied exactly once per model (the replicas'
// ctx_projector_events_applied_total add up to the stream's count), every partition is held by one
// live replica, and the clients saw only OK, UNAVAILABLE or DEADLINE_EXCEEDED.

const STORIES = 300;
const TOTAL_EVENTS = 20_000;
const CONCURRENCY = 48;
const SEED = 22;
const PARTITIONS = 8;
/** How long the frozen leader stays frozen: long enough for the others to elect a new leader. */
const FREEZE_MS = 15_000;
const STREAM = "CONTEXT_EVENTS";
const OK_CODES = ["OK", "Unavailable", "DeadlineExceeded"];

// Errors only (an event parked, an error answered INTERNAL): what explains a failure, on stdout.
const logger = createLogger({ name: "cluster-faults", level: "error", pretty: false });

let cluster: TestNatsCluster;
let common: Record<string, string>;
let command: CommandApp | undefined;
const projectors: { kind: ReadModelKind; id: string; app: ProjectorApp }[] = [];
let nc: NatsConnection;
let jsm: JetStreamManager;
let store: EventStore;
let load: CommandLoad;

/** Runs `bin/ctx` as the operator against the cluster. */
function ctx(...args: string[]) {
  return runCtx(
    args,
    { ...process.env, ...common, ...storeEnv(stack(), "ctx"), ...cluster.env("ctx") },
    120_000,
  );
}

beforeAll(async () => {
  cluster = await startNatsCluster();
  common = {
    READ_MODEL_NAMESPACE: uniqueName("faults"),
    EVENT_PARTITIONS: String(PARTITIONS),
    EVENT_STREAM_REPLICAS: "3",
    SHUTDOWN_GRACE_MS: "2000",
    LOG_LEVEL: "silent",
  };
  const provisioned = await ctx("provision");
  expect(provisioned.stderr).toBe("");
  expect(provisioned.code).toBe(0);

  command = await startCommandApp(
    loadCommandConfig({
      ...common,
      ...cluster.env("command"),
      ...testAuth().env,
      COMMAND_LISTEN: "127.0.0.1:0",
      COMMAND_OPS_LISTEN: "127.0.0.1:0",
    }),
    logger,
  );
  for (const kind of readModelKinds) {
    for (const index of [0, 1]) {
      const id = `${kind}-${index}`;
      const app = await startProjectorApp(
        loadProjectorConfig({
          ...common,
          ...cluster.env(`projector-${kind}`),
          ...storeEnv(stack(), "projector"),
          PROJECTION: kind,
          PROJECTOR_REPLICA_ID: id,
          PROJECTOR_OPS_LISTEN: "127.0.0.1:0",
        }),
        logger,
      );
      projectors.push({ kind, id, app });
    }
  }
  nc = await connectNats(natsConnectionOf(cluster.env("admin")), {
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
  jsm = await jetstreamManager(nc);
  store = createEventStore(nc);
  const client: Client<typeof ContextCommandService> = createClient(
    ContextCommandService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${command.rpcPort}`,
      interceptors: [sendTestToken],
    }),
  );
  load = createCommandLoad({
    client,
    prefix: uniqueName("f"),
    stories: STORIES,
    concurrency: CONCURRENCY,
    seed: SEED,
    deadlineMs: 5_000,
    giveUpMs: 90_000,
  });
}, 240_000);

afterAll(async () => {
  // A node a failed test left frozen would not stop.
  for (const node of cluster?.nodes ?? []) {
    try {
      node.signal("SIGCONT");
    } catch {
      // not running
    }
  }
  for (const { app } of projectors) await app.stop().catch(() => undefined);
  await command?.stop().catch(() => undefined);
  for (const kind of readModelKinds) {
    const model = openReadModel(
      kind,
      loadProjectorConfig({ ...common, ...storeEnv(stack(), "admin"), PROJECTION: kind }),
    );
    for (const g of await model.projection.generations()) await model.projection.dropGeneration(g);
    await model.close();
  }
  await nc?.close();
  await cluster?.stop();
}, 120_000);

/**
 * Runs the load up to `until` acknowledged events with `fault` under way once it has made some
 * progress; the load goes on at least until the fault is over (the node back), so every fault
 * happens, and ends, under load.
 */
async function underLoad(phase: string, until: number, fault: () => Promise<void>): Promise<void> {
  const start = load.events();
  let faultOver = false;
  load.setPhase(`before ${phase}`);
  const loading = load.runUntil(until, () => !faultOver);
  try {
    await eventually(() => expect(load.events()).toBeGreaterThan(start + 1_000), {
      timeout: 120_000,
      interval: 20,
    });
    load.setPhase(phase);
    await fault();
  } finally {
    faultOver = true;
  }
  load.setPhase(`after ${phase}`);
  await loading;
}

/** Waits until the acknowledged events grow by `more`: the cluster takes writes again. */
async function progress(more: number): Promise<void> {
  const mark = load.events();
  await eventually(() => expect(load.events()).toBeGreaterThanOrEqual(mark + more), {
    timeout: 90_000,
    interval: 20,
  });
}

const appliedBy = async (kind: ReadModelKind) => {
  let sum = 0;
  for (const p of projectors) {
    if (p.kind === kind)
      sum += await metricSum(p.app.opsPort, "ctx_projector_events_applied_total");
  }
  return sum;
};

async function expectModelsEqualFold(stories: ReadonlyMap<string, readonly RecordedEvent[]>) {
  for (const kind of readModelKinds) {
    const model = openReadModel(
      kind,
      loadProjectorConfig({ ...common, ...storeEnv(stack(), "admin"), PROJECTION: kind }),
    );
    try {
      const generation = await model.projection.activeGeneration();
      for (const [id, history] of stories) {
        const read = await model.projection.readContext(generation, id as StoryId);
        expect(read?.version, `${kind} ${id}`).toBe(history.length);
        expect(read?.stale, `${kind} ${id}`).toBe(false);
        expect(read?.context, `${kind} ${id}`).toEqual(
          toContextMessage(fold(id as StoryId, history)),
        );
      }
    } finally {
      await model.close();
    }
  }
}

/** Where each model stands, for a failure to explain itself (see describeProjectors). */
async function projectorState(stories: ReadonlyMap<string, readonly RecordedEvent[]>) {
  const models = new Map(
    readModelKinds.map((kind) => [
      kind,
      openReadModel(
        kind,
        loadProjectorConfig({ ...common, ...storeEnv(stack(), "admin"), PROJECTION: kind }),
      ),
    ]),
  );
  try {
    return await describeProjectors({
      jsm,
      stream: STREAM,
      replicas: projectors,
      models,
      partitions: PARTITIONS,
      stories,
    });
  } finally {
    for (const model of models.values()) await model.close();
  }
}

/** Every promise of the issue, checked once the cluster is whole again. */
async function expectNothingLost(phase: string): Promise<void> {
  await eventually(() => expectClusterCurrent(cluster.nodes, jsm), {
    timeout: 120_000,
    interval: 250,
  });
  const codes = Object.fromEntries(
    [...load.codes].map(([p, byCode]) => [p, Object.fromEntries(byCode)]),
  );
  const retried = load.ledger.filter((e) => e.attempts > 1).length;
  const deduplicated = load.ledger.filter((e) => e.deduplicated).length;
  let leasesLost = 0;
  for (const { app } of projectors) {
    leasesLost += await metricSum(app.opsPort, "ctx_projector_leases_lost_total");
  }
  console.info(
    `${phase}: ${load.events()} events acknowledged; ${retried} commands retried, ${deduplicated} of them found stored already (deduplicated); ${leasesLost} leases lost so far; status codes by phase`,
    codes,
  );
  expect(load.failures).toEqual([]);
  // Never INTERNAL, not even for a call whose client had given up before the answer came.
  if (command === undefined) throw new Error("the command service did not start");
  const internal = await metricSum(command.opsPort, "grpc_server_handled_total", {
    grpc_code: "Internal",
  });
  expect(internal, "calls the command service answered INTERNAL").toBe(0);
  for (const byCode of load.codes.values()) {
    for (const code of byCode.keys()) expect(OK_CODES).toContain(code);
  }

  const audit = await auditStream(store, load.ledger);
  expect(audit.problems).toEqual([]);
  expect(audit.events).toBe(load.events());

  // Exactly once in effect: the replicas of a model applied, between them, each event once (a
  // redelivery is skipped by the version guard and counted as skipped, not applied).
  const catchUp = performance.now();
  try {
    await eventually(
      async () => {
        for (const kind of readModelKinds) {
          expect(await appliedBy(kind), kind).toBeGreaterThanOrEqual(audit.events);
        }
      },
      { timeout: 180_000, interval: 500 },
    );
  } catch (e) {
    console.error(`${phase}: the models did not catch up\n${await projectorState(audit.stories)}`);
    throw e;
  }
  // A figure, never asserted: how long the models took to catch up once the load had ended.
  console.info(
    `${phase}: both models caught up ${Math.round(performance.now() - catchUp)} ms after the audit`,
  );
  for (const kind of readModelKinds) expect(await appliedBy(kind), kind).toBe(audit.events);
  await expectModelsEqualFold(audit.stories);
  expect(await listParked(jsm)).toEqual([]);

  // Leases: every partition held by exactly one live replica of each model, every replica ready
  // (a replica is not ready while a partition it should own has been unheld for longer than the
  // failover window).
  await eventually(
    async () => {
      for (const kind of readModelKinds) {
        const owned = projectors.filter((p) => p.kind === kind).flatMap((p) => p.app.owned());
        expect(
          [...owned].sort((a, b) => a - b),
          kind,
        ).toEqual(Array.from({ length: PARTITIONS }, (_, i) => i));
      }
      for (const { id, app } of projectors) {
        const ready = await fetch(`http://127.0.0.1:${app.opsPort}/readyz`);
        expect(ready.status, id).toBe(200);
        expect(await metricSum(app.opsPort, "ctx_projector_partitions_unowned"), id).toBe(0);
      }
    },
    { timeout: 60_000, interval: 250 },
  );
}

describe("a 3-node NATS cluster under load", () => {
  it("loses nothing when a node that does not lead the event stream is killed and restarted", async () => {
    await underLoad("kill-follower", Math.round(TOTAL_EVENTS / 3), async () => {
      const leader = await streamLeader(jsm, STREAM);
      const victim = await busiestNode(cluster.nodes, new Set(leader ? [leader] : []));
      victim.signal("SIGKILL");
      await eventually(() => expect(victim.pid()).toBeUndefined());
      await progress(500);
      await victim.start();
    });
    await expectNothingLost("kill-follower");
  }, 600_000);

  it("loses nothing when the event stream's leader is killed and restarted", async () => {
    await underLoad("kill-leader", Math.round((TOTAL_EVENTS * 2) / 3), async () => {
      const leader = await eventually(async () => {
        const name = await streamLeader(jsm, STREAM);
        expect(name).toBeDefined();
        return name as string;
      });
      const victim = cluster.nodes.find((n) => n.name === leader) as TestNatsNode;
      expect(victim, `the leader ${leader} is a node of the cluster`).toBeDefined();
      const killed = performance.now();
      victim.signal("SIGKILL");
      const successor = await eventually(
        async () => {
          const now = await streamLeader(jsm, STREAM);
          expect(now).toBeDefined();
          expect(now).not.toBe(leader);
          return now;
        },
        { timeout: 60_000, interval: 100 },
      );
      const elected = performance.now();
      await progress(500);
      // Figures for docs/OPERATIONS.md, never asserted.
      console.info(
        `kill-leader: ${successor} leads after ${Math.round(elected - killed)} ms; 500 more events acknowledged after ${Math.round(performance.now() - killed)} ms`,
      );
      await victim.start();
    });
    await expectNothingLost("kill-leader");
  }, 600_000);

  it("loses nothing when the leader is cut off for a few seconds (SIGSTOP, SIGCONT)", async () => {
    await underLoad("freeze-leader", TOTAL_EVENTS, async () => {
      // The leader: the others elect a new one meanwhile, and the old one comes back believing it
      // still leads, with clients connected to it.
      const leader = await eventually(async () => {
        const name = await streamLeader(jsm, STREAM);
        expect(name).toBeDefined();
        return name as string;
      });
      const victim = cluster.nodes.find((n) => n.name === leader) as TestNatsNode;
      victim.signal("SIGSTOP");
      try {
        // The fault's length, not a wait for a condition: the node stays frozen this long.
        await new Promise((r) => setTimeout(r, FREEZE_MS));
      } finally {
        victim.signal("SIGCONT");
      }
    });
    await expectNothingLost("freeze-leader");
    expect(load.events()).toBeGreaterThanOrEqual(TOTAL_EVENTS);
  }, 600_000);
});
