import { create } from "@bufbuild/protobuf";
import {
  type ContextEventData,
  type StoryId,
  StoryNotFoundError,
  storyId,
  streamVersion,
} from "@ctx/domain";
import { DecisionAddedSchema, SubtaskAddedSchema } from "@ctx/proto";
import { startInMemoryTracing } from "@ctx/telemetry/testing";
import { connectTestNats, uniqueName } from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, errors as natsErrors } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BatchMessage, batchExtent, collectDirectBatch } from "./direct-batch.ts";
import {
  ConcurrencyError,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  eventSubject,
  isConcurrencyError,
  provisionEventStream,
  type ReadOptions,
  type RecordedEvent,
  type StoredEvent,
  storySubjects,
  verifyChain,
} from "./index.ts";
import { testStreamSettings, withPlainBytes } from "./testing/index.ts";

const created = (title = "A story"): ContextEventData => ({
  case: "contextCreated",
  value: { $typeName: "context.v1.ContextCreated", title, description: "" },
});
const subtask = (id: string): ContextEventData => ({
  case: "subtaskAdded",
  value: create(SubtaskAddedSchema, { subtaskId: id, title: `Subtask ${id}` }),
});
const decision = (id: string): ContextEventData => ({
  case: "decisionAdded",
  value: create(DecisionAddedSchema, { decisionId: id, title: `Decision ${id}`, madeBy: "ana" }),
});

let nc: NatsConnection;
let settings: EventStreamSettings;
let store: EventStore;

beforeAll(async () => {
  nc = await connectTestNats();
  const name = uniqueName("EVENTS");
  settings = testStreamSettings(name);
  await provisionEventStream(await jetstreamManager(nc), settings);
  store = createEventStore(nc, { names: settings });
});

afterAll(async () => {
  await (await jetstreamManager(nc)).streams.delete(settings.stream);
  await nc.close();
});

const newStory = () => storyId(uniqueName("story"));

describe("provisionEventStream", () => {
  it("is idempotent and applies changed settings", async () => {
    const jsm = await jetstreamManager(nc);
    const again = await provisionEventStream(jsm, settings);
    expect(again.config.subjects).toEqual([`${settings.subjectPrefix}.*.*`]);
    await expect(provisionEventStream(jsm, { ...settings, partitions: 8 })).rejects.toThrow(
      /partition count of a live stream cannot change/,
    );
    expect(again.config.compression).toBe("s2");
    expect(again.config.allow_atomic).toBe(true);
    expect(again.config.allow_direct).toBe(true);
    const changed = await provisionEventStream(jsm, { ...settings, duplicateWindowMs: 30_000 });
    expect(changed.config.duplicate_window).toBe(30_000 * 1_000_000);
    await provisionEventStream(jsm, settings);
  });
});

