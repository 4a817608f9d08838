import type { Command, StoryId } from "@ctx/domain";
import { storyId } from "@ctx/domain";
import {
  type CommandSnapshotNames,
  commandSnapshotNames,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  eventSubject,
  isEventReadError,
  provisionCommandSnapshotStream,
  provisionEventStream,
  type ReadOptions,
} from "@ctx/event-store";
import { testStreamSettings } from "@ctx/event-store/testing";
import { connectTestNats, uniqueName } from "@ctx/test-support";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isCommandIdReusedError } from "../errors.ts";
import {
  type ColdLoad,
  type CommandHandler,
  type CommandResult,
  createCommandHandler,
} from "../handling/command-handler.ts";
import { decodeState, encodeState } from "./command-snapshot-codec.ts";
import { createCommandSnapshotStore } from "./command-snapshot-store.ts";
import { type CommandSnapshotter, createCommandSnapshotter } from "./command-snapshotter.ts";

// Command processes as the service runs them (a handler with its own cache, its snapshot writer),
// on one real event stream and command snapshot stream: a process that has not seen a story loads
// it from its newest snapshot and the events after it, and decides as if it had read them all.

let nc: NatsConnection;
let settings: EventStreamSettings;
let names: CommandSnapshotNames;

beforeAll(async () => {
  nc = await connectTestNats();
  settings = testStreamSettings(uniqueName("COLD"));
  names = commandSnapshotNames(settings);
  const jsm = await jetstreamManager(nc);
  await provisionEventStream(jsm, settings);
  await provisionCommandSnapshotStream(jsm, names);
});

afterAll(async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(settings.stream);
  await jsm.streams.delete(names.stream);
  await nc.close();
});

interface Process {
  readonly handler: CommandHandler;
  readonly snapshotter: CommandSnapshotter;
  /** Every load of a story the process did not hold. */
  readonly loads: ColdLoad[];
  /** The options of every story read the process made. */
  readonly reads: ReadOptions[];
}

/** A command process: its own event store, cache, snapshot store and writer; `snapshots: false` reads whole stories. */
function startProcess(options: { snapshots?: boolean; every?: number } = {}): Process {
  const store: EventStore = createEventStore(nc, { names: settings });
  const reads: ReadOptions[] = [];
  const read = store.read.bind(store);
  store.read = (id: StoryId, o: ReadOptions = {}) => {
    reads.push(o);
    return read(id, o);
  };
  const snapshots = createCommandSnapshotStore(nc, names);
  const snapshotter = createCommandSnapshotter(snapshots, {
    every: options.every ?? 10,
    queue: 100,
  });
  const loads: ColdLoad[] = [];
  const handler = createCommandHandler(store, {
    ...(options.snapshots === false ? {} : { snapshots }),
    snapshotter,
    onColdLoad: (load) => loads.push(load),
  });
  return { handler, snapshotter, loads, reads };
}

const addSubtask = (id: string): Command => ({
  type: "AddSubtask",
  subtaskId: id,
  title: `Subtask ${id}`,
  dependsOn: [],
});

function run(handler: CommandHandler, story: StoryId, command: Command, commandId?: string) {
  return handler.handle({
    storyId: story,
    name: command.type,
    commands: [command],
    correlationId: "",
    causationId: "",
    ...(commandId ? { commandId } : {}),
  });
}

/** A story of a creation and `subtasks` subtasks, each its own command `c{i}`; their results. */
async function writeStory(process: Process, story: StoryId, subtasks: number) {
  const results = new Map<string, CommandResult>();
  results.set(
    "c0",
    await run(
      process.handler,
      story,
      { type: "CreateContext", title: "Cold", description: "" },
      "c0",
    ),
  );
  for (let i = 1; i <= subtasks; i++) {
    results.set(`c${i}`, await run(process.handler, story, addSubtask(`s${i}`), `c${i}`));
  }
  await process.snapshotter.idle();
  return results;
}

