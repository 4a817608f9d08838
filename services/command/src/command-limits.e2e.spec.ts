import { createLogger, isConfigError } from "@ctx/config";
import { storyId } from "@ctx/domain";
import { stack, testAuth, uniqueName } from "@ctx/test-support";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCommandApp } from "./app.ts";
import { loadCommandConfig } from "./config.ts";
import {
  type CommandHarness,
  call,
  type Message,
  resultOf,
  startCommandHarness,
  statusOf,
} from "./testing/command-harness.ts";

// The limits on commands and stories, end to end: the default ones on one service, small ones on
// another (so a story reaches them in a few calls), both on one stream of their own.

let defaults: CommandHarness;
let small: CommandHarness;

const smallLimits = {
  COMMAND_MAX_CHANGES: "3",
  COMMAND_MAX_EVENT_BYTES: "2048",
  STORY_MAX_DECISIONS: "3",
  STORY_MAX_SUBTASKS: "3",
  STORY_MAX_DEPENDENCIES: "2",
  STORY_MAX_BYTES: "3072",
};

beforeAll(async () => {
  defaults = await startCommandHarness({ natsUrl: stack().natsUrl });
  small = await startCommandHarness({
    natsUrl: stack().natsUrl,
    stream: defaults.stream,
    env: smallLimits,
  });
});

afterAll(async () => {
  await small?.stop();
  await defaults?.stop();
});

const newStory = () => uniqueName("limits");
const versionOf = async (story: string) => (await defaults.store.read(storyId(story))).length;

async function refused(h: CommandHarness, method: string, request: Message, code: status) {
  const s = statusOf(await call(h.client, method, request));
  expect(s.code, s.message).toBe(code);
  return s;
}

/** A story on the small-limits service with subtasks a, b (depending on a), decision d1. */
async function smallStory(): Promise<string> {
  const story = newStory();
  resultOf(
    await call(small.client, "ApplyChanges", {
      story_id: story,
      changes: [
        { create_context: { title: "Limits" } },
        { add_subtask: { subtask_id: "a", title: "A" } },
        { add_subtask: { subtask_id: "b", title: "B", depends_on: ["a"] } },
      ],
    }),
  );
  resultOf(
    await call(small.client, "AddDecision", {
      story_id: story,
      decision_id: "d1",
      title: "D1",
      made_by: "ana",
    }),
  );
  return story;
}

describe("a command too large by itself", () => {
  it("is refused with INVALID_ARGUMENT when it carries more changes than allowed", async () => {
    const story = newStory();
    const changes = [
      { create_context: { title: "T" } },
      ...["a", "b", "c"].map((id) => ({ add_subtask: { subtask_id: id, title: id } })),
    ];
    const s = await refused(
      small,
      "ApplyChanges",
      { story_id: story, changes },
      status.INVALID_ARGUMENT,
    );
    expect(s.message).toContain("a command may carry at most 3 changes, not 4");
    expect(s.trailers.get("x-limit")).toEqual(["changes_per_command"]);
    expect(await versionOf(story)).toBe(0);
  });

  it("is refused with INVALID_ARGUMENT when one of its events is larger than allowed", async () => {
    const story = await smallStory();
    const s = await refused(
      small,
      "ApplyChanges",
      {
        story_id: story,
        changes: [
          { add_subtask: { subtask_id: "c", title: "C" } },
          {
            add_decision: {
              decision_id: "d2",
              title: "D2",
              made_by: "ana",
              rationale: "r".repeat(2100),
            },
          },
        ],
      },
      status.INVALID_ARGUMENT,
    );
    expect(s.message).toMatch(
      /change 1 \(AddDecision\) would be an event of \d+ bytes; an event may have at most 2048/,
    );
    expect(s.trailers.get("x-limit")).toEqual(["event_bytes"]);
    expect(await versionOf(story)).toBe(4);
  });

  it("is refused under the default limits: a decision of about 80 KB", async () => {
    // Valid for the proto (10,000 characters of 3 bytes, 50 alternatives of 1,000), larger than
    // an event may be (64 KiB).
    const story = newStory();
    resultOf(await call(defaults.client, "CreateContext", { story_id: story, title: "T" }));
    const s = await refused(
      defaults,
      "AddDecision",
      {
        story_id: story,
        decision_id: "d",
        title: "D",
        made_by: "ana",
        rationale: "€".repeat(10_000),
        alternatives: alternatives(0),
      },
      status.INVALID_ARGUMENT,
    );
    expect(s.message).toMatch(/would be an event of \d+ bytes; an event may have at most 65536/);
    expect(await versionOf(story)).toBe(1);
  });
});