describe("append and read", () => {
  it("appends one event and reads it back with its envelope", async () => {
    const story = newStory();
    const result = await store.append(story, [{ data: created() }], ExpectedVersion.NoStory, {
      commandId: "cmd-1",
      correlationId: "corr-1",
      causationId: "cause-1",
    });
    expect(result.version).toBe(1);
    const [event] = await store.read(story);
    expect(event?.version).toBe(1);
    expect(event?.eventType).toBe("ContextCreated");
    expect(event?.envelope.commandId).toBe("cmd-1");
    expect(event?.envelope.correlationId).toBe("corr-1");
    expect(event?.envelope.causationId).toBe("cause-1");
    expect(event?.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(verifyChain((await store.read(story)).map((e) => e.envelope))).toEqual({
      intact: true,
      events: 1,
    });
  });

  it("appends several events atomically and chains their hashes", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    const result = await store.append(
      story,
      [{ data: subtask("s1") }, { data: subtask("s2") }, { data: decision("d1") }],
      streamVersion(1),
    );
    expect(result.version).toBe(4);
    expect(result.events.map((e) => e.version)).toEqual([2, 3, 4]);
    const events = await store.read(story);
    // What append returns is built from the envelopes it wrote: it must be what readers decode
    // (byte for byte: a reader's hashes are Buffer views of the message, the writer's own arrays).
    expect(result.events.map(withPlainBytes)).toEqual(events.slice(1).map(withPlainBytes));
    expect(events.map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
      "SubtaskAdded",
      "DecisionAdded",
    ]);
    expect(events.map((e) => e.envelope.commandEventIndex)).toEqual([0, 0, 1, 2]);
    expect(verifyChain(events.map((e) => e.envelope))).toEqual({ intact: true, events: 4 });
  });

  it("writes the command's name and fingerprint into its first event only, inside the chain", async () => {
    const story = newStory();
    const fingerprint = new Uint8Array(33).fill(5);
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    const result = await store.append(
      story,
      [{ data: subtask("s1") }, { data: subtask("s2") }],
      streamVersion(1),
      { commandId: "cmd-1", commandName: "ApplyChanges", commandFingerprint: fingerprint },
    );

    const events = await store.read(story);
    expect(result.events.map(withPlainBytes)).toEqual(events.slice(1).map(withPlainBytes));
    expect(events.map((e) => e.envelope.commandName)).toEqual(["", "ApplyChanges", ""]);
    expect(events.map((e) => Buffer.from(e.envelope.commandFingerprint).toString("hex"))).toEqual([
      "",
      Buffer.from(fingerprint).toString("hex"),
      "",
    ]);
    // Covered by the hash: changing the fingerprint breaks the chain.
    expect(verifyChain(events.map((e) => e.envelope))).toEqual({ intact: true, events: 3 });
    const altered = events.map((e) => e.envelope);
    altered[1] = { ...(altered[1] as (typeof altered)[1]), commandFingerprint: new Uint8Array(33) };
    expect(verifyChain(altered)).toMatchObject({ intact: false, version: 2 });
  });

  it("reads a range of versions and up to a time", async () => {
    const story = newStory();
    const t0 = new Date("2026-01-01T00:00:00Z");
    const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);
    await store.append(
      story,
      [
        { data: created(), occurredAt: at(0) },
        { data: subtask("a"), occurredAt: at(1) },
        { data: subtask("b"), occurredAt: at(2) },
        { data: subtask("c"), occurredAt: at(3) },
      ],
      ExpectedVersion.NoStory,
    );
    const range = await store.read(story, { fromVersion: 2, toVersion: 3 });
    expect(range.map((e) => e.version)).toEqual([2, 3]);
    const until = await store.read(story, { untilTime: at(1.5) });
    expect(until.map((e) => e.version)).toEqual([1, 2]);
    expect(await store.read(newStory())).toEqual([]);
    await expect(store.read(newStory(), { mustExist: true })).rejects.toThrow(/does not exist/);
  });

  it("reads from the stream's leader what direct gets read, range and bounds alike", async () => {
    const story = newStory();
    await store.append(
      story,
      [
        { data: created() },
        { data: subtask("a") },
        { data: decision("d") },
        { data: subtask("b") },
      ],
      ExpectedVersion.NoStory,
    );
    await store.append(newStory(), [{ data: created() }], ExpectedVersion.NoStory);
    const versions = (events: readonly RecordedEvent[]) => events.map((e) => e.version);
    for (const options of [{}, { fromVersion: 2, toVersion: 3 }, { fromVersion: 4 }] as const) {
      const direct = await store.read(story, options);
      const leader = await store.read(story, { ...options, fromLeader: true });
      expect(leader.map(withPlainBytes)).toEqual(direct.map(withPlainBytes));
    }
    expect(versions(await store.read(story, { fromLeader: true, toVersion: 2 }))).toEqual([1, 2]);
    expect(await store.read(newStory(), { fromLeader: true })).toEqual([]);
  });

  it("reads stories longer than one direct-get batch", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    const events = Array.from({ length: 1200 }, (_, i) => ({ data: subtask(`s${i}`) }));
    for (let i = 0; i < events.length; i += 100) {
      await store.append(story, events.slice(i, i + 100), streamVersion(1 + i));
    }
    const read = await store.read(story);
    expect(read.length).toBe(1201);
    expect(read.map((e) => e.version)).toEqual(Array.from({ length: 1201 }, (_, i) => i + 1));
    expect(verifyChain(read.map((e) => e.envelope)).intact).toBe(true);
  });

  it("reads a whole story subject by subject: the same events as through the story's filter", async () => {
    // Three event types, interleaved with each other and with another story's events.
    const story = newStory();
    const other = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    await store.append(other, [{ data: created() }], ExpectedVersion.NoStory);
    for (let i = 0; i < 6; i++) {
      const data = i % 2 === 0 ? subtask(`s${i}`) : decision(`d${i}`);
      await store.append(story, [{ data }], ExpectedVersion.Any);
      await store.append(other, [{ data: subtask(`o${i}`) }], ExpectedVersion.Any);
    }

    const whole = await store.readStored(story);
    const filtered = await store.readStored(story, { bySubject: false });

    expect(whole.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(whole.map((e) => e.sequence)).toEqual(filtered.map((e) => e.sequence));
    expect(whole.map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
      "DecisionAdded",
      "SubtaskAdded",
      "DecisionAdded",
      "SubtaskAdded",
      "DecisionAdded",
    ]);
    expect((await store.readStored(story, { fromVersion: 6 })).map((e) => e.version)).toEqual([
      6, 7,
    ]);
    // The rest after a known event (a cache catching up) goes subject by subject too.
    const known = whole[2] as StoredEvent;
    const rest = await store.readStored(story, { afterSequence: known.sequence, fromVersion: 4 });
    const restFiltered = await store.readStored(story, {
      afterSequence: known.sequence,
      fromVersion: 4,
      bySubject: false,
    });
    expect(rest.map((e) => e.version)).toEqual([4, 5, 6, 7]);
    expect(rest.map((e) => e.sequence)).toEqual(restFiltered.map((e) => e.sequence));
    const end = (whole[6] as StoredEvent).sequence;
    expect(await store.readStored(story, { afterSequence: end, fromVersion: 8 })).toEqual([]);
    // Bounded reads too: by version, by time, after a known event; as through the filter.
    const until = (whole[2] as StoredEvent).occurredAt;
    for (const bounds of [
      { toVersion: 4 },
      { untilTime: until },
      { fromVersion: 2, toVersion: 5 },
      { afterSequence: known.sequence, fromVersion: 4, toVersion: 5 },
    ]) {
      const bySubject = await store.readStored(story, bounds);
      const viaFilter = await store.readStored(story, { ...bounds, bySubject: false });
      expect(bySubject.map((e) => e.sequence)).toEqual(viaFilter.map((e) => e.sequence));
    }
    const sequences = async (bounds: ReadOptions) =>
      (await store.readStored(story, bounds)).map((e) => e.version);
    expect(await sequences({ toVersion: 4 })).toEqual([1, 2, 3, 4]);
    expect(
      await sequences({ afterSequence: known.sequence, fromVersion: 4, toVersion: 5 }),
    ).toEqual([4, 5]);
    await expect(store.readStored(newStory(), { mustExist: true })).rejects.toBeInstanceOf(
      StoryNotFoundError,
    );
  });

  // batchExtent trusts this numbering over a batch's length: pin it to the server.
  it("gets batches the server numbers: each message's predecessor, and what is left after it", async () => {
    const story = newStory();
    const other = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    await store.append(other, [{ data: created() }], ExpectedVersion.NoStory);
    await store.append(story, [{ data: subtask("a") }, { data: subtask("b") }], streamVersion(1));
    const jsm = await jetstreamManager(nc);
    const get = async (batch: number) => {
      const it = await jsm.direct.getBatch(settings.stream, {
        seq: 1,
        batch,
        next_by_subj: storySubjects(settings, story),
      });
      const out: BatchMessage[] = [];
      for await (const m of it)
        out.push({ seq: m.seq, lastSequence: m.lastSequence, pending: m.pending });
      return out;
    };
    const whole = await get(10);
    expect(whole.map((m) => m.lastSequence)).toEqual([0, ...whole.slice(0, -1).map((m) => m.seq)]);
    expect(whole.map((m) => m.pending)).toEqual([2, 1, 0]);
    expect(batchExtent(whole, 10)).toEqual({ usable: 3, mayGoOn: false });
    const first = await get(2);
    expect(first.map((m) => m.pending)).toEqual([2, 1]);
    expect(batchExtent(first, 2)).toEqual({ usable: 2, mayGoOn: true });
  });

  it("collects batched direct gets, ranges and multi-last alike, and leaves no subscription behind", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    await store.append(story, [{ data: subtask("a") }, { data: subtask("b") }], streamVersion(1));
    const jsm = await jetstreamManager(nc);
    // nats.js has no public count of a connection's subscriptions.
    const subscriptions = () =>
      (
        nc as unknown as { protocol: { subscriptions: { size(): number } } }
      ).protocol.subscriptions.size();
    const before = subscriptions();
    const filter = storySubjects(settings, story);
    for (let i = 0; i < 20; i++) {
      const range = await collectDirectBatch(
        jsm,
        settings.stream,
        { seq: 1, batch: 10, next_by_subj: filter },
        5_000,
      );
      expect(range.map((m) => m.pending)).toEqual([2, 1, 0]);
      const last = await collectDirectBatch(jsm, settings.stream, { multi_last: [filter] }, 5_000);
      // One message per subject: the story's last ContextCreated and its last SubtaskAdded.
      expect(last.map((m) => m.seq)).toEqual([range[0]?.seq, range[2]?.seq]);
      const none = await collectDirectBatch(
        jsm,
        settings.stream,
        { multi_last: [storySubjects(settings, newStory())] },
        5_000,
      );
      expect(none).toEqual([]);
    }
    expect(subscriptions()).toBe(before);
  });

  it("fails a batched direct get that gets no answer at all as a timeout, never as 'no messages'", async () => {
    // A stream nobody serves direct gets for, and a subscriber that takes the request and drops it:
    // the stall cut comes before nats.js's own timeout. Empty would read as "nothing stored".
    const stream = `NOANSWER_${settings.stream}`;
    const blackHole = nc.subscribe(`$JS.API.DIRECT.GET.${stream}`);
    try {
      const jsm = await jetstreamManager(nc, { timeout: 10_000 });
      const started = collectDirectBatch(jsm, stream, { seq: 1, batch: 10 }, 200);
      // The event store takes nats.js's TimeoutError for an outage (unavailable, retried).
      await expect(started).rejects.toBeInstanceOf(natsErrors.TimeoutError);
    } finally {
      blackHole.unsubscribe();
    }
  });

  it("reads a range from a known position, sized to it or to a hint, and still returns every event within the bounds", async () => {
    const story = newStory();
    const t0 = new Date("2026-01-01T00:00:00Z").getTime();
    // Version v occurred at t0 + v minutes.
    const at = (v: number) => new Date(t0 + v * 60_000);
    await store.append(
      story,
      Array.from({ length: 40 }, (_, i) => ({
        data: i === 0 ? created() : subtask(`s${i}`),
        occurredAt: at(i + 1),
      })),
      ExpectedVersion.NoStory,
    );
    const all = await store.read(story);
    const sequenceOf = (v: number) => (all[v - 1]?.sequence ?? 0) as number;
    const versions = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const read = async (options: Parameters<EventStore["read"]>[1]) =>
      (await store.read(story, options)).map((e) => e.version);

    // The position of `fromVersion`: one request of exactly the range.
    expect(
      await read({ afterSequence: sequenceOf(10) - 1, fromVersion: 10, toVersion: 30 }),
    ).toEqual(versions(10, 30));
    // A position before `fromVersion`: the sized request falls short and the read goes on.
    expect(
      await read({ afterSequence: sequenceOf(3) - 1, fromVersion: 10, toVersion: 30 }),
    ).toEqual(versions(10, 30));
    // Hints smaller and larger than the answer change nothing but the requests.
    for (const sizeHint of [1, 3, 1000]) {
      expect(await read({ untilTime: at(35), sizeHint })).toEqual(versions(1, 35));
      expect(await read({ afterSequence: sequenceOf(20) - 1, sizeHint })).toEqual(versions(20, 40));
    }
    expect(await read({ fromVersion: 39, toVersion: 60 })).toEqual([39, 40]);
    expect(await read({ afterSequence: sequenceOf(40), fromVersion: 41, toVersion: 45 })).toEqual(
      [],
    );
  });
});

