import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { fold, type StoryId, toContextMessage } from "@ctx/domain";
import { ContextQueryService, type WatchContextResponse } from "@ctx/proto";
import { eventually, metricSum, sendTestToken, uniqueName } from "@ctx/test-support";
import { AckPolicy, jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryClient,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// Many watches at once (defect: one JetStream consumer per watch, so 2,000 watches used up the
// stream's consumers, and projectors, rebuilds and the CLI failed while they were open). 1,500
// watches over 300 stories must create no consumer at all, leave the stream to everything else,
// and still give every watcher every version in order while writers append.

const STORIES = 300;
const WATCHERS_PER_STORY = 5;
const WRITTEN_STORIES = 20;
const EVENTS_PER_STORY = 10;

let s: QueryStack;
let query: RunningQuery;
let commands: CommandClient;

beforeAll(async () => {
  s = await startQueryStack();
  query = await s.startQuery({
    SNAPSHOTTER: "off",
    WATCH_MAX: "2000",
    WATCH_MAX_PER_CLIENT: "2000",
  });
  commands = (await s.startCommand()).client;
});

afterAll(async () => {
  await s?.stop();
});

/** Runs `work` over `items`, `width` at a time. */
async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

interface Watcher {
  readonly story: StoryId;
  readonly answers: WatchContextResponse[];
  readonly controller: AbortController;
  readonly done: Promise<unknown>;
}

describe("WatchContext under a flood of watches", () => {
  it("creates no JetStream consumer for 1,500 watches, and every watcher sees every version", async () => {
    const stories: StoryId[] = Array.from({ length: STORIES }, () => newStory());
    await inParallel(stories, 16, async (storyId) => {
      await commands.createContext({ storyId, title: "Flooded" });
    });
    const consumers = async () =>
      (await s.jsm.streams.info(s.settings.stream)).state.consumer_count;
    const baseline = await consumers();

    // Ten connections, 150 watches on each.
    const clients: QueryClient[] = Array.from({ length: 10 }, () =>
      createClient(
        ContextQueryService,
        createGrpcTransport({ baseUrl: query.baseUrl, interceptors: [sendTestToken] }),
      ),
    );
    const watchers: Watcher[] = [];
    for (const [i, story] of stories.entries()) {
      for (let w = 0; w < WATCHERS_PER_STORY; w++) {
        const client = clients[(i * WATCHERS_PER_STORY + w) % clients.length] as QueryClient;
        const answers: WatchContextResponse[] = [];
        const controller = new AbortController();
        const done = (async () => {
          for await (const a of client.watchContext({ storyId: story }, controller)) {
            answers.push(a);
          }
        })().catch((e: unknown) => e);
        watchers.push({ story, answers, controller, done });
      }
    }
    await eventually(() => expect(watchers.filter((w) => w.answers.length === 0)).toEqual([]), {
      timeout: 60_000,
      interval: 200,
    });
    const ops = query.app.opsPort;
    expect(await metricSum(ops, "ctx_query_watches_open")).toBe(STORIES * WATCHERS_PER_STORY);
    expect(await metricSum(ops, "ctx_query_watched_stories")).toBe(STORIES);
    expect(await consumers()).toBe(baseline);

    // Writers append to 20 stories at once while the 1,500 watches are open.
    const written = stories.slice(0, WRITTEN_STORIES);
    await inParallel(written, WRITTEN_STORIES, async (storyId) => {
      for (let i = 0; i < EVENTS_PER_STORY; i++) {
        await commands.addSubtask({ storyId, subtaskId: `t${i}`, title: `T${i}` });
      }
    });
    const final = 1 + EVENTS_PER_STORY;
    const everyVersion = Array.from({ length: final }, (_, i) => i + 1);
    const versions = (w: Watcher) => w.answers.map((a) => a.state?.version);
    const ofWritten = watchers.filter((w) => written.includes(w.story));
    await eventually(
      () => {
        for (const w of ofWritten) expect(versions(w)).toEqual(everyVersion);
      },
      { timeout: 30_000, interval: 200 },
    );
    for (const story of written) {
      const history = await s.store.read(story);
      const expected = everyVersion.map((v) => toContextMessage(fold(story, history.slice(0, v))));
      for (const w of ofWritten.filter((x) => x.story === story)) {
        expect(w.answers.map((a) => a.state?.context)).toEqual(expected);
      }
    }
    for (const w of watchers.filter((x) => !written.includes(x.story))) {
      expect(versions(w)).toEqual([1]);
    }
    expect(await consumers()).toBe(baseline);

    // What projectors, rebuilds and `ctx events stats` need still works.
    const rebuild = uniqueName("rebuild");
    await s.jsm.consumers.add(s.settings.stream, {
      durable_name: rebuild,
      ack_policy: AckPolicy.Explicit,
      filter_subject: `${s.settings.subjectPrefix}.>`,
    });
    const consumer = await jetstream(s.nc).consumers.get(s.settings.stream, rebuild);
    const fetched = await consumer.fetch({ max_messages: 10, expires: 5_000 });
    let seen = 0;
    for await (const m of fetched) {
      m.ack();
      seen++;
    }
    expect(seen).toBe(10);
    expect(await consumers()).toBe(baseline + 1);
    await s.jsm.consumers.delete(s.settings.stream, rebuild);
    // (readAll's ordered consumer is the server's to clean up; it is none of the watches'.)
    let replayed = 0;
    for await (const _ of s.store.readAll({ toSequence: 100 })) replayed++;
    expect(replayed).toBe(100);

    for (const w of watchers) w.controller.abort();
    await Promise.all(watchers.map((w) => w.done));
    await eventually(async () => expect(await metricSum(ops, "ctx_query_watches_open")).toBe(0));
    expect(await metricSum(ops, "ctx_query_watched_stories")).toBe(0);
    expect(await metricSum(ops, "ctx_query_watches_ended_total", { reason: "cancelled" })).toBe(
      STORIES * WATCHERS_PER_STORY,
    );
  }, 180_000);
});