describe("a command process that has not seen a story", () => {
  it("loads it from the newest snapshot and the events after it, and decides as a full load does", async () => {
    // Given a story of 95 events written by one process, which snapshotted it every 10 events
    const story = storyId(uniqueName("cold"));
    const writer = startProcess();
    const written = await writeStory(writer, story, 94);

    // When a fresh process (snapshots) and a fresh process reading whole stories take a command
    const fresh = startProcess();
    const full = startProcess({ snapshots: false });
    const fromSnapshot = await run(fresh.handler, story, addSubtask("next"), "next");

    // Then the fresh process read only the events after the snapshot, from after its last event
    expect(fresh.loads).toHaveLength(1);
    const [load] = fresh.loads;
    expect(load?.from).toBe("snapshot");
    expect(load?.events).toBeLessThan(10);
    const tailRead = fresh.reads.find((r) => r.afterSequence !== undefined);
    expect(tailRead?.fromVersion).toBeGreaterThan(85);
    expect(fromSnapshot.version).toBe(96);
    // and the full reader, loading the whole story, recognizes that command and every earlier one
    // exactly as the snapshot reader does: same versions, same event ids
    const retried = await run(full.handler, story, addSubtask("next"), "next");
    expect(retried).toEqual({ ...fromSnapshot, deduplicated: true });
    expect(full.loads[0]).toMatchObject({ from: "events", events: 96 });
    for (const [commandId, first] of written) {
      const command = commandId === "c0" ? undefined : addSubtask(`s${commandId.slice(1)}`);
      const again = command
        ? await run(fresh.handler, story, command, commandId)
        : await run(
            fresh.handler,
            story,
            { type: "CreateContext", title: "Cold", description: "" },
            "c0",
          );
      expect(again).toEqual({ ...first, deduplicated: true });
    }
    // and a rule decided on the snapshot's state refuses as on the events: s7 exists already
    const refusals = await Promise.all(
      [fresh, full].map((p) =>
        run(p.handler, story, addSubtask("s7")).then(
          () => "accepted",
          (e: unknown) => (e as Error).name,
        ),
      ),
    );
    expect(refusals[0]).not.toBe("accepted");
    expect(refusals[0]).toBe(refusals[1]);
    // and an earlier command id reused for another request is refused
    await expect(run(fresh.handler, story, addSubtask("other"), "c3")).rejects.toSatisfy(
      isCommandIdReusedError,
    );
  });

  it("reads the whole story when the snapshot does not decode", async () => {
    // Given a story with a snapshot, whose state message is then overwritten with garbage
    const story = storyId(uniqueName("garbage"));
    await writeStory(startProcess(), story, 20);
    await jetstream(nc).publish(`${names.subjectPrefix}.${story}.state`, new Uint8Array([1, 2, 3]));

    // When a fresh process takes a command on it
    const fresh = startProcess();
    const result = await run(fresh.handler, story, addSubtask("after"));

    // Then it read the story from its first event, and the command was decided on all of it
    expect(fresh.loads[0]).toMatchObject({ from: "events", events: 21, fallback: "unusable" });
    expect(result.version).toBe(22);
  });

  it("reads the whole story when the snapshot is not anchored to the stream's history", async () => {
    // Given a story whose snapshot is forged: the same state, anchored to another hash
    const story = storyId(uniqueName("forged"));
    await writeStory(startProcess(), story, 20);
    const js = jetstream(nc);
    const jsm = await js.jetstreamManager();
    const subject = `${names.subjectPrefix}.${story}.state`;
    const stored = await jsm.direct.getMessage(names.stream, { last_by_subj: subject });
    const state = stored && decodeState(story, stored.data);
    if (!state) throw new Error("no snapshot was written");
    const forged = { ...state, hash: new Uint8Array(32).fill(7) };
    await js.publish(subject, encodeState(forged));

    // When a fresh process takes a command on it
    const fresh = startProcess();
    const result = await run(fresh.handler, story, addSubtask("after"));

    // Then the snapshot was not used: the story was read from its first event
    expect(fresh.loads[0]).toMatchObject({ from: "events", events: 21, fallback: "unlinked" });
    expect(result.version).toBe(22);
  });

  it("fails on a story with a message no reader can read after its snapshot, as a full load does", async () => {
    // Given a story with a snapshot, and then a stored message that is not an event
    const story = storyId(uniqueName("corrupt"));
    await writeStory(startProcess(), story, 20);
    await jetstream(nc).publish(
      eventSubject(settings, story, "SubtaskAdded"),
      new TextEncoder().encode("not an event"),
    );

    // When a fresh process with snapshots and one without take a command on it
    const outcomes = await Promise.all(
      [startProcess(), startProcess({ snapshots: false })].map((p) =>
        run(p.handler, story, addSubtask("after")).then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    );

    // Then both refuse it with the same read error (DATA_LOSS at the RPC edge)
    expect(outcomes.every(isEventReadError)).toBe(true);
    expect((outcomes[0] as Error).name).toBe((outcomes[1] as Error).name);
  });
});

describe("two command processes writing the same stories", () => {
  it("store every command once, in gapless versions, and a cold third one recognizes them all", async () => {
    // Given three stories, and two processes with caches and snapshot writers of their own
    const stories = [1, 2, 3].map((i) => storyId(uniqueName(`shared${i}`)));
    const [a, b] = [startProcess({ every: 5 }), startProcess({ every: 5 })] as const;
    for (const story of stories) {
      await run(
        a.handler,
        story,
        { type: "CreateContext", title: "Shared", description: "" },
        "c0",
      );
    }

    // When both write 30 commands to each story at once, racing each other
    const results = new Map<string, CommandResult>();
    await Promise.all(
      [a, b].map((p, who) =>
        (async () => {
          for (let i = 0; i < 15; i++) {
            for (const story of stories) {
              const commandId = `p${who}-${i}`;
              results.set(
                `${story}/${commandId}`,
                await run(p.handler, story, addSubtask(commandId), commandId),
              );
            }
          }
        })(),
      ),
    );
    await Promise.all([a.snapshotter.idle(), b.snapshotter.idle()]);

    // Then each story holds its 31 events once each, in versions 1..31
    const store = createEventStore(nc, { names: settings });
    for (const story of stories) {
      const events = await store.read(story);
      expect(events.map((e) => e.version)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
      const ids = events.map((e) => e.envelope.commandId);
      expect(new Set(ids).size).toBe(31);
    }
    // and a third process that has seen none of them loads each from a snapshot and answers every
    // retry with the first result
    const third = startProcess();
    for (const [key, first] of results) {
      const [story, commandId] = key.split("/") as [StoryId, string];
      const again = await run(third.handler, story, addSubtask(commandId), commandId);
      expect(again).toEqual({ ...first, deduplicated: true });
    }
    expect(third.loads.map((l) => l.from)).toEqual(["snapshot", "snapshot", "snapshot"]);
  });
});
