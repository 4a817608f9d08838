import { fold, type StoryId, storyId, streamVersion, toContextMessage } from "@ctx/domain";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
} from "@ctx/event-store";
import { listParked, type ParkingNames, partitionConsumers } from "@ctx/projector";
import { connectTestNats, stack, uniqueName } from "@ctx/test-support";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadProjectorConfig, type ReadModelKind } from "./config.ts";
import { openReadModel } from "./read-models.ts";
import {
  type ProjectorProcess,
  projectorEnv,
  provisionTestStreams,
  settle,
  spawnProjector,
} from "./testing/projector-processes.ts";
import { loadEvents } from "./testing/story-load.ts";

// The read models equal the fold of the stream after a 20,000-event load during which projector
// replicas are SIGKILLed at random points, a poison message sits in the middle, and redeliveries
// (from the kills) arrive twice.

const STORIES = 200;
const EVENTS_PER_STORY = 100;
const KILLS = 12;

let nc: NatsConnection;
let store: EventStore;
let settings: EventStreamSettings;
let parking: ParkingNames;
let namespace: string;
let env: Record<string, string>;
const replicas = new Map<string, ProjectorProcess>();

beforeAll(async () => {
  nc = await connectTestNats();
  const streams = await provisionTestStreams(nc, "CHAOS", 8, 2_000);
  ({ settings, parking } = streams);
  namespace = uniqueName("chaos");
  store = createEventStore(nc, { names: settings });
  const s = stack();
  const neo4j = { url: s.neo4jUrl, user: s.neo4jUser, passwordFile: s.neo4jPasswordFile };
  env = projectorEnv(
    streams,
    { neo4j, namespace },
    { PROJECTOR_LEASE_TTL_MS: "2000", PROJECTOR_BATCH_SIZE: "200" },
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([...replicas.values()].map((r) => r.kill()));
  for (const kind of ["valkey", "neo4j"] as const) {
    const model = modelSettings(kind);
    for (const g of await model.projection.generations()) await model.projection.dropGeneration(g);
    await model.close();
  }
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(settings.stream).catch(() => undefined);
  await jsm.streams.delete(parking.stream).catch(() => undefined);
  await nc.close();
}, 120_000);

function modelSettings(kind: ReadModelKind) {
  return openReadModel(kind, loadProjectorConfig({ ...env, PROJECTION: kind }));
}

function start(kind: ReadModelKind, index: number): void {
  const id = `${kind}-${index}`;
  replicas.set(id, spawnProjector({ ...env, PROJECTION: kind }, id));
}

const events = loadEvents;

async function expectModelsEqualFold(ids: readonly StoryId[]): Promise<void> {
  for (const kind of ["valkey", "neo4j"] as const) {
    const model = modelSettings(kind);
    try {
      const generation = await model.projection.activeGeneration();
      for (const id of ids) {
        const read = await model.projection.readContext(generation, id);
        const history = await store.read(id);
        expect(read?.version, `${kind} ${id}`).toBe(history.length);
        expect(read?.context, `${kind} ${id}`).toEqual(toContextMessage(fold(id, history)));
      }
    } finally {
      await model.close();
    }
  }
}

/** What each replica logged and where each consumer stands, for a failure that needs explaining. */
async function printDiagnostics(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const kind of ["valkey", "neo4j"] as const) {
    const consumers = await partitionConsumers(jsm, settings.stream, kind);
    for (let p = 0; p < settings.partitions; p++) {
      const info = consumers.get(p);
      console.error(
        `${kind} p${p}: ack floor ${info?.ack_floor.stream_seq} pending ${info?.num_pending} ack-pending ${info?.num_ack_pending} waiting ${info?.num_waiting}`,
      );
    }
  }
  for (const [id, replica] of replicas)
    console.error(`--- ${id}\n${replica.output().slice(-3000)}`);
}

describe("projectors under SIGKILL", () => {
  it("keep both read models equal to the fold of a 20,000-event stream while replicas die", async () => {
    for (const kind of ["valkey", "neo4j"] as const) for (let i = 0; i < 3; i++) start(kind, i);
    const ids = Array.from({ length: STORIES }, (_, i) => storyId(`${namespace}-s${i}`));
    const poisoned = storyId(`${namespace}-poison`);
    const chunk = 10;
    let written = 0;
    const total = STORIES * EVENTS_PER_STORY;
    // Writers: 20 at a time, 10 events per append.
    const writers = Array.from({ length: 20 }, async (_, w) => {
      for (let s = w; s < STORIES; s += 20) {
        const id = ids[s] as StoryId;
        for (let v = 1; v <= EVENTS_PER_STORY; v += chunk) {
          await store.append(
            id,
            events(id, v, chunk),
            v === 1 ? ExpectedVersion.NoStory : streamVersion(v - 1),
          );
          written += chunk;
        }
      }
    });
    // The killer: SIGKILLs a random replica at random points during the load and restarts it.
    let kills = 0;
    const killer = (async () => {
      while (kills < KILLS) {
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
        const [id, victim] = [...replicas.entries()][Math.floor(Math.random() * replicas.size)] as [
          string,
          ProjectorProcess,
        ];
        await victim.kill();
        kills += 1;
        const [kind, index] = id.split("-") as [ReadModelKind, string];
        start(kind, Number(index));
        if (kills === KILLS / 2) {
          // A poison message in the middle of the stream: bytes that are no event at all.
          await jetstream(nc).publish(
            `${settings.subjectPrefix}.${poisoned}.SubtaskAdded`,
            new Uint8Array([9, 9, 9, 255, 0]),
          );
        }
      }
    })();
    await Promise.all([...writers, killer]);
    expect(written).toBe(total);
    expect(kills).toBeGreaterThanOrEqual(10);

    try {
      await settle(() => expectModelsEqualFold(ids), 240_000);
    } catch (e) {
      await printDiagnostics();
      throw e;
    }
    const parked = await listParked(await jetstreamManager(nc), parking);
    expect(
      parked
        .filter((p) => p.storyId === poisoned)
        .map((p) => p.projection)
        .sort(),
    ).toEqual(["neo4j", "valkey"]);
    expect(parked.filter((p) => p.storyId !== poisoned)).toEqual([]);
  }, 400_000);
});