describe("trace context in the stored messages", () => {
  /** The NATS headers of each stored event of a story, in order. */
  const storedHeaders = async (story: StoryId, versions: number) => {
    const jsm = await jetstreamManager(nc);
    const events = await store.read(story);
    expect(events).toHaveLength(versions);
    return Promise.all(
      events.map(
        async (e) => (await jsm.streams.getMessage(settings.stream, { seq: e.sequence }))?.header,
      ),
    );
  };

  it("stores none while tracing is off", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    await store.append(story, [{ data: subtask("s1") }, { data: subtask("s2") }], streamVersion(1));
    for (const header of await storedHeaders(story, 3)) {
      expect(header?.has("traceparent")).toBe(false);
      expect(header?.has("tracestate")).toBe(false);
    }
  });

  it("stores the append's span in every event of the append while tracing is on", async () => {
    const tracing = await startInMemoryTracing();
    try {
      const story = newStory();
      await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
      await store.append(
        story,
        [{ data: subtask("s1") }, { data: subtask("s2") }],
        streamVersion(1),
      );
      const sends = tracing.spans().filter((span) => span.name === `send ${settings.stream}`);
      expect(sends.map((span) => span.attributes["messaging.batch.message_count"])).toEqual([1, 2]);
      const parents = sends.map((span) => {
        const { traceId, spanId } = span.spanContext();
        return `00-${traceId}-${spanId}-01`;
      });
      const headers = await storedHeaders(story, 3);
      expect(headers.map((h) => h?.get("traceparent"))).toEqual([
        parents[0],
        parents[1],
        parents[1],
      ]);
    } finally {
      await tracing.shutdown();
    }
  });
});

