import { execFileSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@ctx/config";
import {
  type ContextEventData,
  type ContextState,
  fold,
  type StoryId,
  storyId,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  type BackupManifest,
  backupStreams,
  createEventStore,
  type EventStore,
  isStreamBackupError,
  openBackup,
  provisionEventStream,
  verifyChain,
} from "@ctx/event-store";
import { withPlainBytes } from "@ctx/event-store/testing";
import {
  defaultParkingNames,
  type Projection,
  provisionParking,
  rebuildProjection,
} from "@ctx/projector";
import {
  createNeo4jDriver,
  createNeo4jGraphReader,
  createNeo4jProjection,
  type GraphReader,
  type StoryGraphEdge,
} from "@ctx/read-model-neo4j";
import { createValkeyClient, createValkeyProjection } from "@ctx/read-model-valkey";
import { connectNats, natsConnectionOf } from "@ctx/service";
import {
  type CtxRun,
  eventually,
  runCtx,
  stack,
  startNatsCluster,
  startNatsServer,
  type TestNatsCluster,
  type TestNatsServer,
  uniqueName,
  valkeyLogin,
} from "@ctx/test-support";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Valkey } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Issue #22: `ctx streams backup` and `ctx streams restore`, end to end with the real CLI as the
// operator's NATS user. Stories written as the command service writes them (several events per
// command, atomically) are backed up while appends go on, restored into a second, empty server, and
// then read, verify and project exactly as before, into both read models (Valkey and the Neo4j graph).

const logger = createLogger({ name: "stream-backup-test", level: "silent", pretty: false });
const events = "CONTEXT_EVENTS";
const partitions = 16;

let source: TestNatsServer;
let target: TestNatsServer;
let sourceNc: NatsConnection;
let targetNc: NatsConnection;
let sourceStore: EventStore;
let work: string;
const valkeys: Valkey[] = [];
let neo4jDriver: ReturnType<typeof createNeo4jDriver> | undefined;
const graphs: Projection[] = [];
const stories: StoryId[] = [];

/** `bin/ctx` as the operator (the ctx user) of a server. */
function ctx(server: NatsServers, args: readonly string[]): Promise<CtxRun> {
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    STACK_DIR: join(work, "no-stack"),
    ...server.env("ctx"),
  };
  return runCtx(args, env, 120_000);
}

/** A server or a cluster: what a role connects with. */
type NatsServers = Pick<TestNatsServer, "env">;

async function admin(server: NatsServers): Promise<NatsConnection> {
  return connectNats(natsConnectionOf(server.env("admin")), { timeout: 5_000 });
}

/**
 * The n-th event of a story after its creation. In turns of four: a subtask; one depending on it; a
 * decision affecting both; the previous turn's decision superseded by this turn's. Every kind of
 * relationship of the graph model comes up.
 */
function storyEvent(n: number): ContextEventData {
  switch (n % 4) {
    case 1:
      return eventData.subtaskAdded({
        subtaskId: `t${n}`,
        title: `subtask ${n}`,
        dependsOn: [`t${n - 1}`],
      });
    case 2:
      return eventData.decisionAdded({
        decisionId: `d${n}`,
        title: `decision ${n}`,
        rationale: "r",
        affectsSubtaskIds: [`t${n - 2}`, `t${n - 1}`],
      });
    case 3:
      if (n >= 7) {
        return eventData.decisionSuperseded({
          decisionId: `d${n - 5}`,
          supersededByDecisionId: `d${n - 1}`,
        });
      }
      return eventData.subtaskAdded({ subtaskId: `t${n}`, title: `subtask ${n}` });
    default:
      return eventData.subtaskAdded({ subtaskId: `t${n}`, title: `subtask ${n}` });
  }
}

