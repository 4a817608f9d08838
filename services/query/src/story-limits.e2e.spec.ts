import { toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Command,
  decideWithin,
  defaultStoryLimits,
  fold,
  isStoryLimitError,
  measureStory,
  type StoryId,
  toContextMessage,
} from "@ctx/domain";
import {
  ContextSchema,
  ContextSnapshotSchema,
  ContextSource,
  GetContextResponseSchema,
  SubtaskStatus,
} from "@ctx/proto";
import { createSnapshotStore } from "@ctx/snapshots";
import { eventually, uniqueName } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// Issue #20, defect 10: a story grew past what a snapshot, the Valkey model and GetContext can
// hold. The command service's default limits must allow only stories that all of them take: a
// story built to the default limits (with the largest events allowed, so it takes few) is
// refused the next growing command, is snapshotted, projected, and answered now and back in time.

const INTERVAL = 10;
const MAX_PAYLOAD = 1024 * 1024; // nats-server's default, which the stack runs with

let s: QueryStack;
let query: RunningQuery;
let command: CommandClient;
const snapshotNames = { stream: uniqueName("LIMSNAP"), subjectPrefix: "" };
snapshotNames.subjectPrefix = snapshotNames.stream.toLowerCase();

beforeAll(async () => {
  s = await startQueryStack();
  query = await s.startQuery({
    SNAPSHOT_INTERVAL: String(INTERVAL),
    SNAPSHOT_STREAM: snapshotNames.stream,
    SNAPSHOT_SUBJECT_PREFIX: snapshotNames.subjectPrefix,
  });
  command = (await s.startCommand()).client;
});

afterAll(async () => {
  await s?.jsm.streams.delete(snapshotNames.stream).catch(() => undefined);
  await s?.stop();
});

/** 50 alternatives of 1,000 characters and a 10,000-character rationale: about 60 KB. */
const largest = (id: string) => decisionOf(id, 60_000);

async function codeOf(call: Promise<unknown>): Promise<{ code: Code | "OK"; rule?: string }> {
  try {
    await call;
    return { code: "OK" };
  } catch (e) {
    const error = ConnectError.from(e);
    const rule = error.metadata.get("x-rule");
    return rule === null ? { code: error.code } : { code: error.code, rule };
  }
}

/** The story as stored, folded and measured. */
async function stored(story: StoryId) {
  const events = await s.store.read(story);
  const state = fold(story, events);
  return { events, state, measure: measureStory(state) };
}

/** A decision with `chars` characters of text: a rationale, then alternatives of 1,000. */
function decisionOf(id: string, chars: number) {
  const rationale = Math.min(chars, 10_000);
  const alternatives: string[] = [];
  for (let rest = chars - rationale; rest > 0; rest -= 1_000) {
    alternatives.push("a".repeat(Math.min(rest, 1_000)));
  }
  return {
    decisionId: id,
    title: id,
    madeBy: "ana",
    rationale: "r".repeat(rationale),
    alternatives,
  };
}

/** The largest decision the story still takes: it fills the story up to its byte limit. */
async function filling(story: StoryId) {
  const { state, measure } = await stored(story);
  for (let chars = defaultStoryLimits.contextBytes - measure.bytes; chars > 0; chars--) {
    const fill = decisionOf("fill", chars);
    const command: Command = { type: "AddDecision", ...fill, affectsSubtaskIds: [] };
    try {
      decideWithin([command], { state, measure }, defaultStoryLimits);
      return fill;
    } catch (e) {
      if (!isStoryLimitError(e)) throw e;
    }
  }
  throw new Error("no room left in the story");
}

describe("a story built to the default limits", () => {
  it("is refused what would grow it, and is snapshotted, projected and answered", async () => {
    const story = newStory();
    await command.createContext({ storyId: story, title: "At the limits" });
    await command.addSubtask({ storyId: story, subtaskId: "s", title: "S" });

    // Given decisions of about 60 KB (near the 64 KiB an event may have) until the story is
    // full, then one that fills what is left
    let decisions = 0;
    for (;;) {
      const added = await codeOf(
        command.addDecision({ storyId: story, ...largest(`d${decisions}`) }),
      );
      if (added.code !== "OK") {
        expect(added).toEqual({ code: Code.FailedPrecondition, rule: "story_too_large" });
        break;
      }
      decisions += 1;
      expect(decisions).toBeLessThan(20);
    }
    await command.addDecision({ storyId: story, ...(await filling(story)) });
    // and subtask updates (which do not grow it) up to a snapshot's version
    let { version } = (
      await command.updateSubtask({
        storyId: story,
        subtaskId: "s",
        status: SubtaskStatus.IN_PROGRESS,
      })
    ).result ?? { version: 0 };
    for (let done = true; version % INTERVAL !== 0; done = !done) {
      const status = done ? SubtaskStatus.TODO : SubtaskStatus.IN_PROGRESS;
      ({ version } = (await command.updateSubtask({ storyId: story, subtaskId: "s", status }))
        .result ?? { version: 0 });
    }
    const { events, measure } = await stored(story);
    expect(events).toHaveLength(version);
    expect(measure.bytes).toBeGreaterThan(defaultStoryLimits.contextBytes - 16);
    expect(measure.bytes).toBeLessThanOrEqual(defaultStoryLimits.contextBytes);

    // When anything would grow it, it is refused with the rule, and nothing is stored
    expect(
      await codeOf(command.addSubtask({ storyId: story, subtaskId: "t", title: "T" })),
    ).toEqual({ code: Code.FailedPrecondition, rule: "story_too_large" });
    expect(
      await codeOf(
        command.updateSubtask({ storyId: story, subtaskId: "s", assignee: "a longer name" }),
      ),
    ).toEqual({ code: Code.FailedPrecondition, rule: "story_too_large" });
    expect((await stored(story)).events).toHaveLength(version);

    // Then the snapshotter stores its snapshot at the last version, in one NATS message
    const snapshots = createSnapshotStore(s.nc, snapshotNames, { interval: INTERVAL });
    const snapshot = await eventually(
      async () => {
        const found = await snapshots.atOrBeforeVersion(story, version);
        expect(found?.version).toBe(version);
        return found;
      },
      { timeout: 30_000 },
    );
    if (snapshot === undefined) throw new Error("no snapshot");
    expect(toBinary(ContextSnapshotSchema, snapshot).length).toBeLessThan(MAX_PAYLOAD);
    const expected = toContextMessage(fold(story, events));
    expect(snapshot.context).toEqual(expected);

    // and the read models take it, and the query service answers it now and back in time
    await s.project(story);
    const now = await query.client.getContext({ storyId: story });
    expect(now.source).toBe(ContextSource.READ_MODEL);
    expect(now.version).toBe(version);
    expect(now.context).toEqual(expected);
    expect(toBinary(ContextSchema, expected).length).toBe(measure.bytes);
    expect(toBinary(GetContextResponseSchema, now).length).toBeLessThan(4 * 1024 * 1024);

    const atTime = await query.client.getContextAtTime({
      storyId: story,
      timestamp: timestampFromDate(new Date()),
    });
    expect(atTime.version).toBe(version);
    expect(atTime.context).toEqual(expected);
    const atVersion = await query.client.getContextAtVersion({ storyId: story, version });
    expect(atVersion.context).toEqual(expected);
  }, 120_000);
});
