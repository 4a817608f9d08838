import {
  checkpointMessages,
  checkpointNames,
  commandSnapshotNames,
  defaultEventStreamSettings,
  ensureCheckpointStream,
  provisionCommandSnapshotStream,
  provisionEventStream,
  restoreStream,
  snapshotStream,
} from "@ctx/event-store";
import { defaultParkingNames, leaseBucket, leaseGroup, provisionParking } from "@ctx/projector";
import { connectNats, natsConnectionOf } from "@ctx/service";
import { defaultSnapshotStreamSettings, provisionSnapshotStream } from "@ctx/snapshots";
import { createTestPki, startNatsServer, type TestNatsServer } from "@ctx/test-support";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nkeys } from "@nats-io/nats-core";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inboxPrefixOf, type NatsRole, natsRoles } from "./nats-auth-config.ts";

// The permission matrix of the shipped NATS users (ctx nats auth-config), on a server started by
// deploy/local/nats.sh exactly as the local stack runs it, with the default stream names.

const events = defaultEventStreamSettings.stream;
const parked = defaultParkingNames.stream;
const snapshots = defaultSnapshotStreamSettings.stream;
const commandSnapshots = commandSnapshotNames(defaultEventStreamSettings);
const buckets = {
  neo4j: leaseBucket(leaseGroup(events, "neo4j")),
  valkey: leaseBucket(leaseGroup(events, "valkey")),
};

let server: TestNatsServer;
const connections: NatsConnection[] = [];

async function as(role: NatsRole, more: Record<string, string> = {}): Promise<NatsConnection> {
  const nc = await connectNats(natsConnectionOf({ ...server.env(role), ...more }), {
    name: `permissions-${role}`,
    timeout: 5_000,
  });
  connections.push(nc);
  return nc;
}

/** Every message of an error and its causes, for matching. */
function messages(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c instanceof Error; c = c.cause) parts.push(`${c.name}: ${c.message}`);
  return parts.join(" <- ");
}

async function refused(call: Promise<unknown>): Promise<void> {
  const outcome = await call.then(
    () => "allowed",
    (e: unknown) => messages(e),
  );
  expect(outcome).toMatch(/permissions violation/i);
}

async function subscribeRefused(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject);
  expect(messages(await sub.closed)).toMatch(/permissions violation/i);
}

const bytes = new TextEncoder().encode("x");

beforeAll(async () => {
  server = await startNatsServer();
  // The operator provisions; no service identity could.
  const ctx = await as("ctx");
  const jsm = await jetstreamManager(ctx);
  await provisionEventStream(jsm);
  await provisionParking(jsm);
  await provisionSnapshotStream(jsm);
  await provisionCommandSnapshotStream(jsm, commandSnapshots);
  // `ctx audit checkpoint` signs the stream to its checkpoint stream.
  await ensureCheckpointStream(jsm, checkpointNames(defaultEventStreamSettings));
  await jetstream(ctx).publish(checkpointNames(defaultEventStreamSettings).subject, bytes);
  for (const bucket of Object.values(buckets)) {
    await new Kvm(ctx).create(bucket, { ttl: 5_000, history: 1 });
  }
});

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => undefined);
  await server?.stop();
});