describe("a story at its limits", () => {
  const rule = (s: { trailers: { get(key: string): unknown[] } }) => s.trailers.get("x-rule");
  const ok = async (h: CommandHarness, method: string, request: Message) =>
    resultOf(await call(h.client, method, request));
  const decision = (story: string, id: string, rationale = "") => ({
    story_id: story,
    decision_id: id,
    title: id,
    made_by: "ana",
    rationale,
  });

  it("refuses a decision, subtask or dependency beyond its counts with FAILED_PRECONDITION", async () => {
    const story = await smallStory();
    await ok(small, "AddDecision", decision(story, "d2"));
    await ok(small, "AddDecision", decision(story, "d3"));
    const decisions = await refused(
      small,
      "AddDecision",
      decision(story, "d4"),
      status.FAILED_PRECONDITION,
    );
    expect(rule(decisions)).toEqual(["too_many_decisions"]);
    expect(decisions.message).toContain("would hold 4 decisions; a story may hold at most 3");

    await ok(small, "AddSubtask", { story_id: story, subtask_id: "c", title: "C" });
    const subtasks = await refused(
      small,
      "AddSubtask",
      { story_id: story, subtask_id: "e", title: "E" },
      status.FAILED_PRECONDITION,
    );
    expect(rule(subtasks)).toEqual(["too_many_subtasks"]);

    const edge = (from: string, to: string) => ({
      story_id: story,
      subtask_id: from,
      depends_on_subtask_id: to,
    });
    await ok(small, "AddSubtaskDependency", edge("c", "a"));
    const dependencies = await refused(
      small,
      "AddSubtaskDependency",
      edge("c", "b"),
      status.FAILED_PRECONDITION,
    );
    expect(rule(dependencies)).toEqual(["too_many_dependencies"]);
    expect(await versionOf(story)).toBe(8);
  });

  it("refuses a change that would make its context larger than allowed", async () => {
    const story = await smallStory();
    await ok(small, "AddDecision", decision(story, "d2", "r".repeat(1_900)));

    const tooLarge = await refused(
      small,
      "AddDecision",
      decision(story, "d3", "r".repeat(1_900)),
      status.FAILED_PRECONDITION,
    );

    expect(rule(tooLarge)).toEqual(["story_too_large"]);
    expect(tooLarge.message).toMatch(
      /would hold \d+ bytes of encoded context; a story may hold at most 3072/,
    );
    expect((await ok(small, "AddDecision", decision(story, "d3", "r".repeat(900)))).version).toBe(
      6,
    );
  });

  it("refuses a change that would take a story past its bytes under the default limits", async () => {
    // One call of about 1 MB of decisions (each event about 60 KB, within its 64 KiB) is more
    // than a story may hold (960 KiB): before the limits, it was stored, and the story could no
    // longer be snapshotted once a few more came.
    const story = newStory();
    const changes = [
      { create_context: { title: "Big" } },
      ...Array.from({ length: 17 }, (_, i) => ({
        add_decision: {
          ...decision(story, `d${i}`, "r".repeat(10_000)),
          alternatives: alternatives(i),
        },
      })),
    ];
    const s = await refused(
      defaults,
      "ApplyChanges",
      { story_id: story, changes },
      status.FAILED_PRECONDITION,
    );
    expect(rule(s)).toEqual(["story_too_large"]);
    expect(s.message).toMatch(/a story may hold at most 983040/);
    expect(await versionOf(story)).toBe(0);
  });

  it("takes every command that does not grow a story written past its limits", async () => {
    // Written under the default limits, then handled by a service with smaller ones (as after
    // an operator lowered them): over its bytes, decisions and subtasks.
    const story = newStory();
    await ok(defaults, "ApplyChanges", {
      story_id: story,
      changes: [
        { create_context: { title: "Written before" } },
        ...["a", "b", "c", "e"].map((id) => ({ add_subtask: { subtask_id: id, title: id } })),
        ...["d1", "d2", "d3", "d4"].map((id) => ({
          add_decision: decision(story, id, "r".repeat(1_000)),
        })),
      ],
    });
    const version = await versionOf(story);

    const update = { story_id: story, subtask_id: "a", status: "SUBTASK_STATUS_IN_PROGRESS" };
    expect((await ok(small, "UpdateSubtask", update)).version).toBe(version + 1);
    const done = { ...update, status: "SUBTASK_STATUS_DONE" };
    expect((await ok(small, "UpdateSubtask", done)).version).toBe(version + 2);
    const grows = await refused(
      small,
      "UpdateSubtask",
      { story_id: story, subtask_id: "b", assignee: "someone" },
      status.FAILED_PRECONDITION,
    );
    expect(rule(grows)).toEqual(["story_too_large"]);
    expect((await ok(small, "ArchiveContext", { story_id: story, reason: "done" })).version).toBe(
      version + 3,
    );
  });
});

/** 50 alternatives of 1,000 characters: with a 10,000-character rationale, about 60 KB. */
function alternatives(seed: number): string[] {
  return Array.from({ length: 50 }, (_, i) => `${seed}-${i}-`.padEnd(1_000, "a"));
}

describe("the limits' settings", () => {
  it("refuse to start when a story at the limit could not be snapshotted in one NATS message", async () => {
    const config = loadCommandConfig({
      ...stack().natsEnv,
      COMMAND_LISTEN: "127.0.0.1:0",
      COMMAND_OPS_LISTEN: "127.0.0.1:0",
      EVENT_STREAM: uniqueName("CMD_LIMITS"),
      STORY_MAX_BYTES: String(2 * 1024 * 1024),
      ...testAuth().env,
    });
    const logger = createLogger({ name: "command-limits", level: "silent", pretty: false });
    const started = startCommandApp(config, logger);
    await expect(started).rejects.toSatisfy(isConfigError);
    await expect(started).rejects.toThrow(
      /STORY_MAX_BYTES: 2097152 bytes leave less than 16384 bytes/,
    );
  });

  it("refuse values outside their bounds at start-up", () => {
    expect(() => loadCommandConfig({ ...testAuth().env, COMMAND_MAX_CHANGES: "101" })).toThrow(
      /COMMAND_MAX_CHANGES/,
    );
    expect(() => loadCommandConfig({ ...testAuth().env, STORY_MAX_BYTES: "-1" })).toThrow(
      /STORY_MAX_BYTES/,
    );
  });
});
