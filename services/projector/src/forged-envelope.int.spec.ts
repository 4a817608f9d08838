import { create, toBinary } from "@bufbuild/protobuf";
import { createLogger } from "@ctx/config";
import { fold, type StoryId, storyId, streamVersion, toContextMessage } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  eventSubject,
  provisionEventStream,
  storyPartition,
} from "@ctx/event-store";
import { envelopeAsWritten } from "@ctx/event-store/testing";
import {
  createProjector,
  listParked,
  type ParkingNames,
  type Projection,
  type Projector,
} from "@ctx/projector";
import { ContextEventSchema, SubtaskAddedSchema } from "@ctx/proto";
import { createValkeyClient, createValkeyProjection } from "@ctx/read-model-valkey";
import { connectTestNats, eventually, stack, uniqueName, valkeyLogin } from "@ctx/test-support";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Valkey } from "iovalkey";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Issue #20, defect 5: an event on story A's subject whose envelope says story B was applied to
// B's Valkey model (B's real version 2 then skipped as "already applied", B never marked stale).
// A projector must take a message for the story its subject names, or not at all: the forged
// message is parked (on A, with the reason), A is marked stale, and B's model is B's stream.

const logger = createLogger({ name: "forged-envelope", level: "silent", pretty: false });
let nc: NatsConnection;
let valkey: Valkey;
let settings: EventStreamSettings;
let parking: ParkingNames;
let store: EventStore;
const projectors: Projector[] = [];
const namespaces: string[] = [];

/**
 * A projector of the Valkey model under a namespace of its own, started; and that model. The
 * earlier one stops first: replicas of one projection on one stream share its partitions.
 */
async function startProjector() {
  for (const p of projectors.splice(0)) await p.stop();
  const namespace = uniqueName("forged");
  namespaces.push(namespace);
  const projection = createValkeyProjection(valkey, { keyPrefix: namespace });
  // Parked events of this projector's own: each test counts its own.
  const own: ParkingNames = {
    stream: `${parking.stream}_${namespaces.length}`,
    subjectPrefix: `${parking.subjectPrefix}${namespaces.length}`,
  };
  const projector = createProjector({
    nc,
    names: settings,
    partitions: settings.partitions,
    projection,
    replicaId: uniqueName("r"),
    logger,
    registry: new Registry(),
    parking: own,
    heartbeatMs: 200,
    leaseTtlMs: 1_500,
  });
  await projector.start();
  projectors.push(projector);
  return { projection, parking: own };
}

/** Two new stories in one partition: one worker sees their messages in stream order. */
function storiesInOnePartition(): [StoryId, StoryId] {
  const a = storyId(uniqueName("a"));
  let b = storyId(uniqueName("b"));
  while (storyPartition(b, settings.partitions) !== storyPartition(a, settings.partitions)) {
    b = storyId(uniqueName("b"));
  }
  return [a, b];
}

/**
 * B's version 2 as a forger writes it (chained onto B's head), published on A's subject; or, with
 * `version`, B's envelope at that version.
 */
async function forgeOnto(a: StoryId, b: StoryId, version = 2): Promise<number> {
  const bHead = await store.head(b);
  const forged = envelopeAsWritten(b, version, bHead?.hash ?? new Uint8Array(0), {
    eventType: "SubtaskAdded",
    schemaVersion: 1,
    payloadSchema: SubtaskAddedSchema,
    payload: create(SubtaskAddedSchema, { subtaskId: "forged", title: "forged" }),
    occurredAt: new Date(),
  });
  const ack = await jetstream(nc).publish(
    eventSubject(settings, a, "SubtaskAdded"),
    toBinary(ContextEventSchema, forged),
  );
  return ack.seq;
}

async function created(...ids: StoryId[]): Promise<void> {
  for (const id of ids) {
    await store.append(
      id,
      [{ data: eventData.contextCreated({ title: id }) }],
      ExpectedVersion.NoStory,
    );
  }
}

/** Waits until the model holds the story as the fold of its stream, not stale. */
async function expectModelIsStream(projection: Projection, id: StoryId, version: number) {
  await eventually(
    async () => {
      const events = await store.read(id);
      const model = await projection.readContext(await projection.activeGeneration(), id);
      expect(model?.version).toBe(version);
      expect(model?.context).toEqual(toContextMessage(fold(id, events)));
      expect(model?.stale).toBe(false);
    },
    { timeout: 20_000 },
  );
}