/** A story's commands: each appends 1–5 events at once, as one atomic batch. */
async function writeStory(store: EventStore, id: StoryId, commands: number, seed: number) {
  let version = 0;
  let n = 0;
  for (let c = 0; c < commands; c++) {
    const batch: ContextEventData[] = [];
    if (version === 0) batch.push(eventData.contextCreated({ title: `story ${id}` }));
    const size = 1 + ((seed + c * 7) % 5);
    while (batch.length < size) batch.push(storyEvent(n++));
    const result = await store.append(
      id,
      batch.map((data) => ({ data, commandId: `${id}-c${c}` })),
      streamVersion(version),
    );
    version = result.version;
  }
  return version;
}

async function allMessages(jsm: JetStreamManager, last: number) {
  const out = [];
  for (let seq = 1; seq <= last; seq++) {
    const m = await jsm.streams.getMessage(events, { seq });
    out.push({
      seq: m?.seq,
      subject: m?.subject,
      time: m?.timestamp,
      data: Buffer.from(m?.data ?? []).toString("base64"),
      header: m?.header ? [...m.header.keys()].map((k) => [k, m.header.values(k)]) : [],
    });
  }
  return out;
}

async function project(nc: NatsConnection, keyPrefix: string): Promise<Projection> {
  const valkey = createValkeyClient(valkeyLogin(stack()));
  valkeys.push(valkey);
  const projection = createValkeyProjection(valkey, { keyPrefix });
  await rebuiltFrom(nc, projection);
  return projection;
}

/** Rebuilds a model from a server's whole stream; readers switch to it. */
async function rebuiltFrom(nc: NatsConnection, projection: Projection): Promise<void> {
  const result = await rebuildProjection({
    nc,
    store: createEventStore(nc),
    partitions,
    projection,
    logger,
    dropDelayMs: 0,
  });
  expect(result.switched).toBe(true);
}

/** The Neo4j graph model of a server's stream, rebuilt from it, and the graph questions' reader. */
async function projectGraph(
  nc: NatsConnection,
  namespace: string,
): Promise<{ projection: Projection; reader: GraphReader }> {
  if (neo4jDriver === undefined) {
    const { neo4jUrl, neo4jUser, neo4jPassword } = stack();
    neo4jDriver = createNeo4jDriver({ url: neo4jUrl, user: neo4jUser, password: neo4jPassword });
  }
  const projection = createNeo4jProjection(neo4jDriver, { namespace });
  graphs.push(projection);
  await projection.init();
  await rebuiltFrom(nc, projection);
  return { projection, reader: createNeo4jGraphReader(neo4jDriver, { namespace }) };
}

/** A story's relationships as the fold of its events has them, in a fixed order. */
function edgesOf(state: ContextState): StoryGraphEdge[] {
  const context = toContextMessage(state);
  return sortedEdges([
    ...context.decisions.flatMap((d) => [
      ...d.affectsSubtaskIds.map((t) => ({ type: "AFFECTS" as const, from: d.decisionId, to: t })),
      ...(d.supersededByDecisionId === ""
        ? []
        : [{ type: "SUPERSEDES" as const, from: d.supersededByDecisionId, to: d.decisionId }]),
    ]),
    ...context.subtasks.flatMap((t) =>
      t.dependsOn.map((on) => ({ type: "DEPENDS_ON" as const, from: t.subtaskId, to: on })),
    ),
  ]);
}

const sortedEdges = (edges: readonly StoryGraphEdge[]) =>
  [...edges].sort((a, b) =>
    `${a.type} ${a.from} ${a.to}`.localeCompare(`${b.type} ${b.from} ${b.to}`),
  );

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ctx-backup-"));
  [source, target] = await Promise.all([startNatsServer(), startNatsServer()]);
  sourceNc = await admin(source);
  targetNc = await admin(target);
  const jsm = await jetstreamManager(sourceNc);
  await provisionEventStream(jsm);
  await provisionParking(jsm);
  sourceStore = createEventStore(sourceNc);
  // 40 stories, about 3,000 events.
  for (let i = 0; i < 40; i++) stories.push(storyId(`${uniqueName("bk")}-${i}`));
  await Promise.all(stories.map((id, i) => writeStory(sourceStore, id, 25, i)));
});

