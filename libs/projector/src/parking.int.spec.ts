import { connectTestNats, uniqueName } from "@ctx/test-support";
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listParked, type ParkingNames, park, provisionParking } from "./index.ts";

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectTestNats();
});

afterAll(async () => {
  await nc?.close();
});

const names = (): ParkingNames => {
  const stream = uniqueName("PARK");
  return { stream, subjectPrefix: stream.toLowerCase() };
};

describe("listParked", () => {
  it("lists every parked event, oldest first, across listing batches", async () => {
    const parking = names();
    const jsm = await jetstreamManager(nc);
    await provisionParking(jsm, parking);
    const js = jetstream(nc);
    // More than one listing batch (256), in two projections.
    for (let i = 1; i <= 300; i++) {
      await park(js, parking, {
        projection: i % 3 === 0 ? "neo4j" : "valkey",
        storyId: `s${i}`,
        version: i,
        originalSequence: i,
        eventType: "SubtaskAdded",
        reason: `cannot apply event ${i}`,
        data: new Uint8Array([i % 256]),
      });
    }

    const all = await listParked(jsm, parking);
    expect(all.map((p) => p.originalSequence)).toEqual(
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    const neo4j = await listParked(jsm, parking, "neo4j");
    expect(neo4j).toHaveLength(100);
    expect(neo4j.every((p) => p.projection === "neo4j" && p.originalSequence % 3 === 0)).toBe(true);
    expect(await listParked(jsm, parking, "other")).toEqual([]);
  });

  it("fails, instead of listing nothing, when the parked events cannot be read", async () => {
    // A parking stream that holds an event but does not answer direct gets: the listing must not
    // look complete (and empty) to an operator deciding what to replay.
    const parking = names();
    const jsm = await jetstreamManager(nc, { timeout: 1_000 });
    await jsm.streams.add({
      name: parking.stream,
      subjects: [`${parking.subjectPrefix}.>`],
      storage: StorageType.Memory,
      allow_direct: false,
    });
    await park(jetstream(nc), parking, {
      projection: "valkey",
      storyId: "s1",
      version: 1,
      originalSequence: 1,
      eventType: "SubtaskAdded",
      reason: "cannot apply event",
      data: new Uint8Array([1]),
    });

    await expect(listParked(jsm, parking)).rejects.toThrow();

    // Nobody answers at all (a request that is taken and dropped): the same.
    const blackHole = nc.subscribe(`$JS.API.DIRECT.GET.${parking.stream}`);
    try {
      await expect(listParked(jsm, parking)).rejects.toThrow();
    } finally {
      blackHole.unsubscribe();
    }
  });
});
