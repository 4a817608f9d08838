import type { Command, StoryId } from "@ctx/domain";
import { storyId } from "@ctx/domain";
import {
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  provisionEventStream,
  type ReadOptions,
} from "@ctx/event-store";
import { testStreamSettings } from "@ctx/event-store/testing";
import { SubtaskStatus } from "@ctx/proto";
import { connectTestNats, uniqueName } from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isCommandIdReusedError } from "../errors.ts";
import { type CommandHandler, createCommandHandler } from "./command-handler.ts";

// Two command handlers, each with a store and a story cache of its own, share one stream: what two
// replicas of the command service do. The server's story-wide check decides; the handlers must
// recover from a stale cache by reading only what they missed.

let nc: NatsConnection;
let settings: EventStreamSettings;

beforeAll(async () => {
  nc = await connectTestNats();
  const name = uniqueName("HANDLER");
  settings = testStreamSettings(name);
  await provisionEventStream(await jetstreamManager(nc), settings);
});

afterAll(async () => {
  await (await jetstreamManager(nc)).streams.delete(settings.stream);
  await nc.close();
});

/** A real event store that records the options of every story read. */
function recordingStore(): { store: EventStore; reads: ReadOptions[] } {
  const store = createEventStore(nc, { names: settings });
  const reads: ReadOptions[] = [];
  const read = store.read.bind(store);
  store.read = (id: StoryId, options: ReadOptions = {}) => {
    reads.push(options);
    return read(id, options);
  };
  return { store, reads };
}

const addSubtask = (id: string): Command => ({
  type: "AddSubtask",
  subtaskId: id,
  title: `Subtask ${id}`,
  dependsOn: [],
});

/** A request of one command, under `commandId` when given. */
function requestOf(story: StoryId, command: Command, commandId?: string) {
  return {
    storyId: story,
    name: command.type,
    commands: [command],
    ...(commandId === undefined ? {} : { commandId }),
    correlationId: "",
    causationId: "",
  };
}

function run(handler: CommandHandler, story: StoryId, command: Command) {
  return handler.handle(requestOf(story, command));
}

/**
 * Two replicas' handlers on a new story: the first created it, the second added a subtask the
 * first has not seen (its cached story is one event behind).
 */
async function replicasOneBehind(title: string) {
  const story = storyId(uniqueName("story"));
  const first = createCommandHandler(recordingStore().store);
  const second = createCommandHandler(recordingStore().store);
  await run(first, story, { type: "CreateContext", title, description: "" });
  await run(second, story, addSubtask("cached"));
  return { story, first, second };
}

describe("a handler whose cached story is behind the stream", () => {
  it("reads only the events it missed, decides again and appends after them", async () => {
    const story = storyId(uniqueName("story"));
    const a = recordingStore();
    const b = recordingStore();
    const first = createCommandHandler(a.store);
    const second = createCommandHandler(b.store);

    // Given the first handler has the story cached at version 2
    await run(first, story, { type: "CreateContext", title: "Shared", description: "" });
    await run(first, story, addSubtask("a1"));
    const cachedHead = await a.store.head(story);
    const cachedAt = cachedHead?.sequence;
    // and the second handler has since appended two events it does not know of
    await run(second, story, addSubtask("b1"));
    await run(second, story, addSubtask("b2"));
    a.reads.length = 0;

    // When the first handler runs a command on the story
    const result = await run(first, story, addSubtask("a2"));

    // Then it read the story once, from where its cache ended, from the stream's leader (which
    // surely holds what made its append conflict), the first event it missed checked as the link
    // after its cached head, and appended as version 5
    expect(a.reads).toEqual([
      {
        afterSequence: Number(cachedAt),
        afterHash: Uint8Array.from(cachedHead?.hash ?? []),
        fromVersion: 3,
        fromLeader: true,
      },
    ]);
    expect(result.version).toBe(5);
    const events = await a.store.read(story);
    expect(events.map((e) => e.version)).toEqual([1, 2, 3, 4, 5]);
    expect(
      events.map((e) => (e.data.case === "subtaskAdded" ? e.data.value.subtaskId : "")),
    ).toEqual(["", "a1", "b1", "b2", "a2"]);
  });

  it("reads the whole story again when the stream does not go on from its cache", async () => {
    // A stream of its own, deleted and created again under the same name (a restore, a test reset).
    const name = uniqueName("RESET");
    const own = testStreamSettings(name);
    const jsm = await jetstreamManager(nc);
    await provisionEventStream(jsm, own);
    const story = storyId(uniqueName("story"));
    const first = createCommandHandler(createEventStore(nc, { names: own }));
    await run(first, story, { type: "CreateContext", title: "Before", description: "" });
    await run(first, story, addSubtask("old"));
    await jsm.streams.delete(name);
    await provisionEventStream(jsm, own);
    const second = createCommandHandler(createEventStore(nc, { names: own }));
    await run(second, story, { type: "CreateContext", title: "After", description: "" });

    const result = await run(first, story, addSubtask("new"));

    expect(result.version).toBe(2);
    await jsm.streams.delete(name);
  });

  it("refuses a command id another replica used for another request, found on the conflict", async () => {
    const { story, first, second } = await replicasOneBehind("Shared");
    // The first replica, behind by one event, stores the command id "k" for one request...
    const request = (command: Command) => requestOf(story, command, "k");
    const stored = await first.handle(request(addSubtask("a")));
    // ...and the second, whose cached story does not hold it, learns of it from the conflict.
    const refused = await second.handle(request(addSubtask("b"))).catch((e: unknown) => e);
    expect(isCommandIdReusedError(refused)).toBe(true);
    expect(await second.handle(request(addSubtask("a")))).toEqual({
      ...stored,
      deduplicated: true,
    });
  });

  it("rejects a command that is invalid on the events it missed", async () => {
    const story = storyId(uniqueName("story"));
    const first = createCommandHandler(recordingStore().store);
    const second = createCommandHandler(recordingStore().store);
    await run(first, story, { type: "CreateContext", title: "Shared", description: "" });
    await run(first, story, addSubtask("t1"));
    // The second handler adds the subtask the first one has not seen yet.
    await run(second, story, addSubtask("t2"));

    await expect(run(first, story, addSubtask("t2"))).rejects.toThrow(/t2/);
  });
});