afterAll(async () => {
  await Promise.all(valkeys.map((v) => v.quit().catch(() => undefined)));
  // The graphs this file wrote leave the shared Neo4j.
  for (const graph of graphs) {
    for (const generation of await graph.generations().catch(() => [])) {
      await graph.dropGeneration(generation).catch(() => undefined);
    }
  }
  await neo4jDriver?.close();
  await sourceNc?.close();
  await targetNc?.close();
  await Promise.all([source?.stop(), target?.stop()]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("ctx streams backup and restore", () => {
  let manifest: BackupManifest;
  const backup = () => join(work, "backup");

  it("backs up the event and parked streams while appends go on, point in time", async () => {
    const late = storyId(uniqueName("late"));
    let writing = true;
    const writer = (async () => {
      let n = 0;
      while (writing) await writeStory(sourceStore, storyId(`${late}-${n++}`), 3, n);
    })();
    const run = await ctx(source, ["streams", "backup", "--out", backup(), "--parked", "--json"]);
    writing = false;
    await writer;
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    manifest = JSON.parse(run.stdout) as BackupManifest;
    expect(manifest.streams.map((s) => s.name)).toEqual([events, defaultParkingNames.stream]);
    const [ev] = manifest.streams;
    expect(ev?.first_seq).toBe(1);
    expect(ev?.messages).toBe(ev?.last_seq);
    expect(ev?.messages).toBeGreaterThanOrEqual(3_000);
    expect(manifest.server.version).toMatch(/^2\./);
    expect(JSON.parse(readFileSync(join(backup(), "manifest.json"), "utf8")).streams).toEqual(
      manifest.streams,
    );
  });

  it("refuses to overwrite a backup without --force, replaces it with, and refuses a missing stream", async () => {
    const again = await ctx(source, ["streams", "backup", "--out", backup()]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a backup.*--force/);
    expect(again.stderr).not.toMatch(/\n\s+at /);
    const forced = await ctx(source, [
      "streams",
      "backup",
      "--out",
      backup(),
      "--parked",
      "--force",
    ]);
    expect(forced.code).toBe(0);
    manifest = JSON.parse(readFileSync(join(backup(), "manifest.json"), "utf8")) as BackupManifest;
    expect(readdirSync(work).filter((f) => f.startsWith("."))).toEqual([]);
    const missing = await ctx(source, [
      "streams",
      "backup",
      "--out",
      join(work, "missing"),
      "--stream",
      "NO_SUCH_STREAM",
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/NO_SUCH_STREAM.*stream not found/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    const badPath = await ctx(source, ["streams", "backup", "--out", join(work, "nope", "deeper")]);
    expect(badPath.code).not.toBe(0);
    expect(badPath.stderr).toMatch(/does not exist/);
  });

  it("restores into an empty server, where every story reads, verifies and projects as before", async () => {
    const run = await ctx(target, ["streams", "restore", "--from", backup(), "--json"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout) as {
      streams: { name: string; messages: number; last_seq: number; matches_manifest: boolean }[];
    };
    expect(summary.streams.every((s) => s.matches_manifest)).toBe(true);
    const ev = manifest.streams[0];
    expect(summary.streams[0]).toMatchObject({ messages: ev?.messages, last_seq: ev?.last_seq });

    // Every message up to the snapshot, byte for byte: subject, headers, time, envelope.
    const last = ev?.last_seq ?? 0;
    expect(await allMessages(await jetstreamManager(targetNc), last)).toEqual(
      await allMessages(await jetstreamManager(sourceNc), last),
    );
    expect((await (await jetstreamManager(targetNc)).streams.info(events)).state.messages).toBe(
      ev?.messages,
    );

    const restoredStore = createEventStore(targetNc);
    for (const id of stories) {
      const before = await sourceStore.read(id);
      const after = await restoredStore.read(id);
      expect(after).toEqual(before);
      expect(verifyChain(after)).toEqual({ intact: true, events: before.length });
    }

    const [was, is] = await Promise.all([
      project(sourceNc, uniqueName("before")),
      project(targetNc, uniqueName("after")),
    ]);
    for (const id of stories) {
      const a = await was.readContext(await was.activeGeneration(), id);
      const b = await is.readContext(await is.activeGeneration(), id);
      expect(b).toEqual(a);
      expect(b?.context.storyId).toBe(id);
      expect(b?.version).toBe(fold(id, await restoredStore.read(id)).version);
    }

    // The graph model too: each story's nodes and relationships, projected from the restored
    // stream, are those projected from the original one, and those of the fold of its events.
    const [graphWas, graphIs] = await Promise.all([
      projectGraph(sourceNc, uniqueName("graph-before")),
      projectGraph(targetNc, uniqueName("graph-after")),
    ]);
    const generation = await graphIs.projection.activeGeneration();
    const types = new Set<string>();
    let edges = 0;
    for (const id of stories) {
      const state = fold(id, await restoredStore.read(id));
      const a = await graphWas.reader.storyGraph(id);
      const b = await graphIs.reader.storyGraph(id);
      expect(b).toEqual(a);
      expect(b).toMatchObject({ storyId: id, version: state.version, stale: false });
      expect(sortedEdges(b?.edges ?? [])).toEqual(edgesOf(state));
      expect((await graphIs.projection.readContext(generation, id))?.context).toEqual(
        toContextMessage(state),
      );
      edges += b?.edges.length ?? 0;
      for (const e of b?.edges ?? []) types.add(e.type);
    }
    // Every kind of relationship was compared, not only empty graphs.
    expect([...types].sort()).toEqual(["AFFECTS", "DEPENDS_ON", "SUPERSEDES"]);
    expect(edges).toBeGreaterThan(stories.length * 10);

    // The restored stream takes appends where the backup ended.
    const first = stories[0] as StoryId;
    const head = (await restoredStore.head(first))?.version ?? 0;
    const appended = await restoredStore.append(
      first,
      [{ data: eventData.subtaskAdded({ subtaskId: "after-restore", title: "x" }) }],
      streamVersion(head),
    );
    expect(appended.version).toBe(head + 1);
  });

  it("leaves nothing behind when interrupted", async () => {
    const abort = new AbortController();
    const out = join(work, "interrupted");
    const outcome = await backupStreams(sourceNc, {
      streams: [events],
      out,
      signal: abort.signal,
      chunkBytes: 16 * 1024,
      onProgress: (p) => {
        if (p.bytes > 0) abort.abort();
      },
    }).catch((e: unknown) => e);
    expect(isStreamBackupError(outcome) && outcome.problem).toBe("interrupted");
    expect(readdirSync(work).filter((f) => f.includes("interrupted"))).toEqual([]);
  });

  it("refuses to restore over a stream the server has", async () => {
    const run = await ctx(target, ["streams", "restore", "--from", backup()]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/stream CONTEXT_EVENTS already exists on the target server/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it("writes the same backup as one tar file, which restores the same, and refuses R3 on one server", async () => {
    const tar = join(work, "backup.tar");
    const made = await ctx(source, ["streams", "backup", "--out", tar]);
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/CONTEXT_EVENTS: \d+ messages/);
    // A tar as tar knows it, both ways: unpacked, it is the backup folder; a tar of a backup
    // folder is a backup.
    expect(execFileSync("tar", ["-tf", tar], { encoding: "utf8" }).split("\n").sort()).toEqual([
      "",
      "CONTEXT_EVENTS.json",
      "CONTEXT_EVENTS.snapshot.s2",
      "manifest.json",
    ]);
    const unpacked = join(work, "unpacked");
    mkdirSync(unpacked);
    execFileSync("tar", ["-xf", tar, "-C", unpacked]);
    const repacked = join(work, "repacked.tar");
    execFileSync("tar", ["-cf", repacked, "-C", backup(), "."]);
    for (const path of [unpacked, repacked]) {
      const opened = await openBackup(path);
      expect(opened.manifest.streams.length).toBeGreaterThan(0);
      await opened.close();
    }
    const empty = await startNatsServer();
    try {
      const r3 = await ctx(empty, ["streams", "restore", "--from", tar, "--replicas", "3"]);
      expect(r3.code).not.toBe(0);
      expect(r3.stderr).toMatch(
        /3 replicas need a JetStream cluster, and the server .* is not in one; restore with --replicas 1/,
      );
      expect(r3.stderr).not.toMatch(/\n\s+at /);
      const run = await ctx(empty, ["streams", "restore", "--from", tar]);
      expect(run.stderr).toBe("");
      expect(run.stdout).toMatch(/manifest and checksums verified/);
      expect(run.stdout).toMatch(
        /CONTEXT_EVENTS: restored \d+ messages .*replicas 1: matches the manifest/,
      );
      const nc = await admin(empty);
      const restoredStore = createEventStore(nc);
      for (const id of stories.slice(0, 5)) {
        expect(await restoredStore.read(id)).toEqual(await sourceStore.read(id));
      }
      await nc.close();
    } finally {
      await empty.stop();
    }
  });

  it("refuses a backup whose data does not match its checksum, before it reaches a server", async () => {
    const damaged = join(work, "damaged");
    cpSync(backup(), damaged, { recursive: true });
    const data = join(damaged, `${events}.snapshot.s2`);
    const bytes = readFileSync(data);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
    writeFileSync(data, bytes);
    const empty = await startNatsServer();
    try {
      const run = await ctx(empty, ["streams", "restore", "--from", damaged]);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/CONTEXT_EVENTS\.snapshot\.s2 does not match its checksum/);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      const nc = await admin(empty);
      await expect((await jetstreamManager(nc)).streams.info(events)).rejects.toThrow(
        /stream not found/,
      );
      await nc.close();
      const nothing = await ctx(empty, ["streams", "restore", "--from", join(work, "nothing")]);
      expect(nothing.code).not.toBe(0);
      expect(nothing.stderr).toMatch(/does not exist/);
    } finally {
      await empty.stop();
    }
  });
});

describe("ctx streams restore between R1 and R3", () => {
  let cluster: TestNatsCluster;
  let single: TestNatsServer;
  const r1Backup = () => join(work, "r1-backup");
  const r3Backup = () => join(work, "r3-backup");

  beforeAll(async () => {
    [cluster, single] = await Promise.all([startNatsCluster(), startNatsServer()]);
    const made = await ctx(source, ["streams", "backup", "--out", r1Backup()]);
    expect(made.code).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([cluster?.stop(), single?.stop()]);
  });

  /** Every story reads and verifies as on the source, and projects as it does there. */
  async function sameStories(nc: NatsConnection) {
    const store = createEventStore(nc);
    for (const id of stories) {
      const before = await sourceStore.read(id);
      const after = await store.read(id);
      // The source's first story took one more event after its backup. Compared byte for byte:
      // a hash is a Buffer view of the message or a plain array, by the read path that served it
      // (a direct get, or the leader's STREAM.MSG.GET when a follower seemed behind).
      expect(after.map(withPlainBytes)).toEqual(before.slice(0, after.length).map(withPlainBytes));
      expect(after.length).toBeGreaterThanOrEqual(before.length - 1);
      expect(verifyChain(after)).toEqual({ intact: true, events: after.length });
    }
    const projection = await project(nc, uniqueName("replicas"));
    const generation = await projection.activeGeneration();
    for (const id of stories) {
      expect((await projection.readContext(generation, id))?.context).toEqual(
        toContextMessage(fold(id, await store.read(id))),
      );
    }
  }

  it("restores an R1 backup as R3 on a three-node cluster, every replica current", async () => {
    const run = await ctx(cluster, ["streams", "restore", "--from", r1Backup(), "--replicas", "3"]);
    expect(run.stderr).toBe("");
    expect(run.stdout).toMatch(
      /CONTEXT_EVENTS: restored \d+ messages .*replicas 3: matches the manifest/,
    );
    const nc = await admin(cluster);
    try {
      const jsm = await jetstreamManager(nc);
      await eventually(
        async () => {
          const info = await jsm.streams.info(events);
          expect(info.config.num_replicas).toBe(3);
          expect(info.cluster?.replicas?.length).toBe(2);
          expect(info.cluster?.replicas?.every((r) => r.current)).toBe(true);
        },
        { timeout: 30_000 },
      );
      await sameStories(nc);
    } finally {
      await nc.close();
    }
  });

  it("backs up the R3 stream and restores it as R1 on a single server; R3 there is refused", async () => {
    const made = await ctx(cluster, ["streams", "backup", "--out", r3Backup(), "--json"]);
    expect(made.stderr).toBe("");
    const manifest = JSON.parse(made.stdout) as BackupManifest;
    expect(manifest.streams[0]?.replicas).toBe(3);
    expect(manifest.server.cluster).toBeDefined();

    const refused = await ctx(single, ["streams", "restore", "--from", r3Backup()]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/3 replicas need a JetStream cluster.*--replicas 1/);

    const run = await ctx(single, ["streams", "restore", "--from", r3Backup(), "--replicas", "1"]);
    expect(run.stderr).toBe("");
    expect(run.stdout).toMatch(
      /CONTEXT_EVENTS: restored \d+ messages .*replicas 1: matches the manifest/,
    );
    const nc = await admin(single);
    try {
      expect((await (await jetstreamManager(nc)).streams.info(events)).config.num_replicas).toBe(1);
      await sameStories(nc);
    } finally {
      await nc.close();
    }
  });
  it("backs up the R3 stream right after the server leading it and the cluster's metadata is killed: it waits for both elections", async () => {
    const nc = await admin(cluster);
    let killed: TestNatsCluster["nodes"][number] | undefined;
    try {
      // The worst moment: the stream's leader is also the meta leader, so the JetStream API
      // itself goes unanswered for a while, not only the stream.
      const jsm = await jetstreamManager(nc);
      const metaLeader = await eventually(async () => {
        const jsz = (await (await fetch(`${cluster.nodes[0]?.monitorUrl}/jsz`)).json()) as {
          meta_cluster?: { leader?: string };
        };
        expect(jsz.meta_cluster?.leader).toBeTruthy();
        return jsz.meta_cluster?.leader as string;
      });
      await eventually(async () => {
        const leader = (await jsm.streams.info(events)).cluster?.leader;
        if (leader !== metaLeader) {
          await nc.request(
            `$JS.API.STREAM.LEADER.STEPDOWN.${events}`,
            JSON.stringify({ placement: { preferred: metaLeader } }),
            { timeout: 5_000 },
          );
        }
        expect((await jsm.streams.info(events)).cluster?.leader).toBe(metaLeader);
      });
      killed = cluster.nodes.find((n) => n.name === metaLeader);
      expect(killed, `the leader ${metaLeader}`).toBeDefined();
      killed?.signal("SIGKILL");
      // No meta leader and no stream leader now: requests go unanswered until the elections end.
      const out = join(work, "after-leader-loss");
      const made = await ctx(cluster, ["streams", "backup", "--out", out, "--json"]);
      expect(made.stderr).toBe("");
      expect(made.code).toBe(0);
      const manifest = JSON.parse(made.stdout) as BackupManifest;
      expect(manifest.streams[0]?.messages).toBeGreaterThan(0);
    } finally {
      await nc.close().catch(() => undefined);
      await killed?.start();
    }
  });
});
