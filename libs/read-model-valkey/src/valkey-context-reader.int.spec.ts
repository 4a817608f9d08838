import { type StoryId, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import type { RecordedEvent } from "@ctx/event-store";
import type { Projection, StoryEvents } from "@ctx/projector";
import { expectedContext, recorded, sampleHistory } from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import { stack, uniqueName, valkeyLogin } from "@ctx/test-support";
import type { Valkey } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createValkeyClient,
  createValkeyContextReader,
  createValkeyProjection,
  type ValkeyContextReader,
} from "./index.ts";

let counter = 0;
const newStory = () => storyId(`r-${(counter++).toString(36)}-${uniqueName("v")}`);

const statuses = [
  SubtaskStatus.TODO,
  SubtaskStatus.IN_PROGRESS,
  SubtaskStatus.BLOCKED,
  SubtaskStatus.DONE,
] as const;

describe("Valkey context reader", () => {
  let valkey: Valkey;
  let projection: Projection;
  let reader: ValkeyContextReader;
  let checkpoint = 0;

  /** Applies the events after `from` (a version) of a story to a generation. */
  const apply = (generation: number, story: StoryId, events: readonly RecordedEvent[], from = 0) =>
    projection.apply({
      generation,
      partition: 0,
      checkpoint: ++checkpoint,
      stories: [
        {
          storyId: story,
          expectedVersion: streamVersion(from),
          events: events.slice(from),
        } satisfies StoryEvents,
      ],
    });

  beforeAll(async () => {
    const keyPrefix = uniqueName("reader");
    valkey = createValkeyClient(valkeyLogin(stack()));
    projection = createValkeyProjection(valkey, { keyPrefix });
    reader = createValkeyContextReader(valkey, { keyPrefix });
    await projection.init();
  });
  afterAll(async () => {
    await valkey.quit();
  });

  it("serves the active generation, and the new one as soon as it is activated", async () => {
    const story = newStory();
    const onlyInNew = newStory();
    const events = sampleHistory(story);
    await apply(1, story, events.slice(0, 3));
    await apply(2, story, events);
    await apply(2, onlyInNew, sampleHistory(onlyInNew));

    expect(await projection.activeGeneration()).toBe(1);
    const old = await reader.getContext(story);
    expect(old?.version).toBe(3);
    expect(old?.context).toEqual(expectedContext(story, events.slice(0, 3)));
    expect(old?.updatedAt).toEqual(events[2]?.occurredAt);
    expect(await reader.getContext(onlyInNew)).toBeUndefined();

    await projection.activateGeneration(2);
    const current = await reader.getContext(story);
    expect(current?.version).toBe(10);
    expect(current?.context).toEqual(expectedContext(story, events));
    expect(current?.stale).toBe(false);
    expect((await reader.getContext(onlyInNew))?.version).toBe(10);
    expect(await reader.subtasksByStatus(story, SubtaskStatus.DONE)).toEqual(["a"]);

    await projection.activateGeneration(1);
    expect((await reader.getContext(story))?.version).toBe(3);
  });

  it("keeps a subtask in exactly one status set as it moves TODO → IN_PROGRESS → DONE", async () => {
    const story = newStory();
    const data = [
      eventData.contextCreated({ title: "T" }),
      eventData.subtaskAdded({ subtaskId: "api", title: "API" }),
      eventData.subtaskAdded({ subtaskId: "ui", title: "UI", dependsOn: ["api"] }),
      eventData.subtaskUpdated({ subtaskId: "api", status: SubtaskStatus.IN_PROGRESS }),
      eventData.subtaskUpdated({ subtaskId: "api", status: SubtaskStatus.DONE }),
    ];
    const events = data.map((d, i) => recorded(story, i + 1, d));
    const setsOf = async (subtaskId: string) => {
      const found: SubtaskStatus[] = [];
      for (const status of statuses) {
        if ((await reader.subtasksByStatus(story, status)).includes(subtaskId)) found.push(status);
      }
      return found;
    };

    await apply(1, story, events.slice(0, 3));
    expect(await setsOf("api")).toEqual([SubtaskStatus.TODO]);
    expect(await reader.subtasksByStatus(story, SubtaskStatus.TODO)).toEqual(["api", "ui"]);
    await apply(1, story, events.slice(0, 4), 3);
    expect(await setsOf("api")).toEqual([SubtaskStatus.IN_PROGRESS]);
    await apply(1, story, events, 4);
    expect(await setsOf("api")).toEqual([SubtaskStatus.DONE]);
    expect(await setsOf("ui")).toEqual([SubtaskStatus.TODO]);
  });

  it("lists the stories updated since a time, newest first", async () => {
    const base = Date.UTC(2030, 0, 1);
    const stories = [newStory(), newStory(), newStory()];
    for (const [i, story] of stories.entries()) {
      const event = recorded(story, 1, eventData.contextCreated({ title: story }));
      await apply(1, story, [{ ...event, occurredAt: new Date(base + i * 1_000) }]);
    }
    const [first, second, third] = stories;

    expect(await reader.storiesUpdatedSince(new Date(base + 1_000), 10)).toEqual([
      { storyId: third, updatedAt: new Date(base + 2_000) },
      { storyId: second, updatedAt: new Date(base + 1_000) },
    ]);
    expect(await reader.storiesUpdatedSince(new Date(base), 1)).toEqual([
      { storyId: third, updatedAt: new Date(base + 2_000) },
    ]);
    const all = await reader.storiesUpdatedSince(new Date(base), 10);
    expect(all.map((u) => u.storyId)).toEqual([third, second, first]);
  });

  it("says when a story is stale, and knows nothing of a story it never had", async () => {
    const story = newStory();
    await apply(1, story, sampleHistory(story).slice(0, 2));
    await projection.markStale(1, story, "poison event at version 3");
    expect(await reader.getContext(story)).toMatchObject({ version: 2, stale: true });

    const parkedFirst = newStory();
    await projection.markStale(1, parkedFirst, "poison event at version 1");
    expect(await reader.getContext(parkedFirst)).toMatchObject({ version: 0, stale: true });

    expect(await reader.getContext(newStory())).toBeUndefined();
    expect(await reader.subtasksByStatus(newStory(), SubtaskStatus.TODO)).toEqual([]);
  });
});
