import { Code, ConnectError } from "@connectrpc/connect";
import { fold, type StoryId, toContextMessage } from "@ctx/domain";
import type { WatchContextResponse } from "@ctx/proto";
import { eventually } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryClient,
  type QueryStack,
  startQueryStack,
} from "./testing/query-stack.ts";

// WatchContext over a real gRPC stream: the current state first, then every version in order while
// writers append, until the client cancels, the deadline passes or the service stops.

let s: QueryStack;
let q: QueryClient;
let commands: CommandClient;

beforeAll(async () => {
  s = await startQueryStack();
  q = (await s.startQuery({ SNAPSHOT_INTERVAL: "5" })).client;
  commands = (await s.startCommand()).client;
});

afterAll(async () => {
  await s?.stop();
});

async function createStory(): Promise<StoryId> {
  const story = newStory();
  await commands.createContext({ storyId: story, title: "Watched" });
  await commands.addSubtask({ storyId: story, subtaskId: "a", title: "A" });
  return story;
}

/** Appends `count` events: assignee changes, with an atomic three-event change in the middle. */
async function write(story: StoryId, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 2)) {
      await commands.applyChanges({
        storyId: story,
        changes: [
          { change: { case: "addSubtask", value: { subtaskId: "b", title: "B" } } },
          { change: { case: "addSubtask", value: { subtaskId: "c", title: "C" } } },
          {
            change: {
              case: "addSubtaskDependency",
              value: { subtaskId: "c", dependsOnSubtaskId: "b" },
            },
          },
        ],
      });
      i += 2;
    } else {
      await commands.updateSubtask({ storyId: story, subtaskId: "a", assignee: `dev-${i}` });
    }
  }
}

async function consumers(): Promise<number> {
  return (await s.jsm.streams.info(s.settings.stream)).state.consumer_count;
}

async function codeOf(run: () => Promise<unknown>): Promise<Code | "OK"> {
  try {
    await run();
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("WatchContext", () => {
  it("sends the current state, then every version in order while a writer appends", async () => {
    const story = await createStory();
    const baseline = await consumers();
    const controller = new AbortController();
    const received: WatchContextResponse[] = [];
    const stream = q.watchContext({ storyId: story }, { signal: controller.signal });
    const writing = (async () => {
      // Write once the watch has answered with the state it started from.
      await eventually(() => expect(received.length).toBeGreaterThan(0));
      await write(story, 40);
    })();
    const final = 2 + 40;
    await expect(
      (async () => {
        for await (const answer of stream) {
          received.push(answer);
          if (answer.state?.version === final) controller.abort();
        }
      })(),
    ).rejects.toThrow(/abort|cancel/i);
    await writing;

    const versions = received.map((r) => r.state?.version);
    expect(versions[0]).toBe(2);
    expect(versions).toEqual(Array.from({ length: final - 1 }, (_, i) => i + 2));
    const history = await s.store.read(story);
    for (const answer of received) {
      const version = answer.state?.version ?? 0;
      expect(answer.state?.context).toEqual(
        toContextMessage(fold(story, history.slice(0, version))),
      );
    }
    // The server ends its consumer when the client goes.
    await eventually(async () => expect(await consumers()).toBe(baseline));
  });

  it("starts from the state of a story written before the watch", async () => {
    const story = await createStory();
    await write(story, 12);
    const controller = new AbortController();
    for await (const answer of q.watchContext({ storyId: story }, { signal: controller.signal })) {
      expect(answer.state?.version).toBe(14);
      expect(answer.state?.context?.subtasks.map((t) => t.subtaskId)).toEqual(["a", "b", "c"]);
      controller.abort();
      break;
    }
  });

  it("says NOT_FOUND for an unknown story and INVALID_ARGUMENT for a malformed id", async () => {
    const drain = (storyId: string) => async () => {
      for await (const _ of q.watchContext({ storyId })) {
        // nothing is expected
      }
    };
    expect(await codeOf(drain(newStory()))).toBe(Code.NotFound);
    expect(await codeOf(drain("a b"))).toBe(Code.InvalidArgument);
  });

  it("ends with DEADLINE_EXCEEDED when the deadline passes, and keeps no consumer", async () => {
    const story = await createStory();
    const baseline = await consumers();
    const received: WatchContextResponse[] = [];
    const code = await codeOf(async () => {
      for await (const answer of q.watchContext({ storyId: story }, { timeoutMs: 1_500 })) {
        received.push(answer);
      }
    });
    expect(code).toBe(Code.DeadlineExceeded);
    expect(received.map((r) => r.state?.version)).toEqual([2]);
    await eventually(async () => expect(await consumers()).toBe(baseline));
  });

  it("ends every watch with UNAVAILABLE when the service stops", async () => {
    const story = await createStory();
    const other = await s.startQuery({ SNAPSHOTTER: "off" });
    const received: WatchContextResponse[] = [];
    const watching = codeOf(async () => {
      for await (const answer of other.client.watchContext({ storyId: story })) {
        received.push(answer);
      }
    });
    await eventually(() => expect(received).toHaveLength(1));
    await other.app.stop();
    expect(await watching).toBe(Code.Unavailable);
  });
});
