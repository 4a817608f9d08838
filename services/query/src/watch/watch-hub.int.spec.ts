import { toBinary } from "@bufbuild/protobuf";
import { createLogger } from "@ctx/config";
import { fold, type StoryId, storyId as toStoryId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { type RecordedEvent, UnreadableEventError } from "@ctx/event-store";
import { recorded } from "@ctx/projector/testing";
import { ContextEventSchema, type WatchContextResponse } from "@ctx/proto";
import type { PointInTime, TemporalReader } from "@ctx/snapshots";
import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isWatchLimitError } from "../errors.ts";
import { createWatchMetrics } from "../query-metrics.ts";
import { CHANNEL_RING, CLAIM_BACKOFF_MS } from "./story-channel.ts";
import { createWatchHub, type WatchHub, type WatchLimits } from "./watch-hub.ts";

// The watch hub on a real NATS connection, with an event store of its own in memory: here a
// message can be published without its event being stored, an event stored without a message,
// or a story made unreadable, which the stream itself never lets a test do.

let nc: NatsConnection;
const logger = createLogger({ name: "watch-hub-int", level: "silent", pretty: false });

beforeAll(async () => {
  nc = await connectTestNats();
});
afterAll(async () => {
  await nc?.close();
});

/** Stories held in memory, read like the temporal reader reads the stream; counts the reads. */
class MemoryStories implements TemporalReader {
  readonly #events = new Map<StoryId, RecordedEvent[]>();
  readonly #unreadable = new Set<StoryId>();
  reads = 0;

  append(story: StoryId, count = 1): RecordedEvent[] {
    const events = this.#events.get(story) ?? [];
    this.#events.set(story, events);
    const added: RecordedEvent[] = [];
    for (let i = 0; i < count; i++) {
      const version = events.length + 1;
      const event =
        version === 1
          ? recorded(story, 1, eventData.contextCreated({ title: "watched" }))
          : recorded(story, version, eventData.subtaskAdded({ subtaskId: `t${version}` }));
      events.push(event);
      added.push(event);
    }
    return added;
  }

  breakStory(story: StoryId): void {
    this.#unreadable.add(story);
  }

  async current(story: StoryId): Promise<PointInTime> {
    const events = this.#events.get(story) ?? [];
    return {
      state: fold(story, events),
      sequence: events.at(-1)?.sequence ?? 0,
      snapshotVersion: 0,
      eventsFolded: events.length,
      events,
      eventsFrom: "stream",
    };
  }

  async events(
    story: StoryId,
    range: { fromVersion: number; toVersion?: number },
  ): Promise<readonly RecordedEvent[]> {
    this.reads++;
    const events = this.#events.get(story) ?? [];
    if (this.#unreadable.has(story)) {
      throw new UnreadableEventError({
        sequence: events.at(-1)?.sequence ?? 0,
        reason: "no upcaster reads it",
      });
    }
    const to = range.toVersion ?? Number.POSITIVE_INFINITY;
    return events.filter((e) => e.version >= range.fromVersion && e.version <= to);
  }

  atVersion(): Promise<PointInTime> {
    throw new TypeError("not used by watches");
  }
  atTime(): Promise<PointInTime> {
    throw new TypeError("not used by watches");
  }
}

interface Harness {
  readonly hub: WatchHub;
  readonly stories: MemoryStories;
  readonly prefix: string;
  /** Publishes the envelope of an event on its story's subject, as an append does. */
  hint(event: RecordedEvent): void;
}

const hubs: { hub: WatchHub; stop: AbortController }[] = [];
afterEach(() => {
  for (const { hub, stop } of hubs.splice(0)) {
    stop.abort();
    hub.close();
  }
});

function harness(limits: Partial<WatchLimits> = {}): Harness {
  const prefix = uniqueName("hints").toLowerCase();
  const stories = new MemoryStories();
  const stop = new AbortController();
  const hub = createWatchHub({
    nc,
    // No stream captures these subjects: what is published here is only ever a message.
    names: { stream: "NONE", subjectPrefix: prefix },
    reader: stories,
    limits: { maxWatches: 100, maxPerClient: 100, maxLag: 1_000, resyncMs: 3_600_000, ...limits },
    metrics: createWatchMetrics(new Registry()),
    logger,
    stopping: stop.signal,
  });
  hubs.push({ hub, stop });
  return {
    hub,
    stories,
    prefix,
    hint: (event) =>
      nc.publish(
        `${prefix}.${event.storyId}.${event.eventType}`,
        toBinary(ContextEventSchema, event.envelope),
      ),
  };
}

/** Runs a watch, collecting its answers' versions and how it ended. */
function watch(hub: WatchHub, story: StoryId, client = "c1") {
  const versions: number[] = [];
  const answers: WatchContextResponse[] = [];
  const controller = new AbortController();
  const ended = (async () => {
    for await (const a of hub.watch(story, { signal: controller.signal, client })) {
      answers.push(a);
      versions.push(a.state?.version ?? 0);
    }
  })().then(
    () => "completed",
    (e: unknown) => e,
  );
  return { versions, answers, ended, cancel: () => controller.abort() };
}

