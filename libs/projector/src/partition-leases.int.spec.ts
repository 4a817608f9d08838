import { createLogger } from "@ctx/config";
import { storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  createEventStore,
  type EventStreamSettings,
  ExpectedVersion,
  provisionEventStream,
} from "@ctx/event-store";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import {
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createProjector,
  leaseBucket,
  leaseGroup,
  type ParkingNames,
  type Projector,
  readLeaseTable,
} from "./index.ts";
import { MemoryProjection } from "./testing/index.ts";

// Issue #20, defect 1: every lease heartbeat listed the bucket's keys with `kv.keys()`, which left
// an ordered push consumer behind on the lease bucket for 5 minutes; the bucket reached the
// server's consumer limit, heartbeats failed, leases lapsed and partitions went unowned while
// every replica said it was ready. These run replicas with a fast heartbeat for many heartbeats.

const logger = createLogger({ name: "leases-test", level: "silent", pretty: false });
const PARTITIONS = 8;
const HEARTBEAT_MS = 50;
const TTL_MS = 1_000;

let nc: NatsConnection;
let jsm: JetStreamManager;
let settings: EventStreamSettings;
let parking: ParkingNames;
const running: { projector: Projector; conn: NatsConnection }[] = [];

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  const name = uniqueName("LEASES");
  settings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: PARTITIONS,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  parking = { stream: `${name}_PARKED`, subjectPrefix: `${name.toLowerCase()}_parked` };
  await provisionEventStream(jsm, settings);
});

afterEach(async () => {
  await Promise.all(
    running.splice(0).map(async ({ projector, conn }) => {
      await projector.stop();
      await conn.close();
    }),
  );
});

afterAll(async () => {
  await jsm.streams.delete(settings.stream).catch(() => undefined);
  await jsm.streams.delete(parking.stream).catch(() => undefined);
  await nc.close();
});

async function startReplica(
  projection: MemoryProjection,
  replicaId: string,
  registry = new Registry(),
): Promise<Projector> {
  const conn = await connectTestNats();
  const projector = createProjector({
    nc: conn,
    names: settings,
    partitions: PARTITIONS,
    projection,
    replicaId,
    logger,
    registry,
    parking,
    batchSize: 50,
    heartbeatMs: HEARTBEAT_MS,
    leaseTtlMs: TTL_MS,
  });
  await projector.start();
  running.push({ projector, conn });
  return projector;
}

const bucketStream = (projection: string) =>
  `KV_${leaseBucket(leaseGroup(settings.stream, projection))}`;

/** Counts the heartbeats of a group as they happen: every heartbeat refreshes its member key. */
async function countHeartbeats(projection: string): Promise<{ count(): number; stop(): void }> {
  const bucket = leaseBucket(leaseGroup(settings.stream, projection));
  let n = 0;
  const sub = nc.subscribe(`$KV.${bucket}.members.>`, {
    callback: () => {
      n += 1;
    },
  });
  await nc.flush();
  return { count: () => n, stop: () => sub.unsubscribe() };
}

/** Counts one replica's heartbeats: each refreshes its member key. */
async function countHeartbeatsOf(projection: string, replicaId: string) {
  const bucket = leaseBucket(leaseGroup(settings.stream, projection));
  let n = 0;
  const sub = nc.subscribe(`$KV.${bucket}.members.${replicaId}`, {
    callback: () => {
      n += 1;
    },
  });
  await nc.flush();
  return { count: () => n, stop: () => sub.unsubscribe() };
}

async function consumerNames(stream: string): Promise<string[]> {
  const names: string[] = [];
  for await (const c of jsm.consumers.list(stream)) names.push(c.name);
  return names;
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values[0]?.value ?? 0;
}