describe("story-wide optimistic concurrency (checked by the server)", () => {
  it("rejects a stale single-event append with expected and actual version", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    await store.append(story, [{ data: subtask("a") }], streamVersion(1));
    const stale = store.append(story, [{ data: subtask("b") }], streamVersion(1));
    await expect(stale).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(stale).rejects.toMatchObject({ expectedVersion: 1, actualVersion: 2 });
  });

  it("rejects a stale multi-event append as a whole", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    // A second writer remembers version 1; the first moves the story to version 2. The second's
    // batch reaches the server expecting version 1, and the server refuses all of it.
    const other = createEventStore(nc, { names: settings });
    await other.head(story);
    await store.append(story, [{ data: subtask("a") }], streamVersion(1));
    const stale = other.append(
      story,
      [{ data: subtask("p") }, { data: subtask("q") }],
      streamVersion(1),
    );
    await expect(stale).rejects.toMatchObject({
      name: "ConcurrencyError",
      expectedVersion: 1,
      actualVersion: 2,
    });
    const events = await store.read(story);
    expect(events.map((e) => e.version)).toEqual([1, 2]);
    expect(verifyChain(events.map((e) => e.envelope)).intact).toBe(true);
  });

  it("appends at the end with ExpectedVersion.Any, even from a stale writer", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    const other = createEventStore(nc, { names: settings });
    await other.head(story);
    await store.append(story, [{ data: subtask("a") }], streamVersion(1));
    const result = await other.append(
      story,
      [{ data: subtask("b") }, { data: subtask("c") }],
      ExpectedVersion.Any,
    );
    expect(result.events.map((e) => e.version)).toEqual([3, 4]);
    expect(verifyChain((await store.read(story)).map((e) => e.envelope)).intact).toBe(true);
  });

  it("the story must not exist for expected version 0", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    await expect(
      store.append(story, [{ data: created() }], ExpectedVersion.NoStory),
    ).rejects.toMatchObject({
      expectedVersion: 0,
      actualVersion: 1,
    });
  });

  it("lets exactly one of N parallel writers win each version: no lost update, no gap", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    const writers = 8;
    const perWriter = 15;
    let conflicts = 0;
    // Each writer has its own connection and store, like separate command-service pods.
    const connections = await Promise.all(Array.from({ length: writers }, () => connectTestNats()));
    try {
      await Promise.all(
        connections.map(async (conn, w) => {
          const mine = createEventStore(conn, { names: settings });
          for (let i = 0; i < perWriter; i++) {
            for (;;) {
              const version = (await mine.head(story))?.version ?? streamVersion(0);
              try {
                await mine.append(story, [{ data: subtask(`w${w}-${i}`) }], version);
                break;
              } catch (e) {
                if (!isConcurrencyError(e)) throw e;
                conflicts += 1;
              }
            }
          }
        }),
      );
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
    const events = await store.read(story);
    expect(events.length).toBe(1 + writers * perWriter);
    expect(events.map((e) => e.version)).toEqual(events.map((_, i) => i + 1));
    const ids = events.flatMap((e) =>
      e.data.case === "subtaskAdded" ? [e.data.value.subtaskId] : [],
    );
    expect(new Set(ids).size).toBe(writers * perWriter);
    expect(verifyChain(events.map((e) => e.envelope)).intact).toBe(true);
    expect(conflicts).toBeGreaterThan(0);
  });
});

