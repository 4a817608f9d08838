import { create } from "@bufbuild/protobuf";
import { createLogger } from "@ctx/config";
import {
  type ContextEventData,
  fold,
  type StoryId,
  storyId,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  provisionEventStream,
} from "@ctx/event-store";
import { appendAsWritten, type WrittenEvent } from "@ctx/event-store/testing";
import { legacyV1 } from "@ctx/proto";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createProjector,
  leaseGroup,
  listParked,
  type ParkingNames,
  type Projector,
  partitionConsumers,
  readLeaseTable,
} from "./index.ts";
import { MemoryProjection } from "./testing/index.ts";

const logger = createLogger({ name: "projector-test", level: "silent" });
let nc: NatsConnection;
let settings: EventStreamSettings;
let parking: ParkingNames;
let store: EventStore;
const running: Projector[] = [];

beforeAll(async () => {
  nc = await connectTestNats();
  const name = uniqueName("PROJ");
  settings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: 8,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  parking = { stream: `${name}_PARKED`, subjectPrefix: `${name.toLowerCase()}_parked` };
  await provisionEventStream(await jetstreamManager(nc), settings);
  store = createEventStore(nc, { names: settings });
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(settings.stream).catch(() => undefined);
  await jsm.streams.delete(parking.stream).catch(() => undefined);
  await nc.close();
});

const created = (): ContextEventData => ({
  case: "contextCreated",
  value: { $typeName: "context.v1.ContextCreated", title: "t", description: "" },
});
const subtask = (id: string): ContextEventData => ({
  case: "subtaskAdded",
  value: { $typeName: "context.v1.SubtaskAdded", subtaskId: id, title: id, dependsOn: [] },
});

async function writeStories(
  prefix: string,
  stories: number,
  eventsEach: number,
): Promise<StoryId[]> {
  const ids = Array.from({ length: stories }, (_, i) => storyId(`${prefix}-${i}`));
  await Promise.all(
    ids.map(async (id) => {
      await store.append(id, [{ data: created() }], ExpectedVersion.NoStory);
      for (let v = 1; v < eventsEach; v++)
        await store.append(id, [{ data: subtask(`s${v}`) }], streamVersion(v));
    }),
  );
  return ids;
}

async function startReplica(
  projection: MemoryProjection,
  replicaId: string,
  batchSize = 50,
): Promise<Projector> {
  const conn = await connectTestNats();
  const projector = createProjector({
    nc: conn,
    names: settings,
    partitions: settings.partitions,
    projection,
    replicaId,
    logger,
    registry: new Registry(),
    parking,
    batchSize,
    heartbeatMs: 200,
    leaseTtlMs: 1_500,
    backoff: { initialDelayMs: 50, maxDelayMs: 500, halfOpenAfterMs: 500 },
  });
  await projector.start();
  running.push(projector);
  const stop = projector.stop.bind(projector);
  projector.stop = async () => {
    await stop();
    await conn.close();
  };
  return projector;
}

async function expectModelEqualsFold(projection: MemoryProjection, ids: readonly StoryId[]) {
  for (const id of ids) {
    const read = await projection.readContext(projection.active, id);
    const events = await store.read(id);
    expect(read?.version).toBe(events.length);
    expect(read?.context).toEqual(toContextMessage(fold(id, events)));
  }
}

