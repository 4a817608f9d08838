import { createServer } from "node:net";
import { type StoryId, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import type { RecordedEvent } from "@ctx/event-store";
import {
  isStoreUnavailableError,
  isVersionConflictError,
  type Projection,
  type ProjectionBatch,
  type StoryEvents,
} from "@ctx/projector";
import { expectedContext, projectionContract, recorded } from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import { stack, uniqueName, type ValkeyLogin, valkeyLogin } from "@ctx/test-support";
import { Valkey } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createValkeyClient, createValkeyContextReader, createValkeyProjection } from "./index.ts";

const clients: Valkey[] = [];
function client(at: ValkeyLogin | string = valkeyLogin(stack())): Valkey {
  const valkey = createValkeyClient(at);
  clients.push(valkey);
  return valkey;
}
afterAll(async () => {
  await Promise.all(clients.map((c) => (c.status === "ready" ? c.quit() : c.disconnect())));
});

projectionContract("valkey", async () =>
  createValkeyProjection(client(), { keyPrefix: uniqueName("contract") }),
);

let counter = 0;
const newStory = () => storyId(`s-${(counter++).toString(36)}-${uniqueName("v")}`);

/** A story's whole history from payloads, numbered from version 1. */
function history(story: StoryId, data: readonly RecordedEvent["data"][]): RecordedEvent[] {
  return data.map((d, i) => recorded(story, i + 1, d));
}

const created = () => eventData.contextCreated({ title: "T" });
const subtask = (subtaskId: string) => eventData.subtaskAdded({ subtaskId, title: subtaskId });
const moved = (subtaskId: string, status: SubtaskStatus) =>
  eventData.subtaskUpdated({ subtaskId, status, assignee: "ada" });

function fromStart(story: StoryId, events: readonly RecordedEvent[]): StoryEvents {
  return { storyId: story, expectedVersion: streamVersion(0), events };
}

describe("Valkey projection's cache of story states", () => {
  it("never lets a state it remembers hide another writer's newer version", async () => {
    const keyPrefix = uniqueName("cache");
    const [a, b] = [
      createValkeyProjection(client(), { keyPrefix }),
      createValkeyProjection(client(), { keyPrefix }),
    ] as [Projection, Projection];
    await a.init();
    const story = newStory();
    const events = history(story, [
      created(),
      subtask("x"),
      moved("x", SubtaskStatus.DONE),
      subtask("y"),
    ]);
    const at = (expected: number, from: number, to: number): ProjectionBatch => ({
      generation: 1,
      partition: 0,
      checkpoint: 0,
      stories: [
        {
          storyId: story,
          expectedVersion: streamVersion(expected),
          events: events.slice(from, to),
        },
      ],
    });
    await a.apply(at(0, 0, 2)); // a remembers version 2
    await b.apply(at(2, 2, 3)); // b moves the story to version 3 behind a's back
    const stale = await a.apply(at(2, 2, 3)).catch((e: unknown) => e);
    expect(isVersionConflictError(stale)).toBe(true);
    await a.apply(at(3, 3, 4));
    const read = await a.readContext(1, story);
    expect(read?.version).toBe(4);
    expect(read?.context).toEqual(expectedContext(story, events));
  });
});