describe("deduplication", () => {
  it("a re-sent single event is stored once", async () => {
    const story = newStory();
    const event = { data: created(), eventId: uniqueName("evt"), occurredAt: new Date() };
    await store.append(story, [event], ExpectedVersion.NoStory);
    const again = await createEventStore(nc, { names: settings }).append(
      story,
      [event],
      ExpectedVersion.Any,
    );
    expect(again.deduplicated).toBe(true);
    expect(again.version).toBe(1);
    expect((await store.read(story)).length).toBe(1);
  });

  it("a re-sent batch is stored once", async () => {
    const story = newStory();
    const batch = [
      { data: created(), eventId: uniqueName("evt") },
      { data: subtask("a"), eventId: uniqueName("evt") },
    ];
    await store.append(story, batch, ExpectedVersion.NoStory);
    const again = await createEventStore(nc, { names: settings }).append(
      story,
      batch,
      ExpectedVersion.Any,
    );
    expect(again.deduplicated).toBe(true);
    expect(again.version).toBe(2);
    expect((await store.read(story)).length).toBe(2);
  });

  it("an unnamed event whose ack was lost is stored once, even when another writer appended after it before the re-send", async () => {
    for (const expected of [ExpectedVersion.Any, streamVersion(1)]) {
      const story = newStory();
      await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
      const resend = Promise.withResolvers<void>();
      const lossy = createEventStore(
        connectionLosingFirstAck(nc, eventSubject(settings, story, "SubtaskAdded"), resend.promise),
        { names: settings, timeoutMs: 1_000, envelopeVersion: 2 },
      );
      // Given an append whose first attempt is stored but whose ack never arrives…
      const appending = lossy.append(story, [{ data: subtask("ours") }], expected);
      await until(async () => (await store.read(story)).length === 2);
      // …when another writer appends after it before the re-send…
      await store.append(story, [{ data: subtask("theirs") }], streamVersion(2));
      resend.resolve();
      // …then the re-send, refused by its expectation, finds its event stored: no conflict, no copy.
      const result = await appending;
      expect(result.deduplicated).toBe(true);
      expect(result.version).toBe(2);
      expect(result.events.map((e) => e.eventId)).toEqual([
        (await store.read(story, { fromVersion: 2, toVersion: 2 }))[0]?.eventId,
      ]);
      const titles = (await store.read(story)).map((e) =>
        e.data.case === "subtaskAdded" ? e.data.value.subtaskId : e.data.case,
      );
      expect(titles).toEqual(["contextCreated", "ours", "theirs"]);
    }
  });

  it("an event id that cannot be a Nats-Msg-Id is refused before anything is published", async () => {
    const story = newStory();
    for (const eventId of ["", "two words", "line\r\nNats-Msg-Id: other", "x".repeat(129)]) {
      await expect(
        store.append(story, [{ data: created(), eventId }], ExpectedVersion.NoStory),
      ).rejects.toThrow(RangeError);
    }
    expect(await store.read(story)).toEqual([]);
  });
});

