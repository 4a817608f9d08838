import { create, toBinary } from "@bufbuild/protobuf";
import { type StoryId, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { ContextCreatedSchema, ContextEventSchema, SubtaskAddedSchema } from "@ctx/proto";
import { connectTestNats, uniqueName } from "@ctx/test-support";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SetAsideRefusedError } from "./errors.ts";
import {
  CorruptEventError,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  eventSubject,
  provisionEventStream,
  type RecordedEvent,
  type StoredEvent,
  UnreadableEventError,
  verifyChain,
} from "./index.ts";
import { sha256 } from "./sha256.ts";
import {
  appendAsWritten,
  envelopeAsWritten,
  testStreamSettings,
  type WrittenEvent,
} from "./testing/index.ts";

// Every read of the event store checks what it reads against where it was stored: the subject's
// story and event type against the envelope's, and the versions for gaps and repeats. A message
// that does not belong where it is stored is an error that names its stream sequence, never an
// event of the story (issue #20, defects 5 and 6).

let nc: NatsConnection;
let settings: EventStreamSettings;
let store: EventStore;

beforeAll(async () => {
  nc = await connectTestNats();
  settings = testStreamSettings(uniqueName("CHECKS"));
  await provisionEventStream(await jetstreamManager(nc), settings);
  store = createEventStore(nc, { names: settings });
});

afterAll(async () => {
  await (await jetstreamManager(nc)).streams.delete(settings.stream);
  await nc.close();
});

const newStory = () => storyId(uniqueName("story"));

/** A story with a created event and `subtasks` more, written by the store. */
async function story(subtasks = 1): Promise<StoryId> {
  const id = newStory();
  await store.append(
    id,
    [{ data: eventData.contextCreated({ title: id }) }],
    ExpectedVersion.NoStory,
  );
  for (let i = 1; i <= subtasks; i++) {
    await store.append(
      id,
      [{ data: eventData.subtaskAdded({ subtaskId: `s${i}`, title: `s${i}` }) }],
      streamVersion(i),
    );
  }
  return id;
}

/** Publishes bytes straight to a story's subject, past the store: what a forger or a bug could do. */
async function publishRaw(to: StoryId, eventType: string, bytes: Uint8Array): Promise<number> {
  const ack = await jetstream(nc).publish(eventSubject(settings, to, eventType), bytes);
  return ack.seq;
}

/** An envelope of `of`'s story at `version`, chained onto its head (or not), as bytes. */
async function envelopeFor(of: string, version: number): Promise<Uint8Array> {
  const head = await store.head(of as StoryId).catch(() => undefined);
  const envelope = envelopeAsWritten(of, version, head?.hash ?? new Uint8Array(0), {
    eventType: "SubtaskAdded",
    schemaVersion: 1,
    payloadSchema: SubtaskAddedSchema,
    payload: create(SubtaskAddedSchema, { subtaskId: "forged", title: "forged" }),
    occurredAt: new Date(),
  });
  return toBinary(ContextEventSchema, envelope);
}

describe("a forged envelope", () => {
  it("given a message on story A's subject whose envelope says story B, then reads of A refuse it, naming its sequence", async () => {
    const a = await story(1);
    const b = await story(1);
    const sequence = await publishRaw(a, "SubtaskAdded", await envelopeFor(b, 3));
    for (const read of [
      () => store.read(a),
      () => store.readStored(a),
      () => store.read(a, { bySubject: false }),
      () => store.read(a, { fromVersion: 2 }),
    ]) {
      await expect(read()).rejects.toMatchObject({
        sequence,
        message: expect.stringMatching(new RegExp(`${sequence}.*story`)),
      });
    }
    // B's own history is untouched: the forged message is not on B's subjects.
    expect((await store.read(b)).map((e) => e.version)).toEqual([1, 2]);
  });

  it("given a message whose envelope names another event type than its subject, then it is refused", async () => {
    const a = await story(1);
    const bytes = await envelopeFor(a, 3);
    const sequence = await publishRaw(a, "DecisionAdded", bytes);
    await expect(store.read(a)).rejects.toMatchObject({
      sequence,
      message: expect.stringMatching(/event type/),
    });
  });

  it("given a second message at a version the story already has, then reads refuse the repeat", async () => {
    const a = await story(2);
    const sequence = await publishRaw(a, "SubtaskAdded", await envelopeFor(a, 2));
    await expect(store.read(a)).rejects.toMatchObject({
      sequence,
      message: expect.stringMatching(/version 2/),
    });
  });

  it("given a message that skips versions, then reads refuse the gap", async () => {
    const a = await story(1);
    const sequence = await publishRaw(a, "SubtaskAdded", await envelopeFor(a, 5));
    await expect(store.read(a)).rejects.toMatchObject({
      sequence,
      message: expect.stringMatching(/version 5/),
    });
  });

  it("given a message a direct get finds out of place, then the stream's leader reads the story before the read fails", async () => {
    const a = await story(1);
    const sequence = await publishRaw(a, "SubtaskAdded", await envelopeFor(a, 5));
    // Every request to the leader's message API for the stream, as the server receives it.
    const asked: number[] = [];
    const sub = nc.subscribe(`$JS.API.STREAM.MSG.GET.${settings.stream}`, {
      callback: (_, msg) => {
        asked.push((msg.json() as { seq: number }).seq);
      },
    });
    await nc.flush();
    try {
      await expect(store.read(a)).rejects.toMatchObject({ sequence });
      // A replica of a replicated stream may be behind: only the leader's read is the last word.
      expect(asked.length).toBeGreaterThan(0);
    } finally {
      sub.unsubscribe();
    }
  });
});