describe("NATS with the shipped users", () => {
  it("refuses an anonymous client and a key it does not know", async () => {
    await expect(connect({ servers: server.url, timeout: 5_000 })).rejects.toThrow(
      /authorization/i,
    );
    const stranger = new TextDecoder().decode(nkeys.createUser().getSeed());
    await expect(
      connect({
        servers: server.url,
        timeout: 5_000,
        authenticator: (await import("@nats-io/nats-core")).nkeyAuthenticator(
          new TextEncoder().encode(stranger),
        ),
      }),
    ).rejects.toThrow(/authorization/i);
  });

  it("lets the command service append and read its stream, and nothing else", async () => {
    const nc = await as("command");
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const ack = await js.publish("context.events.perm-cmd.ContextCreated", bytes);
    expect(ack.stream).toBe(events);
    expect((await jsm.streams.info(events)).config.name).toBe(events);
    expect((await jsm.direct.getMessage(events, { seq: ack.seq }))?.seq).toBe(ack.seq);
    // Its own snapshots: written (plain and atomic batch publishes) and read by direct get.
    const own = `${commandSnapshots.subjectPrefix}.perm-cmd`;
    expect((await js.publish(`${own}.c.0`, bytes)).stream).toBe(commandSnapshots.stream);
    const batch = await js.startBatch(`${own}.recent`, bytes);
    expect((await batch.commit(`${own}.state`, bytes)).count).toBe(2);
    expect(
      (await jsm.direct.getMessage(commandSnapshots.stream, { last_by_subj: `${own}.state` }))
        ?.subject,
    ).toBe(`${own}.state`);

    await refused(jsm.streams.delete(commandSnapshots.stream));
    await refused(jsm.streams.purge(commandSnapshots.stream));
    await refused(jsm.streams.delete(events));
    await refused(jsm.streams.purge(events));
    await refused(jsm.streams.update(events, { description: "changed" }));
    await refused(jsm.streams.add({ name: "CMD_NEW", subjects: ["cmd-new.>"] }));
    await refused(
      jsm.consumers.add(events, { durable_name: "cmd", ack_policy: AckPolicy.Explicit }),
    );
    await refused(js.publish("context.parked.neo4j.perm-cmd", bytes));
    await refused(js.publish("context.snapshots.perm-cmd", bytes));
    await refused(jsm.streams.info(parked));
    await subscribeRefused(nc, "_INBOX.>");
  });

  it("lets a projector run its consumers, leases and parking, and publish no event", async () => {
    const nc = await as("projector-neo4j");
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const consumer = await jsm.consumers.add(events, {
      durable_name: "neo4j_p0_perm",
      filter_subject: "context.events.0.>",
      ack_policy: AckPolicy.All,
    });
    expect(consumer.name).toBe("neo4j_p0_perm");
    expect((await jsm.consumers.info(events, "neo4j_p0_perm")).name).toBe("neo4j_p0_perm");
    await jsm.consumers.delete(events, "neo4j_p0_perm");
    const leases = await new Kvm(nc).create(buckets.neo4j, { ttl: 5_000, history: 1 });
    await leases.put("member.perm", "x");
    expect((await leases.get("member.perm"))?.string()).toBe("x");
    expect((await js.publish("context.parked.neo4j.perm", bytes)).stream).toBe(parked);

    await refused(js.publish("context.events.perm-proj.ContextCreated", bytes));
    await refused(js.publish("context.parked.valkey.perm", bytes));
    await refused(js.publish(`$KV.${buckets.valkey}.member.perm`, bytes));
    // A consumer of the whole stream is not a partition consumer.
    await refused(
      jsm.consumers.add(events, {
        durable_name: "neo4j_all",
        filter_subject: "context.events.>",
        ack_policy: AckPolicy.All,
      }),
    );
    await refused(jsm.streams.delete(events));
    await refused(jsm.streams.purge(parked));
    await subscribeRefused(nc, "_INBOX_command.>");
  });

  it("lets the query service read, and publish nothing", async () => {
    const nc = await as("query");
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(events)).config.name).toBe(events);
    expect((await jsm.streams.info(snapshots)).config.name).toBe(snapshots);
    expect(await jsm.direct.getMessage(events, { seq: 1 })).toBeDefined();
    // The signed checkpoints, for ContextAuditService: read, never written.
    const checkpoints = checkpointNames(defaultEventStreamSettings);
    expect(await checkpointMessages(jsm, checkpoints, { limit: 10 })).toHaveLength(1);
    await refused(js.publish(checkpoints.subject, bytes));

    await refused(js.publish("context.events.perm-query.ContextCreated", bytes));
    await refused(js.publish("context.snapshots.perm-query", bytes));
    await refused(js.publish(`${commandSnapshots.subjectPrefix}.perm-query.state`, bytes));
    await refused(jsm.streams.info(commandSnapshots.stream));
    await refused(
      jsm.consumers.add(events, { durable_name: "snapshotter", ack_policy: AckPolicy.Explicit }),
    );
    await refused(jsm.streams.delete(snapshots));
    await subscribeRefused(nc, "_INBOX_snapshotter.>");
  });

  it("lets the snapshotter write snapshots through its own consumer only", async () => {
    const nc = await as("snapshotter");
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(events, {
      durable_name: "snapshotter",
      filter_subject: "context.events.>",
      ack_policy: AckPolicy.Explicit,
    });
    expect((await js.publish("context.snapshots.perm.1", bytes)).stream).toBe(snapshots);

    await refused(js.publish("context.events.perm-snap.ContextCreated", bytes));
    await refused(js.publish(`${commandSnapshots.subjectPrefix}.perm-snap.state`, bytes));
    await refused(
      jsm.consumers.add(events, {
        durable_name: "other",
        filter_subject: "context.events.>",
        ack_policy: AckPolicy.Explicit,
      }),
    );
    await refused(jsm.streams.purge(snapshots));
  });

  it("lets the operator provision, but only the admin delete or purge a stream", async () => {
    const ctx = await jetstreamManager(await as("ctx"));
    await ctx.streams.add({ name: "PERM_SCRATCH", subjects: ["perm-scratch.>"] });
    await ctx.streams.update("PERM_SCRATCH", { description: "provisioned by ctx" });
    await refused(ctx.streams.purge("PERM_SCRATCH"));
    await refused(ctx.streams.delete("PERM_SCRATCH"));
    await refused(ctx.streams.delete(events));
    await refused(ctx.streams.purge(events));
    await refused(ctx.streams.deleteMessage(events, 1));

    const admin = await jetstreamManager(await as("admin"));
    expect((await admin.streams.purge("PERM_SCRATCH")).success).toBe(true);
    expect(await admin.streams.delete("PERM_SCRATCH")).toBe(true);
  });

  it("lets the operator back up and restore a stream (JetStream's snapshot API), and no service", async () => {
    const snapshot = async (nc: NatsConnection, role: NatsRole, stream: string) => {
      const chunks: Uint8Array[] = [];
      const meta = await snapshotStream(nc, stream, async (c) => void chunks.push(c), {
        inboxPrefix: inboxPrefixOf(role),
        timeoutMs: 5_000,
      });
      return { meta, chunks };
    };
    const ctx = await as("ctx");
    const ctxJsm = await jetstreamManager(ctx);
    await ctxJsm.streams.add({ name: "PERM_BACKUP", subjects: ["perm-backup.>"] });
    await jetstream(ctx).publish("perm-backup.1", bytes);
    const { meta, chunks } = await snapshot(ctx, "ctx", "PERM_BACKUP");
    expect(meta.state.messages).toBe(1);
    // Restoring over it is the server's to refuse; the operator may not delete it first.
    await expect(restoreStream(ctx, meta, chunks)).rejects.toThrow(/already in use|exist/i);
    await refused(ctxJsm.streams.delete("PERM_BACKUP"));
    expect(await (await jetstreamManager(await as("admin"))).streams.delete("PERM_BACKUP")).toBe(
      true,
    );
    const restored = await restoreStream(ctx, meta, chunks);
    expect(restored.state).toMatchObject({ messages: 1, last_seq: 1 });

    for (const role of natsRoles.filter((r) => r !== "ctx" && r !== "admin")) {
      const nc = await as(role);
      await refused(snapshot(nc, role, events));
      await refused(
        restoreStream(nc, { ...meta, config: { ...meta.config, name: "PERM_NEW" } }, chunks),
      );
    }
  });
});