describe("atomicity", () => {
  it("a connection killed in the middle of a multi-event append leaves none of its events", async () => {
    const story = newStory();
    await store.append(story, [{ data: created() }], ExpectedVersion.NoStory);
    const dying = await connectTestNats();
    let published = 0;
    // A real connection that dies after the third message of the batch has left the client.
    const publish = dying.publish.bind(dying);
    dying.publish = (subject, payload, options) => {
      if (published >= 3) throw new Error("connection lost");
      publish(subject, payload, options);
      published += 1;
      if (published === 3) void dying.close();
    };
    const events = Array.from({ length: 10 }, (_, i) => ({ data: subtask(`lost-${i}`) }));
    await expect(
      createEventStore(dying, { names: settings }).append(story, events, streamVersion(1)),
    ).rejects.toThrow();
    expect(published).toBe(3);
    const after = await store.read(story);
    expect(after.map((e) => e.version)).toEqual([1]);
    // The story is still writable at the version the dead command expected.
    const next = await store.append(story, [{ data: subtask("next") }], streamVersion(1));
    expect(next.version).toBe(2);
  });
});

describe("tamper evidence", () => {
  it("detects an altered, removed or reordered event", async () => {
    const story = newStory();
    await store.append(
      story,
      [{ data: created() }, { data: decision("d1") }, { data: subtask("a") }],
      ExpectedVersion.NoStory,
    );
    const envelopes = (await store.read(story)).map((e) => e.envelope);
    expect(verifyChain(envelopes).intact).toBe(true);

    const altered = envelopes.map((e) => ({ ...e }));
    const second = altered[1];
    if (second?.payload.case === "decisionAdded") {
      second.payload = {
        case: "decisionAdded",
        value: { ...second.payload.value, rationale: "rewritten history" },
      };
    }
    expect(verifyChain(altered)).toMatchObject({ intact: false, version: 2 });
    expect(verifyChain([envelopes[0], envelopes[2]] as never)).toMatchObject({
      intact: false,
      version: 3,
    });
    expect(verifyChain([envelopes[1], envelopes[0]] as never)).toMatchObject({ intact: false });
  });
});