describe("projector runtime (real NATS, in-memory model)", () => {
  it("projects every story in order, and a restarted replica resumes where the model is", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const ids = await writeStories(uniqueName("a"), 20, 5);
    const replica = await startReplica(projection, "r1");
    await eventually(() => expectModelEqualsFold(projection, ids), { timeout: 20_000 });
    for (const id of ids) {
      const versions = projection.applied.filter((a) => a.storyId === id).map((a) => a.version);
      expect(versions).toEqual([1, 2, 3, 4, 5]);
    }
    await replica.stop();
    const more = await writeStories(uniqueName("b"), 5, 3);
    await startReplica(projection, "r1");
    await eventually(() => expectModelEqualsFold(projection, [...ids, ...more]), {
      timeout: 20_000,
    });
  });

  it("writes no more batches at once than the model takes, and still projects everything", async () => {
    const projection = Object.assign(new MemoryProjection(uniqueName("m")), {
      writeConcurrency: 1,
    });
    let writing = 0;
    let most = 0;
    let batches = 0;
    const apply = projection.apply.bind(projection);
    projection.apply = async (batch) => {
      writing += 1;
      most = Math.max(most, writing);
      try {
        await new Promise((r) => setTimeout(r, 10)); // long enough for partitions to overlap
        return await apply(batch);
      } finally {
        writing -= 1;
        batches += 1;
      }
    };
    const ids = await writeStories(uniqueName("w"), 30, 4);
    // Batches of 5: each partition's backlog (about 15 events) takes several, whatever arrives
    // at once (a pull can deliver a partition's whole backlog before its worker wakes).
    await startReplica(projection, "r1", 5);
    await eventually(() => expectModelEqualsFold(projection, ids), { timeout: 20_000 });
    expect(batches).toBeGreaterThan(settings.partitions);
    expect(most).toBe(1);
  });

  it("holds at most a batch in hand and one queued per partition, however long the backlog", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const apply = projection.apply.bind(projection);
    projection.apply = async (batch) => {
      await gate; // a model that does not answer: the backlog stays in the stream
      return apply(batch);
    };
    const ids = await writeStories(uniqueName("b"), 80, 10);
    const batch = 10;
    await startReplica(projection, "r1", batch);
    const jsm = await jetstreamManager(nc);
    const deliveredNotAcked = async () => {
      const consumers = await partitionConsumers(jsm, settings.stream, projection.name);
      return [...consumers.values()].map((c) => c.num_ack_pending);
    };
    // Every partition takes up its backlog (about 100 events each) and waits on the model.
    await eventually(
      async () => expect((await deliveredNotAcked()).filter((n) => n > 0)).toHaveLength(8),
      { timeout: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 1_000));
    for (const pending of await deliveredNotAcked()) {
      // The batch in hand, one queued, and one pull in flight.
      expect(pending).toBeLessThanOrEqual(3 * batch);
    }
    release();
    await eventually(() => expectModelEqualsFold(projection, ids), { timeout: 20_000 });
  });

  it("loses nothing to an earlier owner that still pulls from the partition's consumer", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const r1 = await startReplica(projection, "rz1");
    const first = await writeStories(uniqueName("z"), 16, 2);
    await eventually(() => expectModelEqualsFold(projection, first), { timeout: 20_000 });
    // A zombie: a client of the old owner's consumers that goes on pulling and never acknowledges
    // (an owner whose lease lapsed in a long pause, or a subscription a worker gave up on).
    const zombieConnection = await connectTestNats();
    const zombieJs = jetstream(zombieConnection);
    const consumers = await partitionConsumers(
      await jetstreamManager(nc),
      settings.stream,
      projection.name,
    );
    expect([...consumers.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const info of consumers.values()) {
      const messages = await (await zombieJs.consumers.get(settings.stream, info.name)).consume({
        max_messages: 100,
      });
      void (async () => {
        // Takes what it can and acknowledges nothing; whatever it took before the new owner
        // replaced the old consumers, the new owner's own consumer delivers again.
        for await (const _ of messages);
      })();
    }
    await r1.stop();
    await startReplica(projection, "rz2");
    // One event per story: an event the zombie took would be acknowledged by the new owner's
    // later acknowledgements and never come back.
    const second = await writeStories(uniqueName("z"), 200, 1);
    await eventually(() => expectModelEqualsFold(projection, [...first, ...second]), {
      timeout: 30_000,
    });
    await zombieConnection.close();
  });

  it("splits partitions among replicas, moves them off a stopped one, and rebalances on join", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const r1 = await startReplica(projection, "ra");
    const r2 = await startReplica(projection, "rb");
    const r3 = await startReplica(projection, "rc");
    const all = () => [...r1.owned(), ...r2.owned(), ...r3.owned()].sort((a, b) => a - b);
    await eventually(
      () => {
        expect(all()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(r1.owned().length * r2.owned().length * r3.owned().length).toBeGreaterThan(0);
      },
      { timeout: 15_000 },
    );
    const ids = await writeStories(uniqueName("c"), 30, 3);
    await r2.stop();
    await eventually(
      () =>
        expect([...r1.owned(), ...r3.owned()].sort((a, b) => a - b)).toEqual([
          0, 1, 2, 3, 4, 5, 6, 7,
        ]),
      {
        timeout: 15_000,
      },
    );
    const r4 = await startReplica(projection, "rd");
    await eventually(() => expect(r4.owned().length).toBeGreaterThan(0), { timeout: 15_000 });
    await eventually(
      () =>
        expect([...r1.owned(), ...r3.owned(), ...r4.owned()].sort((a, b) => a - b)).toEqual([
          0, 1, 2, 3, 4, 5, 6, 7,
        ]),
      { timeout: 15_000 },
    );
    await eventually(() => expectModelEqualsFold(projection, ids), { timeout: 20_000 });
    await Promise.all([r1.stop(), r3.stop(), r4.stop()]);
  });

  // A StatefulSet scaled from 3 to 2 stops its highest ordinal (SIGTERM: a graceful stop), and the
  // pod never comes back: nothing of it may stay behind (docs/DEPLOYMENT.md, "Scale").
  it("scales down: the removed replica's member and leases go at once, its durables are replaced, nothing is missed", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const names = ["projector-m-0", "projector-m-1", "projector-m-2"];
    const replicas = await Promise.all(names.map((id) => startReplica(projection, id)));
    const [r0, r1, r2] = replicas as [Projector, Projector, Projector];
    await eventually(() => expect(r2.owned().length).toBeGreaterThan(0), { timeout: 15_000 });
    const before = await writeStories(uniqueName("d"), 20, 3);
    await eventually(() => expectModelEqualsFold(projection, before), { timeout: 20_000 });
    const jsm = await jetstreamManager(nc);
    const group = leaseGroup(settings.stream, projection.name);
    // The durable consumers the replica that goes away works through.
    const consumers = await partitionConsumers(jsm, settings.stream, projection.name);
    const removedConsumers = r2.owned().map((p) => consumers.get(p)?.name);
    expect(removedConsumers.length).toBeGreaterThan(0);
    expect(removedConsumers).not.toContain(undefined);
    await r2.stop();
    // Gone from the table at once (a graceful stop deletes its member key and releases its leases),
    // not after the lease TTL; the two others own every partition.
    const table = await readLeaseTable(jsm, group);
    expect(table.members).not.toContain("projector-m-2");
    expect([...table.leases.values()].map((l) => l.owner)).not.toContain("projector-m-2");
    await eventually(
      async () => {
        expect([...r0.owned(), ...r1.owned()].sort((a, b) => a - b)).toEqual([
          0, 1, 2, 3, 4, 5, 6, 7,
        ]);
        const leases = (await readLeaseTable(jsm, group)).leases;
        expect([...leases.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(new Set([...leases.values()].map((l) => l.owner))).toEqual(
          new Set(["projector-m-0", "projector-m-1"]),
        );
        // One durable consumer per partition: the removed replica's were deleted by the new owners.
        const ours: string[] = [];
        for await (const c of jsm.consumers.list(settings.stream)) {
          if (c.name.startsWith(`${projection.name}_`)) ours.push(c.name);
        }
        expect(ours).toHaveLength(settings.partitions);
        for (const name of removedConsumers) expect(ours).not.toContain(name);
      },
      { timeout: 15_000 },
    );
    const after = await writeStories(uniqueName("e"), 20, 3);
    await eventually(() => expectModelEqualsFold(projection, [...before, ...after]), {
      timeout: 20_000,
    });
    await Promise.all([r0.stop(), r1.stop()]);
  });

  it("parks a poison event with its reason, marks the story stale and goes on with the others", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const prefix = uniqueName("p");
    const ids = await writeStories(prefix, 4, 3);
    const [victim] = ids as [StoryId];
    const events = await store.read(victim);
    projection.poison.add(events[1]?.eventId as string);
    // An undecodable message in the middle of the stream, too.
    const js = jetstream(nc);
    await js.publish(
      `${settings.subjectPrefix}.${prefix}-garbage.SubtaskAdded`,
      new Uint8Array([1, 2, 3, 255]),
    );
    const replica = await startReplica(projection, "rp");
    await eventually(
      async () => {
        const parked = await listParked(await jetstreamManager(nc), parking, projection.name);
        expect(parked.map((p) => p.storyId).sort()).toEqual([`${prefix}-garbage`, victim].sort());
        const poison = parked.find((p) => p.storyId === victim);
        expect(poison?.version).toBe(2);
        expect(poison?.reason).toMatch(/cannot apply event/);
        expect(poison?.originalSequence).toBe(events[1]?.sequence);
      },
      { timeout: 20_000 },
    );
    await eventually(() => expectModelEqualsFold(projection, ids.slice(1)), { timeout: 20_000 });
    const victimModel = await projection.readContext(projection.active, victim);
    expect(victimModel?.stale).toBe(true);
    expect(victimModel?.version).toBe(1);
    await replica.stop();
  });

  it("parks an event no upcaster can read, marks its story stale and goes on with the others", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const ids = await writeStories(uniqueName("u"), 3, 2);
    const [victim] = ids as [StoryId];
    // A release of schema v1 wrote a status word the v1 → v2 mapping does not know, then a readable one.
    const v1 = (status: string): WrittenEvent => ({
      eventType: "SubtaskUpdated",
      schemaVersion: 1,
      payloadSchema: legacyV1.SubtaskUpdatedSchema,
      payload: create(legacyV1.SubtaskUpdatedSchema, { subtaskId: "s1", status }),
      occurredAt: new Date(),
    });
    await appendAsWritten(nc, store, victim, [v1("maybe later"), v1("done")]);
    const sequenceOfBad = (await store.readStored(victim))[2]?.sequence;
    const replica = await startReplica(projection, "ru");
    await eventually(
      async () => {
        const parked = await listParked(await jetstreamManager(nc), parking, projection.name);
        const entry = parked.find((p) => p.storyId === victim);
        expect(entry?.version).toBe(3);
        expect(entry?.originalSequence).toBe(sequenceOfBad);
        expect(entry?.reason).toMatch(
          /UnreadableEventError: .*cannot upcast SubtaskUpdated v1: .*unknown v1 subtask status "maybe later"/,
        );
      },
      { timeout: 20_000 },
    );
    await eventually(() => expectModelEqualsFold(projection, ids.slice(1)), { timeout: 20_000 });
    const victimModel = await projection.readContext(projection.active, victim);
    expect(victimModel?.stale).toBe(true);
    // Never past the parked event (how far before it depends on the batch it came in).
    expect(victimModel?.version ?? 0).toBeLessThan(3);
    await replica.stop();
  });

  it("starts while the read model is down, waiting the outage out with back-off, losing nothing", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    projection.down = true;
    const starting = startReplica(projection, "ro");
    const ids = await writeStories(uniqueName("o"), 10, 4);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(projection.applied.length).toBe(0);
    // Its set-up was tried again and again, not given up on.
    expect(projection.initCalls).toBeGreaterThan(2);
    projection.down = false;
    const replica = await starting;
    await eventually(() => expectModelEqualsFold(projection, ids), { timeout: 30_000 });
    await replica.stop();
  });

  it("waits out a read-model outage that starts after it, losing nothing", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const replica = await startReplica(projection, "rl");
    projection.down = true;
    // It may have applied other tests' stories of the stream already; nothing more from now on.
    const appliedBefore = projection.applied.length;
    const ids = await writeStories(uniqueName("l"), 10, 4);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(projection.applied.length).toBe(appliedBefore);
    projection.down = false;
    await eventually(() => expectModelEqualsFold(projection, ids), { timeout: 30_000 });
    await replica.stop();
  });
});