describe("NATS over TLS with the private CA", () => {
  let tlsServer: TestNatsServer;
  let pki: Awaited<ReturnType<typeof createTestPki>>;

  beforeAll(async () => {
    pki = await createTestPki();
    const cert = await pki.server("nats");
    // With the CA given, the server asks every client for a certificate it signed.
    tlsServer = await startNatsServer({
      tls: { certFile: cert.certFile, keyFile: cert.keyFile, caFile: pki.caFile },
    });
  });

  afterAll(async () => {
    await tlsServer?.stop();
  });

  it("connects with the CA, a client certificate and the role's key, and refuses without them", async () => {
    const client = await pki.client("command");
    const env = {
      ...tlsServer.env("command"),
      NATS_TLS_CA: pki.caFile,
      NATS_TLS_CERT: client.certFile,
      NATS_TLS_KEY: client.keyFile,
    };
    const nc = await connectNats(natsConnectionOf(env), { timeout: 5_000 });
    try {
      expect(nc.info?.tls_required).toBe(true);
      const jsm = await jetstreamManager(nc);
      await expect(jsm.streams.info(events)).rejects.toThrow(/stream not found/);
    } finally {
      await nc.close();
    }
    // No client certificate: the handshake fails.
    const { NATS_TLS_CERT: _c, NATS_TLS_KEY: _k, ...withoutCert } = env;
    await expect(connectNats(natsConnectionOf(withoutCert), { timeout: 5_000 })).rejects.toThrow();
    // Without the private CA the server's certificate is not trusted.
    await expect(
      connectNats(natsConnectionOf(tlsServer.env("command")), { timeout: 5_000 }),
    ).rejects.toThrow();
  });
});