describe("readAll", () => {
  it("replays the stream in order from a sequence", async () => {
    const story = newStory();
    const { events } = await store.append(
      story,
      [{ data: created() }, { data: subtask("a") }],
      ExpectedVersion.NoStory,
    );
    const from = Number(events[0]?.sequence);
    const replayed = [];
    for await (const e of store.readAll({ fromSequence: from })) replayed.push(e);
    expect(replayed[0]?.sequence).toBe(from);
    expect(replayed.filter((e) => e.storyId === story).map((e) => e.version)).toEqual([1, 2]);
    const sequences = replayed.map((e) => Number(e.sequence));
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
  });
});

/**
 * `nc`, except that the first publish to `subject` reaches the server with a reply subject nobody
 * listens on (stored, its ack lost), and every later one waits for `resend` before it is sent.
 */
function connectionLosingFirstAck(
  nc: NatsConnection,
  subject: string,
  resend: Promise<void>,
): NatsConnection {
  let sent = 0;
  const publish: NatsConnection["publish"] = (to, data, options) => {
    if (to !== subject) return nc.publish(to, data, options);
    sent += 1;
    if (sent === 1) return nc.publish(to, data, { ...options, reply: uniqueName("_LOST.ack") });
    void resend.then(() => nc.publish(to, data, options));
  };
  return new Proxy(nc, {
    get(target, property) {
      if (property === "publish") return publish;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Resolves once `condition` holds, asking every 20 ms. */
async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((r) => setTimeout(r, 20));
}
