import { create } from "@bufbuild/protobuf";
import { createLogger } from "@ctx/config";
import { currentSchemaVersion, fold, type StoryId, storyId, toContextMessage } from "@ctx/domain";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  provisionEventStream,
} from "@ctx/event-store";
import { appendAsWritten, type WrittenEvent } from "@ctx/event-store/testing";
import { ContextCreatedSchema, SubtaskAddedSchema } from "@ctx/proto";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProjector, type ParkingNames, partitionConsumers } from "./index.ts";
import { MemoryProjection } from "./testing/index.ts";

// Issue #20, defect 9: a 218 MB backlog of maximum-size events made the projector pull all of it
// at once (pulls were bounded by count only: 4,000 events per partition), 1.5 GB RSS and three
// slow-consumer cuts. Pulls are now bounded by bytes too; this checks what can be seen without a
// clock: the pull requests on the wire, what the server has delivered and not had acknowledged,
// the projector's gauge of bytes it holds, and the connection's status.

const logger = createLogger({ name: "pull-bytes-test", level: "silent", pretty: false });
const PARTITIONS = 4;
const STORIES = 50;
const EVENTS_PER_STORY = 4;
const PAYLOAD_BYTES = 100_000;
/** Just above what a pull must ask for at least: the server's max_payload (1 MiB) and some room. */
const PULL_MAX_BYTES = 1_250_000;

let nc: NatsConnection;
let jsm: JetStreamManager;
let settings: EventStreamSettings;
let parking: ParkingNames;
let store: EventStore;

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  const name = uniqueName("PULLBYTES");
  settings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: PARTITIONS,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  parking = { stream: `${name}_PARKED`, subjectPrefix: `${name.toLowerCase()}_parked` };
  await provisionEventStream(jsm, settings);
  store = createEventStore(nc, { names: settings });
});

afterAll(async () => {
  await jsm.streams.delete(settings.stream).catch(() => undefined);
  await jsm.streams.delete(parking.stream).catch(() => undefined);
  await nc.close();
});

const big = (n: number) => "x".repeat(n);

/** A story of events of about PAYLOAD_BYTES each, written straight to the stream as stored. */
async function writeLargeStory(id: StoryId): Promise<void> {
  const events: WrittenEvent[] = Array.from({ length: EVENTS_PER_STORY }, (_, i) =>
    i === 0
      ? {
          eventType: "ContextCreated",
          schemaVersion: currentSchemaVersion.ContextCreated,
          payloadSchema: ContextCreatedSchema,
          payload: create(ContextCreatedSchema, { title: "big", description: big(PAYLOAD_BYTES) }),
          occurredAt: new Date(),
        }
      : {
          eventType: "SubtaskAdded",
          schemaVersion: currentSchemaVersion.SubtaskAdded,
          payloadSchema: SubtaskAddedSchema,
          payload: create(SubtaskAddedSchema, { subtaskId: `s${i}`, title: big(PAYLOAD_BYTES) }),
          occurredAt: new Date(),
        },
  );
  await appendAsWritten(nc, store, id, events);
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values[0]?.value ?? 0;
}

describe("pulls bounded by bytes", () => {
  it("projects a backlog of large events holding at most two windows of bytes per partition", async () => {
    const ids = Array.from({ length: STORIES }, () => storyId(uniqueName("big")));
    for (const id of ids) await writeLargeStory(id);

    // A model that does not answer until released: the backlog stays in the stream, and each
    // partition holds what its pulls brought (a batch in hand, the rest queued).
    const projection = new MemoryProjection(uniqueName("m"));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const apply = projection.apply.bind(projection);
    projection.apply = async (batch) => {
      await gate;
      return apply(batch);
    };

    // Every pull request on the wire, as the server receives it.
    const requests: { batch?: number; max_bytes?: number }[] = [];
    const wire = nc.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${settings.stream}.>`, {
      callback: (_, msg) => {
        requests.push(msg.json());
      },
    });
    await nc.flush();

    const conn = await connectTestNats();
    const cuts: string[] = [];
    void (async () => {
      for await (const s of conn.status()) {
        if (s.type === "disconnect" || s.type === "error" || s.type === "slowConsumer")
          cuts.push(s.type);
      }
    })();
    const registry = new Registry();
    const projector = createProjector({
      nc: conn,
      names: settings,
      partitions: PARTITIONS,
      projection,
      replicaId: "big-1",
      logger,
      registry,
      parking,
      pullMaxBytes: PULL_MAX_BYTES,
      heartbeatMs: 200,
      leaseTtlMs: 2_000,
    });
    try {
      await projector.start();
      // Bytes a partition may hold: the batch in hand (at most one window) and one window queued
      // or requested; in messages, with each delivery counting its subject and headers too.
      const perPartition = 2 * PULL_MAX_BYTES;
      const mostMessages = Math.floor(perPartition / PAYLOAD_BYTES);
      let mostHeld = 0;
      let previous = -1;
      let stableFor = 0;
      await eventually(
        async () => {
          mostHeld = Math.max(mostHeld, await metric(registry, "ctx_projector_buffered_bytes"));
          const consumers = await partitionConsumers(jsm, settings.stream, projection.name);
          const delivered = [...consumers.values()].map((c) => c.num_ack_pending);
          for (const n of delivered) expect(n).toBeLessThanOrEqual(mostMessages);
          // Steady: every partition took up its backlog, and nothing more came for a while.
          const total = delivered.reduce((a, b) => a + b, 0);
          stableFor = total === previous ? stableFor + 1 : 0;
          previous = total;
          expect(delivered.filter((n) => n > 0)).toHaveLength(consumers.size);
          expect(consumers.size).toBe(PARTITIONS);
          expect(stableFor).toBeGreaterThanOrEqual(5);
        },
        { timeout: 30_000, interval: 200 },
      );
      expect(mostHeld).toBeGreaterThan(0);
      expect(mostHeld).toBeLessThanOrEqual(PARTITIONS * perPartition);
      // Every request asked for at most a window of bytes, and for at least a message's worth.
      expect(requests.length).toBeGreaterThan(0);
      for (const r of requests) {
        expect(r.max_bytes).toBeGreaterThanOrEqual(1024 * 1024);
        expect(r.max_bytes).toBeLessThanOrEqual(PULL_MAX_BYTES);
      }

      release();
      await eventually(
        async () => {
          for (const id of ids) {
            const read = await projection.readContext(projection.active, id);
            expect(read?.version).toBe(EVENTS_PER_STORY);
          }
        },
        { timeout: 60_000 },
      );
      for (const id of ids.slice(0, 3)) {
        const read = await projection.readContext(projection.active, id);
        expect(read?.context).toEqual(toContextMessage(fold(id, await store.read(id))));
      }
      await eventually(async () =>
        expect(await metric(registry, "ctx_projector_buffered_bytes")).toBe(0),
      );
      expect(cuts).toEqual([]);
    } finally {
      release();
      wire.unsubscribe();
      await projector.stop();
      await conn.close();
    }
  });
});