beforeAll(async () => {
  nc = await connectTestNats();
  valkey = createValkeyClient(valkeyLogin(stack()));
  const name = uniqueName("FORGED");
  settings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: 4,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  parking = { stream: `${name}_PARKED`, subjectPrefix: `${name.toLowerCase()}_parked` };
  await provisionEventStream(await jetstreamManager(nc), settings);
  store = createEventStore(nc, { names: settings });
});

afterAll(async () => {
  for (const p of projectors) await p.stop();
  const jsm = await jetstreamManager(nc);
  for (const [i, namespace] of namespaces.entries()) {
    const model = createValkeyProjection(valkey, { keyPrefix: namespace });
    for (const g of await model.generations()) await model.dropGeneration(g);
    await jsm.streams.delete(`${parking.stream}_${i + 1}`).catch(() => undefined);
  }
  await jsm.streams.delete(settings.stream).catch(() => undefined);
  await valkey.quit();
  await nc.close();
});

describe("a projector given a forged envelope", () => {
  it("parks a message on A's subject whose envelope says story B, marks A stale, leaves B to its own events, and rebuilds A once an operator sets it aside", async () => {
    // Both in one partition, the forged message before B's real version 2: the defect's order
    // (the forged v2 won, the real one was skipped as already applied).
    const [a, b] = storiesInOnePartition();
    await created(a, b);
    const forgedAt = await forgeOnto(a, b);
    await store.append(
      b,
      [{ data: eventData.subtaskAdded({ subtaskId: "real", title: "real" }) }],
      streamVersion(1),
    );
    const { projection, parking: parked } = await startProjector();

    await expectModelIsStream(projection, b, 2);
    await eventually(
      async () => {
        const entries = await listParked(await jetstreamManager(nc), parked, "valkey");
        expect(entries).toHaveLength(1);
        expect(entries[0]).toMatchObject({
          storyId: a,
          originalSequence: forgedAt,
          reason: expect.stringMatching(new RegExp(`EventMismatchError: .*story "${b}"`)),
        });
        const aModel = await projection.readContext(await projection.activeGeneration(), a);
        expect(aModel?.stale).toBe(true);
        expect(aModel?.version).toBe(1);
      },
      { timeout: 20_000 },
    );

    // The operator sets it aside: the EventsSetAside reaches the projector, which rebuilds A.
    await store.setAside(a, { sequences: [forgedAt], reason: "forged", operator: "test" });
    await expectModelIsStream(projection, a, 2);
  });

  it("given a message set aside before the projector reaches it, then it parks nothing and A is never left stale", async () => {
    const [a, b] = storiesInOnePartition();
    await created(a, b);
    const forgedAt = await forgeOnto(a, b);
    await store.setAside(a, { sequences: [forgedAt], reason: "forged", operator: "test" });
    const { projection, parking: parked } = await startProjector();
    await expectModelIsStream(projection, a, 2);
    await expectModelIsStream(projection, b, 1);
    expect(await listParked(await jetstreamManager(nc), parked, "valkey")).toEqual([]);
  });

  it("parks an event of the story whose version skips the story's next one, and goes on with the partition", async () => {
    const [a, b] = storiesInOnePartition();
    await created(a, b);
    // A's own envelope, version 5 where A is at 1: no event of the stream fills the gap.
    const skipping = await forgeOnto(a, a, 5);
    await store.append(
      b,
      [{ data: eventData.subtaskAdded({ subtaskId: "after", title: "after" }) }],
      streamVersion(1),
    );
    const { projection, parking: parked } = await startProjector();
    // The partition goes on: B's event after it is applied.
    await expectModelIsStream(projection, b, 2);
    await eventually(
      async () => {
        const entries = await listParked(await jetstreamManager(nc), parked, "valkey");
        const entry = entries.find((p) => p.storyId === a);
        expect(entry).toMatchObject({
          originalSequence: skipping,
          version: 5,
          reason: expect.stringMatching(/version 5 where version 2 was expected/),
        });
        const aModel = await projection.readContext(await projection.activeGeneration(), a);
        expect(aModel).toMatchObject({ version: 1, stale: true });
      },
      { timeout: 20_000 },
    );
  });
});