describe("an unreadable stored message", () => {
  it("given an envelope whose story id is no valid story id, then reads fail naming its sequence (not a RangeError)", async () => {
    const a = await story(1);
    const envelope = envelopeAsWritten("-not a story-", 2, new Uint8Array(0), {
      eventType: "ContextCreated",
      schemaVersion: 1,
      payloadSchema: ContextCreatedSchema,
      payload: create(ContextCreatedSchema, { title: "t" }),
      occurredAt: new Date(),
    });
    const sequence = await publishRaw(a, "ContextCreated", toBinary(ContextEventSchema, envelope));
    const error = await store.read(a).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).not.toBeInstanceOf(RangeError);
    expect(error).toMatchObject({ sequence });
  });

  it("given garbage bytes, then reads fail naming the sequence", async () => {
    const a = await story(1);
    const sequence = await publishRaw(a, "SubtaskAdded", new Uint8Array([1, 2, 3, 255]));
    await expect(store.read(a)).rejects.toMatchObject({ sequence });
    await expect(store.head(a)).rejects.toMatchObject({ sequence });
  });
});

/** An event as a newer release wrote it: a schema version no upcaster of this release reads. */
const fromNewerRelease: WrittenEvent = {
  eventType: "SubtaskAdded",
  schemaVersion: 99,
  payloadSchema: SubtaskAddedSchema,
  payload: create(SubtaskAddedSchema, { subtaskId: "v99", title: "from the future" }),
  occurredAt: new Date(),
};

/** A current SubtaskAdded as written straight to the stream, chained onto the story's head. */
const laterEvent = (id: string): WrittenEvent => ({
  eventType: "SubtaskAdded",
  schemaVersion: 1,
  payloadSchema: SubtaskAddedSchema,
  payload: create(SubtaskAddedSchema, { subtaskId: id, title: id }),
  occurredAt: new Date(),
});

const repair = (sequences: number[], reason = "beyond repair") => ({
  sequences,
  reason,
  operator: "test",
});