describe("a command's fingerprint", () => {
  const request = (story: StoryId, commandId: string, command: Command) =>
    requestOf(story, command, commandId);
  const blocked: Command = { type: "UpdateSubtask", subtaskId: "a", status: SubtaskStatus.BLOCKED };

  it("is left out of a version 2 envelope when the events give it back, and still guards the id after a cold load", async () => {
    const story = storyId(uniqueName("story"));
    const store = createEventStore(nc, { names: settings });
    const writer = createCommandHandler(store);
    // Given an AddSubtask (its event gives the request back) and an UpdateSubtask that named only
    // the status (its event also carries the assignee), each under a command id of its own
    await run(writer, story, { type: "CreateContext", title: "Fingerprints", description: "" });
    const added = await writer.handle(request(story, "k-add", addSubtask("a")));
    await writer.handle(request(story, "k-update", blocked));

    // Then the first stores no fingerprint, the second its 9 bytes
    const events = await store.read(story);
    const byCommand = (id: string) => events.find((e) => e.envelope.commandId === id)?.envelope;
    expect(byCommand("k-add")?.envelopeVersion).toBe(2);
    expect(byCommand("k-add")?.commandFingerprint).toHaveLength(0);
    expect(byCommand("k-add")?.commandName).toBe("AddSubtask");
    expect(byCommand("k-update")?.commandFingerprint).toHaveLength(9);

    // When a handler that has not seen the story gets the ids again: another request is refused,
    // the same one answered as a retry
    const cold = createCommandHandler(createEventStore(nc, { names: settings }));
    const other = await cold
      .handle(
        request(story, "k-add", {
          type: "AddSubtask",
          subtaskId: "a",
          title: "Another title",
          dependsOn: [],
        }),
      )
      .catch((e: unknown) => e);
    expect(isCommandIdReusedError(other)).toBe(true);
    expect(await cold.handle(request(story, "k-add", addSubtask("a")))).toEqual({
      ...added,
      deduplicated: true,
    });
    const otherUpdate = await createCommandHandler(createEventStore(nc, { names: settings }))
      .handle(request(story, "k-update", { ...blocked, assignee: "" }))
      .catch((e: unknown) => e);
    expect(isCommandIdReusedError(otherUpdate)).toBe(true);
  });

  it("is kept in a version 1 envelope, which a reader never derives", async () => {
    const story = storyId(uniqueName("story"));
    const store = createEventStore(nc, { names: settings, envelopeVersion: 1 });
    const writer = createCommandHandler(store);
    await run(writer, story, { type: "CreateContext", title: "Version 1", description: "" });
    await writer.handle(request(story, "k-add", addSubtask("a")));

    const events = await store.read(story);
    const stored = events.find((e) => e.envelope.commandId === "k-add")?.envelope;
    expect(stored?.envelopeVersion).toBe(0);
    expect(stored?.commandFingerprint).toHaveLength(9);
  });
});

describe("commands of one story at once in one process", () => {
  it("are decided one after another: none races another, none is refused", async () => {
    // Given a handler that gives up at the first lost race
    const story = storyId(uniqueName("story"));
    const handler = createCommandHandler(recordingStore().store, { maxAttempts: 1 });
    await run(handler, story, { type: "CreateContext", title: "Burst", description: "" });

    // When 40 commands of the story arrive together
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => run(handler, story, addSubtask(`t${i}`))),
    );

    // Then each appended after the one before it, in arrival order
    expect(results.map((r) => r.version)).toEqual(Array.from({ length: 40 }, (_, i) => i + 2));
  });

  it("still meet other processes' writes through the expectation", async () => {
    const { story, first, second } = await replicasOneBehind("Two");
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        run(i % 2 === 0 ? first : second, story, addSubtask(`u${i}`)),
      ),
    );
    expect(new Set(results.map((r) => r.version)).size).toBe(20);
    expect(Math.max(...results.map((r) => r.version))).toBe(22);
  });
});