describe("Valkey projection", () => {
  const prefix = uniqueName("projection");
  let valkey: Valkey;
  let projection: Projection;
  const generation = 1;
  const batch = (
    checkpoint: number,
    stories: readonly StoryEvents[],
    partition = 0,
  ): ProjectionBatch => ({ generation, partition, checkpoint, stories });

  beforeAll(async () => {
    valkey = client();
    projection = createValkeyProjection(valkey, { keyPrefix: prefix });
    await projection.init();
  });

  it("applies several events of one story from one batch in order, at a cost that does not grow with them", async () => {
    const reader = createValkeyContextReader(valkey, { keyPrefix: prefix });
    const totalCommands = async () =>
      Number(/tot-cmds=(\d+)/.exec(String(await valkey.client("INFO")))?.[1]);
    let checkpoint = 100;
    const commandsOf = async (stories: readonly StoryEvents[]) => {
      const before = await totalCommands();
      await projection.apply(batch(++checkpoint, stories));
      return (await totalCommands()) - before;
    };

    const short = newStory();
    const shortEvents = history(short, [created(), subtask("a")]);
    const long = newStory();
    const longEvents = history(long, [
      created(),
      subtask("a"),
      ...Array.from({ length: 18 }, (_, i) =>
        moved("a", i % 2 === 0 ? SubtaskStatus.IN_PROGRESS : SubtaskStatus.TODO),
      ),
    ]);
    // Same final shape (one subtask, TODO), so the same commands, whatever the number of events.
    expect(await commandsOf([fromStart(long, longEvents)])).toBe(
      await commandsOf([fromStart(short, shortEvents)]),
    );
    expect((await projection.readContext(generation, long))?.context).toEqual(
      expectedContext(long, longEvents),
    );

    const ordered = newStory();
    const events = history(ordered, [
      created(),
      subtask("a"),
      subtask("b"),
      moved("a", SubtaskStatus.IN_PROGRESS),
      moved("b", SubtaskStatus.BLOCKED),
      moved("a", SubtaskStatus.DONE),
      moved("b", SubtaskStatus.TODO),
    ]);
    await projection.apply(batch(++checkpoint, [fromStart(ordered, events)]));
    const read = await projection.readContext(generation, ordered);
    expect(read?.version).toBe(7);
    expect(read?.context).toEqual(expectedContext(ordered, events));
    expect(await reader.subtasksByStatus(ordered, SubtaskStatus.DONE)).toEqual(["a"]);
    expect(await reader.subtasksByStatus(ordered, SubtaskStatus.TODO)).toEqual(["b"]);
    expect(await reader.subtasksByStatus(ordered, SubtaskStatus.IN_PROGRESS)).toEqual([]);
    expect(await reader.subtasksByStatus(ordered, SubtaskStatus.BLOCKED)).toEqual([]);
  });

  it("writes the stories whose guard holds, names the one whose guard does not, and keeps the checkpoint", async () => {
    const [good, bad] = [newStory(), newStory()];
    const badEvents = history(bad, [created(), subtask("a"), subtask("b")]);
    await projection.apply(batch(10, [fromStart(bad, badEvents.slice(0, 1))], 1));

    const applying = projection.apply(
      batch(
        20,
        [
          fromStart(good, history(good, [created(), subtask("a")])),
          // The model holds version 1 of it, not 2: version 2 would be skipped.
          { storyId: bad, expectedVersion: streamVersion(2), events: badEvents.slice(2) },
        ],
        1,
      ),
    );
    await expect(applying).rejects.toSatisfy((e) => isVersionConflictError(e) && e.storyId === bad);
    const positions = await projection.positions(generation, [good, bad]);
    expect([positions.get(good)?.version, positions.get(bad)?.version]).toEqual([2, 1]);
    expect(await projection.checkpoint(generation, 1)).toBe(10);
  });

  it("moves the checkpoint over a story the model already holds further than the batch", async () => {
    const story = newStory();
    const events = history(story, [created(), subtask("a")]);
    await projection.apply(batch(10, [fromStart(story, events)], 3));
    // A redelivery of version 1: refused (the runtime re-reads positions), yet nothing is missing.
    await expect(
      projection.apply(batch(11, [fromStart(story, events.slice(0, 1))], 3)),
    ).rejects.toSatisfy(isVersionConflictError);
    expect(await projection.checkpoint(generation, 3)).toBe(11);
  });

  it("lets exactly one of two racing writers of a story win, checked inside the write", async () => {
    const story = newStory();
    const events = history(story, [created(), subtask("a"), subtask("b")]);
    const rival = createValkeyProjection(valkey, { keyPrefix: prefix });
    // One connection: both reads reach the server before either write, so the loser is refused
    // by the guard in the write script, not by the read.
    const outcomes = await Promise.allSettled([
      projection.apply(batch(30, [fromStart(story, events)], 2)),
      rival.apply(batch(30, [fromStart(story, events.slice(0, 2))], 2)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected"]);
    expect(outcomes[1]?.status === "rejected" && isVersionConflictError(outcomes[1].reason)).toBe(
      true,
    );
    const read = await projection.readContext(generation, story);
    expect(read?.version).toBe(3);
    expect(read?.context).toEqual(expectedContext(story, events));
    expect(await projection.checkpoint(generation, 2)).toBe(30);
  });

  it("only ever raises a partition's checkpoint", async () => {
    await projection.apply(batch(500, [], 7));
    await projection.apply(batch(400, [], 7));
    expect(await projection.checkpoint(generation, 7)).toBe(500);
  });

  it("refuses a batch whose events do not follow the expected version, before writing", async () => {
    const story = newStory();
    const events = history(story, [created(), subtask("a")]);
    await expect(
      projection.apply(
        batch(1, [{ ...fromStart(story, events), expectedVersion: streamVersion(1) }]),
      ),
    ).rejects.toThrow(RangeError);
    expect(await projection.readContext(generation, story)).toBeUndefined();
  });

  it("drops every key of a generation and nothing of another", async () => {
    const story = newStory();
    const events = history(story, [created(), subtask("a")]);
    for (const g of [5, 6]) {
      await projection.apply({
        generation: g,
        partition: 0,
        checkpoint: 9,
        stories: [fromStart(story, events)],
      });
    }
    await projection.markStale(5, newStory(), "poison");
    await projection.dropGeneration(5);

    const keysOf = async (g: number) => {
      const found: string[] = [];
      let cursor = "0";
      do {
        const [next, page] = await valkey.scan(cursor, "MATCH", `${prefix}:g${g}:*`, "COUNT", 1000);
        found.push(...page);
        cursor = next;
      } while (cursor !== "0");
      return found;
    };
    expect(await keysOf(5)).toEqual([]);
    expect(await keysOf(6)).not.toEqual([]);
    expect(await projection.generations()).toContain(6);
    expect(await projection.generations()).not.toContain(5);
  });

  it("refuses a client that would keep calls waiting forever during an outage", () => {
    const forever = new Valkey(stack().valkeyUrl, {
      lazyConnect: true,
      maxRetriesPerRequest: null,
    });
    expect(() => createValkeyProjection(forever)).toThrow(TypeError);
    expect(() => createValkeyContextReader(forever)).toThrow(TypeError);
  });
});

describe("Valkey projection during an outage", () => {
  let down: Valkey;
  beforeAll(async () => {
    down = client(`redis://127.0.0.1:${await freePort()}`);
    down.on("error", () => {
      // Connection refused, again and again: what this test is about.
    });
  });

  it("rejects with StoreUnavailableError instead of waiting for Valkey", async () => {
    const projection = createValkeyProjection(down, { keyPrefix: uniqueName("down") });
    const story = newStory();
    await expect(
      projection.apply({
        generation: 1,
        partition: 0,
        checkpoint: 1,
        stories: [fromStart(story, history(story, [created()]))],
      }),
    ).rejects.toSatisfy(isStoreUnavailableError);
    await expect(projection.positions(1, [story])).rejects.toSatisfy(isStoreUnavailableError);
    await expect(projection.init()).rejects.toSatisfy(isStoreUnavailableError);
    const reader = createValkeyContextReader(down, { keyPrefix: uniqueName("down") });
    await expect(reader.getContext(story)).rejects.toSatisfy(isStoreUnavailableError);
  });
});

/** A port nothing listens on: bound by the OS for us, then released. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return address.port;
}