const newStory = () => toStoryId(uniqueName("w"));
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe("watch hub", () => {
  it("looks again for a version a message claims until the store has it", async () => {
    const h = harness();
    const story = newStory();
    h.stories.append(story);
    const w = watch(h.hub, story);
    await eventually(() => expect(w.versions).toEqual([1]));
    // Published (and delivered) before it is stored, as JetStream does it.
    const reads = h.stories.reads;
    const [early] = new MemoryStories().append(story, 2).slice(1);
    h.hint(early as RecordedEvent);
    await eventually(() => expect(h.stories.reads).toBeGreaterThanOrEqual(reads + 2));
    h.stories.append(story);
    await eventually(() => expect(w.versions).toEqual([1, 2]));
  });

  it("gives up a claim the store never has after a bounded number of reads", async () => {
    const h = harness();
    const story = newStory();
    h.stories.append(story);
    const w = watch(h.hub, story);
    await eventually(() => expect(w.versions).toEqual([1]));
    const reads = h.stories.reads;
    // A refused append: published, never stored.
    const [refused] = new MemoryStories().append(story, 2).slice(1);
    h.hint(refused as RecordedEvent);
    await eventually(() => expect(h.stories.reads).toBe(reads + 1 + CLAIM_BACKOFF_MS.length), {
      timeout: 15_000,
    });
    // A claim of a version the story already has costs no read at all.
    const [first] = new MemoryStories().append(story, 1);
    h.hint(first as RecordedEvent);
    const [next] = h.stories.append(story);
    h.hint(next as RecordedEvent);
    await eventually(() => expect(w.versions).toEqual([1, 2]));
    expect(h.stories.reads).toBe(reads + 2 + CLAIM_BACKOFF_MS.length);
  });

  it("finds events no message announced: on every resync, and after a reconnection", async () => {
    const timed = harness({ resyncMs: 200 });
    const story = newStory();
    timed.stories.append(story);
    const w = watch(timed.hub, story);
    await eventually(() => expect(w.versions).toEqual([1]));
    timed.stories.append(story, 2);
    await eventually(() => expect(w.versions).toEqual([1, 2, 3]));

    const manual = harness();
    manual.stories.append(story);
    const v = watch(manual.hub, story);
    await eventually(() => expect(v.versions).toEqual([1]));
    manual.stories.append(story);
    manual.hub.resync();
    await eventually(() => expect(v.versions).toEqual([1, 2]));
  });

  it("gives every watcher every version of a burst larger than what the channel keeps", async () => {
    const h = harness();
    const story = newStory();
    h.stories.append(story);
    const watchers = [watch(h.hub, story), watch(h.hub, story), watch(h.hub, story)];
    await eventually(() => {
      for (const w of watchers) expect(w.versions).toEqual([1]);
    });
    const burst = h.stories.append(story, 5 * CHANNEL_RING);
    h.hint(burst.at(-1) as RecordedEvent);
    const all = upTo(1 + 5 * CHANNEL_RING);
    await eventually(() => {
      for (const w of watchers) expect(w.versions).toEqual(all);
    });
    // A watcher started later starts from the present.
    const late = watch(h.hub, story);
    await eventually(() => expect(late.versions).toEqual([all.length]));
    expect(h.hub.size()).toEqual({ watches: 4, stories: 1 });
    for (const w of [...watchers, late]) w.cancel();
    await Promise.all([...watchers, late].map((w) => w.ended));
    expect(h.hub.size()).toEqual({ watches: 0, stories: 0 });
  });

  it("ends the watches of a story that cannot be read with the store's error; others go on", async () => {
    const h = harness();
    const [broken, fine] = [newStory(), newStory()];
    h.stories.append(broken);
    h.stories.append(fine);
    const onBroken = [watch(h.hub, broken), watch(h.hub, broken)];
    const onFine = watch(h.hub, fine);
    await eventually(() =>
      expect([...onBroken, onFine].map((w) => w.versions)).toEqual([[1], [1], [1]]),
    );
    const [next] = h.stories.append(broken);
    h.stories.breakStory(broken);
    h.hint(next as RecordedEvent);
    for (const w of onBroken) expect(await w.ended).toBeInstanceOf(UnreadableEventError);
    const [more] = h.stories.append(fine);
    h.hint(more as RecordedEvent);
    await eventually(() => expect(onFine.versions).toEqual([1, 2]));
    expect(h.hub.size()).toEqual({ watches: 1, stories: 1 });
  });

  it("counts watches per client and per process, and gives places back", async () => {
    const h = harness({ maxWatches: 3, maxPerClient: 2 });
    const story = newStory();
    h.stories.append(story);
    const a1 = watch(h.hub, story, "a");
    const a2 = watch(h.hub, story, "a");
    const a3 = watch(h.hub, story, "a");
    expect(isWatchLimitError(await a3.ended)).toBe(true);
    const b1 = watch(h.hub, story, "b");
    const b2 = watch(h.hub, story, "b");
    expect(isWatchLimitError(await b2.ended)).toBe(true);
    await eventually(() => expect([a1, a2, b1].map((w) => w.versions)).toEqual([[1], [1], [1]]));
    a1.cancel();
    await a1.ended;
    const b3 = watch(h.hub, story, "b");
    await eventually(() => expect(b3.versions).toEqual([1]));
    expect(h.hub.size()).toEqual({ watches: 3, stories: 1 });
  });
});