describe("setting aside what no reader can read", () => {
  it("given garbage at the story's head, then once set aside the story reads, appends and verifies again, and the repair is in its history", async () => {
    const a = await story(2);
    const garbage = new Uint8Array([1, 2, 3, 255]);
    const sequence = await publishRaw(a, "SubtaskAdded", garbage);
    await expect(store.read(a)).rejects.toBeInstanceOf(CorruptEventError);
    // Another store (another process) sees it as every reader does.
    const registry = new Registry();
    const other = createEventStore(nc, { names: settings, registry });
    await expect(
      other.append(a, [{ data: eventData.subtaskAdded({ subtaskId: "x" }) }], streamVersion(3)),
    ).rejects.toMatchObject({ sequence });

    const { event, added } = await store.setAside(a, repair([sequence], "garbage from a test"));
    expect(added).toEqual([
      { sequence, version: 0, problem: expect.stringMatching(/undecodable/) },
    ]);
    expect(event).toMatchObject({ version: 4, eventType: "EventsSetAside" });
    expect(event.data).toMatchObject({
      case: "eventsSetAside",
      value: {
        reason: "garbage from a test",
        operator: "test",
        setAside: [{ sequence: BigInt(sequence), version: 0, sha256: sha256(garbage) }],
      },
    });

    const events = await other.read(a);
    expect(events.map((e) => [e.version, e.eventType])).toEqual([
      [1, "ContextCreated"],
      [2, "SubtaskAdded"],
      [3, "SubtaskAdded"],
      [4, "EventsSetAside"],
    ]);
    expect(verifyChain(events)).toEqual({ intact: true, events: 4 });
    expect(await other.read(a, { bySubject: false })).toEqual(events);
    expect((await other.head(a))?.version).toBe(4);
    const appended = await other.append(
      a,
      [{ data: eventData.subtaskAdded({ subtaskId: "after" }) }],
      streamVersion(4),
    );
    expect(appended.version).toBe(5);
    expect(verifyChain(await store.read(a))).toEqual({ intact: true, events: 5 });
    // The read said so: counted.
    const counted = await registry.getSingleMetricAsString("ctx_event_store_set_aside_read_total");
    expect(counted).toMatch(/ctx_event_store_set_aside_read_total [1-9]/);
  });

  it("given an event of a newer schema in the middle, then it keeps its version, the chain goes on through it, and later events read", async () => {
    const a = await story(1);
    await appendAsWritten(nc, store, a, [fromNewerRelease, laterEvent("later")]);
    const stored = await store.examine(a);
    const bad = stored.find((m) => m.status === "unreadable");
    expect(bad).toMatchObject({ version: 3, eventType: "SubtaskAdded" });
    await expect(store.read(a)).rejects.toBeInstanceOf(UnreadableEventError);

    const { added } = await store.setAside(a, repair([bad?.sequence as number]));
    expect(added).toEqual([
      { sequence: bad?.sequence, version: 3, problem: expect.stringMatching(/SubtaskAdded v99/) },
    ]);
    const events = await store.read(a);
    expect(events.map((e) => [e.version, e.data.case])).toEqual([
      [1, "contextCreated"],
      [2, "subtaskAdded"],
      [3, undefined],
      [4, "subtaskAdded"],
      [5, "eventsSetAside"],
    ]);
    expect(events[2]?.setAside?.sequence).toBe(BigInt(bad?.sequence as number));
    expect(verifyChain(events)).toEqual({ intact: true, events: 5 });
    // Without the repair that vouches for it, a set-aside link breaks the chain.
    expect(verifyChain(events.slice(0, 4))).toMatchObject({ intact: false, version: 3 });
    // Bounded reads and reads after a known position agree.
    expect((await store.read(a, { toVersion: 3 })).map((e) => e.version)).toEqual([1, 2, 3]);
    const second = events[1] as RecordedEvent;
    const after = await store.read(a, { afterSequence: second.sequence, fromVersion: 3 });
    expect(after.map((e) => e.version)).toEqual([3, 4, 5]);
    expect(await store.readAt(bad?.sequence as number)).toMatchObject({ version: 3 });
  });

  it("given another story's envelope on A's subject, then once set aside A reads without it and B never saw it", async () => {
    const a = await story(1);
    const b = await story(1);
    const sequence = await publishRaw(a, "SubtaskAdded", await envelopeFor(b, 3));
    const { added } = await store.setAside(a, repair([sequence]));
    expect(added[0]).toMatchObject({ sequence, version: 0 });
    expect((await store.read(a)).map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
      "EventsSetAside",
    ]);
    expect((await store.read(b)).map((e) => e.version)).toEqual([1, 2]);
    expect(await store.readAt(sequence)).toBeUndefined();
  });

  it("refuses to set aside a readable event, one set aside already, or only some of the unreadable ones", async () => {
    const a = await story(1);
    const [first] = await store.read(a);
    await expect(store.setAside(a, repair([first?.sequence as number]))).rejects.toThrow(
      /version 1 .* readable/,
    );
    const one = await publishRaw(a, "SubtaskAdded", new Uint8Array([9, 9]));
    const two = await publishRaw(a, "SubtaskAdded", new Uint8Array([8, 8]));
    await expect(store.setAside(a, repair([one]))).rejects.toThrow(
      new RegExp(`more messages no reader can read.*${two}`),
    );
    await expect(store.setAside(a, repair([one, two], " "))).rejects.toBeInstanceOf(
      SetAsideRefusedError,
    );
    await store.setAside(a, repair([one, two]));
    await expect(store.setAside(a, repair([one]))).rejects.toThrow(/set aside already/);
    // A second repair lists the first one's messages too.
    const three = await publishRaw(a, "SubtaskAdded", new Uint8Array([7]));
    const { event } = await store.setAside(a, repair([three]));
    expect(
      event.data.case === "eventsSetAside" && event.data.value.setAside.map((e) => e.sequence),
    ).toEqual([one, two, three].map(BigInt));
    expect((await store.read(a)).map((e) => e.version)).toEqual([1, 2, 3, 4]);
  });

  it("given a replay of the whole stream, then an unreadable message does not end it, and a set-aside one is read as the story's readers read it", async () => {
    const a = await story(1);
    const from = (await store.read(a))[0]?.sequence as number;
    const sequence = await publishRaw(a, "SubtaskAdded", new Uint8Array([1, 2, 3]));
    const replay = async () => {
      const seen: StoredEvent[] = [];
      for await (const e of store.readAllStored({ fromSequence: from })) {
        if (e.storyId === a) seen.push(e);
      }
      return seen;
    };
    const before = await replay();
    expect(before.map((e) => e.sequence)).toContain(sequence);
    const unreadable = before.find((e) => e.sequence === sequence);
    expect(unreadable?.unreadable?.error).toBeInstanceOf(CorruptEventError);
    expect(() => store.upcaster.upcast(unreadable as StoredEvent)).toThrow(CorruptEventError);
    await store.setAside(a, repair([sequence]));
    const after = await replay();
    expect(after.map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
      "EventsSetAside",
    ]);
  });
});
