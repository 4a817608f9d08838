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
import { testStreamSettings } from "@ctx/event-store/testing";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProjector, type ParkingNames, rebuildProjection, rebuildStory } from "./index.ts";
import { MemoryProjection } from "./testing/index.ts";

const logger = createLogger({ name: "rebuild-test", level: "silent" });
let nc: NatsConnection;
let settings: EventStreamSettings;
let parking: ParkingNames;
let store: EventStore;

beforeAll(async () => {
  nc = await connectTestNats();
  const name = uniqueName("REBUILD");
  settings = testStreamSettings(name);
  parking = { stream: `${name}_PARKED`, subjectPrefix: `${name.toLowerCase()}_parked` };
  await provisionEventStream(await jetstreamManager(nc), settings);
  store = createEventStore(nc, { names: settings });
});

afterAll(async () => {
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

async function write(ids: readonly StoryId[], eventsEach: number): Promise<void> {
  for (const id of ids) {
    const head = (await store.head(id))?.version ?? 0;
    const events = Array.from({ length: eventsEach }, (_, i) => ({
      data: head + i === 0 ? created() : subtask(`s${head + i}`),
    }));
    await store.append(id, events, streamVersion(head));
  }
}

async function modelEqualsFold(projection: MemoryProjection, ids: readonly StoryId[]) {
  for (const id of ids) {
    const read = await projection.readContext(projection.active, id);
    expect(read?.context).toEqual(toContextMessage(fold(id, await store.read(id))));
  }
}

describe("rebuild", () => {
  it("rebuilds beside the live generation, switches readers, keeps projecting, and resumes when interrupted", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const ids = Array.from({ length: 40 }, (_, i) => storyId(`${uniqueName("r")}-${i}`));
    await write(ids, 5);
    const live = createProjector({
      nc,
      names: settings,
      partitions: settings.partitions,
      projection,
      replicaId: "live",
      logger,
      registry: new Registry(),
      parking,
      heartbeatMs: 200,
      leaseTtlMs: 1_500,
    });
    await live.start();
    try {
      await eventually(() => modelEqualsFold(projection, ids), { timeout: 20_000 });
      expect(projection.active).toBe(1);

      // Interrupted after the first batch: the live generation is untouched.
      const abort = new AbortController();
      const first = await rebuildProjection({
        nc,
        store,
        partitions: settings.partitions,
        projection,
        logger,
        parking,
        batchSize: 50,
        signal: abort.signal,
        onProgress: () => abort.abort(),
      });
      expect(first.switched).toBe(false);
      expect(projection.active).toBe(1);
      expect(first.events).toBe(50);

      // Readers keep answering from the live generation while the rebuild runs and switches.
      let reads = 0;
      let reading = true;
      const reader = (async () => {
        while (reading) {
          const model = await projection.readContext(projection.active, ids[0] as StoryId);
          expect(model?.version).toBeGreaterThan(0);
          reads += 1;
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const second = await rebuildProjection({
        nc,
        store,
        partitions: settings.partitions,
        projection,
        logger,
        parking,
        batchSize: 50,
        dropDelayMs: 100,
      });
      reading = false;
      await reader;
      expect(reads).toBeGreaterThan(0);
      expect(second).toMatchObject({
        generation: first.generation,
        previousGeneration: 1,
        switched: true,
      });
      expect(second.events).toBe(200 - 50);
      expect(projection.active).toBe(first.generation);
      expect(await projection.generations()).toEqual([first.generation]);
      await modelEqualsFold(projection, ids);

      // The live projector follows the switch: new events land in the new generation.
      await write(ids.slice(0, 10), 2);
      await eventually(() => modelEqualsFold(projection, ids), { timeout: 20_000 });
    } finally {
      await live.stop();
    }
  });

  it("rebuilds one story in place and clears its stale flag", async () => {
    const projection = new MemoryProjection(uniqueName("m"));
    const id = storyId(uniqueName("one"));
    await store.append(id, [{ data: created() }, { data: subtask("a") }], ExpectedVersion.NoStory);
    await projection.markStale(1, id);
    const { version } = await rebuildStory(projection, store, id);
    expect(version).toBe(2);
    const model = await projection.readContext(1, id);
    expect(model?.stale).toBe(false);
    expect(model?.context).toEqual(toContextMessage(fold(id, await store.read(id))));
  });
});