describe("partition leases", () => {
  it("leave no consumer behind on the lease bucket, the event stream or the parked stream", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const heartbeats = await countHeartbeats(projection.name);
    try {
      await Promise.all(["r1", "r2", "r3"].map((id) => startReplica(projection, id)));
      let mostOnBucket = 0;
      let mostOnEvents = 0;
      // 3 replicas × 80 heartbeats each: main left one consumer on the bucket per heartbeat.
      await eventually(
        async () => {
          mostOnBucket = Math.max(
            mostOnBucket,
            (await consumerNames(bucketStream(projection.name))).length,
          );
          const ours = (await consumerNames(settings.stream)).filter((c) =>
            c.startsWith(`${projection.name}_`),
          );
          mostOnEvents = Math.max(mostOnEvents, ours.length);
          expect(heartbeats.count()).toBeGreaterThanOrEqual(3 * 80);
        },
        { timeout: 40_000, interval: 100 },
      );
      expect(mostOnBucket).toBe(0);
      // One durable consumer per partition and tenure; an earlier tenure's is deleted by the next.
      expect(mostOnEvents).toBeLessThanOrEqual(2 * PARTITIONS);
      expect(await consumerNames(parking.stream)).toEqual([]);
    } finally {
      heartbeats.stop();
    }
  });

  it("keep every partition owned, however many heartbeats, on a bucket that allows 4 consumers", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const bucket = leaseBucket(leaseGroup(settings.stream, projection.name));
    // The lease bucket as the projector makes it, with a consumer limit a few heartbeats reach.
    await jsm.streams.add({
      name: `KV_${bucket}`,
      subjects: [`$KV.${bucket}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_msgs_per_subject: 1,
      max_age: nanos(TTL_MS),
      discard: DiscardPolicy.New,
      allow_rollup_hdrs: true,
      allow_direct: true,
      max_consumers: 4,
    });
    const heartbeats = await countHeartbeats(projection.name);
    const registries = [new Registry(), new Registry()];
    try {
      const replicas = [
        await startReplica(projection, "s1", registries[0]),
        await startReplica(projection, "s2", registries[1]),
      ];
      const all = Array.from({ length: PARTITIONS }, (_, p) => p);
      await eventually(async () => {
        const table = await readLeaseTable(jsm, leaseGroup(settings.stream, projection.name));
        expect([...table.leases.keys()].sort((a, b) => a - b)).toEqual(all);
      });
      const start = heartbeats.count();
      // Long after the limit would be reached (main failed from the third heartbeat of a replica),
      // every partition is still leased to a live replica, and each replica holds its share.
      await eventually(() => expect(heartbeats.count() - start).toBeGreaterThanOrEqual(2 * 60), {
        timeout: 30_000,
      });
      const table = await readLeaseTable(jsm, leaseGroup(settings.stream, projection.name));
      expect([...table.leases.keys()].sort((a, b) => a - b)).toEqual(all);
      for (const { owner } of table.leases.values()) expect(["s1", "s2"]).toContain(owner);
      const owned = replicas.flatMap((r) => r.owned()).sort((a, b) => a - b);
      expect(owned).toEqual(all);
      for (const registry of registries) {
        expect(await metric(registry, "ctx_projector_lease_heartbeat_failures_total")).toBe(0);
        expect(await metric(registry, "ctx_projector_leases_lost_total")).toBe(0);
      }
      expect(replicas.every((r) => r.ready())).toBe(true);
    } finally {
      heartbeats.stop();
    }
  });

  it("report the lag only of the partitions a replica holds, not frozen values of those it gave back", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const registry = new Registry();
    const lagSeries = async () =>
      ((await registry.getSingleMetric("ctx_projector_lag_events")?.get())?.values ?? []).map((v) =>
        Number(v.labels.partition),
      );
    const first = await startReplica(projection, "g1", registry);
    // The lag is polled every 5 s: wait until every partition has its series.
    await eventually(async () => expect((await lagSeries()).length).toBe(PARTITIONS), {
      timeout: 15_000,
    });
    await startReplica(projection, "g2");
    await eventually(async () => {
      const owned = first.owned();
      expect(owned.length).toBeLessThan(PARTITIONS);
      expect((await lagSeries()).sort((a, b) => a - b)).toEqual(owned);
    });
  });

  it("turn on direct gets on a lease bucket made without them, and lease every partition", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const bucket = leaseBucket(leaseGroup(settings.stream, projection.name));
    await jsm.streams.add({
      name: `KV_${bucket}`,
      subjects: [`$KV.${bucket}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_msgs_per_subject: 1,
      max_age: nanos(TTL_MS),
      discard: DiscardPolicy.New,
      allow_rollup_hdrs: true,
      allow_direct: false,
    });
    const replica = await startReplica(projection, "d1");
    expect((await jsm.streams.info(`KV_${bucket}`)).config.allow_direct).toBe(true);
    await eventually(() => expect(replica.owned()).toHaveLength(PARTITIONS));
    await eventually(() => expect(replica.ready()).toBe(true));
  });

  it("say not ready when a partition the replica should own stays unowned past the failover window", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    // A holder that is no replica of the group (a zombie process, a hand-made key) keeps renewing
    // the lease of partition 3: the replica, alone in its group, should own it and cannot.
    const kv = await new Kvm(nc).create(leaseBucket(leaseGroup(settings.stream, projection.name)), {
      ttl: TTL_MS,
      history: 1,
    });
    let revision = await kv.create("leases.3", "ghost");
    let haunting = true;
    const ghost = (async () => {
      while (haunting) {
        revision = await kv.update("leases.3", "ghost", revision);
        await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
      }
    })();
    const registry = new Registry();
    const replica = await startReplica(projection, "lonely", registry);
    try {
      await eventually(() => expect(replica.ready()).toBe(false), { timeout: 10_000 });
      expect(replica.leaseHealth()?.missing).toEqual([3]);
      expect(replica.leaseHealth()?.unowned).toEqual([3]);
      expect(await metric(registry, "ctx_projector_partitions_missing")).toBe(1);
      expect(await metric(registry, "ctx_projector_partitions_unowned")).toBe(1);
      expect(replica.owned()).not.toContain(3);
    } finally {
      haunting = false;
      await ghost;
    }
    // The ghost's lease lapses; the replica takes the partition and is ready again.
    await eventually(() => expect(replica.ready()).toBe(true), { timeout: 10_000 });
    expect(replica.owned()).toContain(3);
    expect(await metric(registry, "ctx_projector_partitions_missing")).toBe(0);
    expect(await metric(registry, "ctx_projector_partitions_unowned")).toBe(0);
  });

  it("keep renewing the other leases while a partition's release waits for its batch in hand", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    // A model that does not answer until released: every worker holds a batch in hand, and a
    // worker asked to stop waits for it.
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const apply = projection.apply.bind(projection);
    projection.apply = async (batch) => {
      await gate;
      return apply(batch);
    };
    const store = createEventStore(nc, { names: settings });
    const ids = Array.from({ length: 40 }, () => storyId(uniqueName("slow")));
    await Promise.all(
      ids.map((id) =>
        store.append(id, [{ data: eventData.contextCreated() }], ExpectedVersion.NoStory),
      ),
    );
    const registry = new Registry();
    const first = await startReplica(projection, "h1", registry);
    await eventually(() => expect(first.owned()).toHaveLength(PARTITIONS));
    const heartbeats = await countHeartbeatsOf(projection.name, "h1");
    try {
      // A second replica joins: the first must hand over its share, whose workers cannot stop
      // before the model answers.
      const second = await startReplica(projection, "h2");
      await eventually(() => expect(first.owned().length).toBeLessThan(PARTITIONS));
      const kept = first.owned();
      expect(kept.length).toBeGreaterThan(0);
      // Many lease TTLs later, the releases still pending, the first still holds what it kept.
      const from = heartbeats.count();
      await eventually(() => expect(heartbeats.count() - from).toBeGreaterThanOrEqual(60), {
        timeout: 30_000,
      });
      const table = await readLeaseTable(jsm, leaseGroup(settings.stream, projection.name));
      for (const p of kept) expect(table.leases.get(p)?.owner).toBe("h1");
      expect(first.leaseHealth()?.missing).toEqual([]);
      expect(first.ready()).toBe(true);
      expect(await metric(registry, "ctx_projector_leases_lost_total")).toBe(0);
      open();
      await eventually(async () => {
        expect([...first.owned(), ...second.owned()].sort((a, b) => a - b)).toEqual(
          Array.from({ length: PARTITIONS }, (_, p) => p),
        );
        expect(first.ready() && second.ready()).toBe(true);
        for (const id of ids)
          expect((await projection.readContext(projection.active, id))?.version).toBe(1);
      });
    } finally {
      open();
      heartbeats.stop();
    }
  });
});
