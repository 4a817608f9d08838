import { currentSchemaVersion, storyId, streamVersion } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { type RecordedEvent, verifyChain } from "@ctx/event-store";
import { stack, uniqueName } from "@ctx/test-support";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CallOptions,
  type CommandHarness,
  type CommandResult,
  call,
  type Message,
  type Reply,
  resultOf,
  startCommandHarness,
  statusOf,
  violationsOf,
} from "./testing/command-harness.ts";

// context.v1.ContextCommandService end to end: a generic gRPC client built from proto/ alone, the
// service in-process, and the events it stored read back from JetStream.

let h: CommandHarness;

beforeAll(async () => {
  h = await startCommandHarness({ natsUrl: stack().natsUrl });
});

afterAll(async () => {
  await h?.stop();
});

const newStory = () => uniqueName("story");
const send = (method: string, request: Message, options?: CallOptions): Promise<Reply> =>
  call(h.client, method, request, options);
const ok = async (method: string, request: Message, options?: CallOptions) =>
  resultOf(await send(method, request, options));
const events = (story: string): Promise<readonly RecordedEvent[]> => h.store.read(storyId(story));
const versionOf = async (story: string) => (await events(story)).length;

async function createStory(title = "A story"): Promise<string> {
  const story = newStory();
  await ok("CreateContext", { story_id: story, title });
  return story;
}

/** A story with subtask a (IN_PROGRESS), subtask b (TODO) depending on a, decisions d1 and d2. */
async function storyWithWork(): Promise<string> {
  const story = newStory();
  await ok("ApplyChanges", {
    story_id: story,
    changes: [
      { create_context: { title: "Work" } },
      { add_subtask: { subtask_id: "a", title: "A" } },
      { add_subtask: { subtask_id: "b", title: "B", depends_on: ["a"] } },
      { add_decision: { decision_id: "d1", title: "D1", made_by: "ana" } },
      { add_decision: { decision_id: "d2", title: "D2", made_by: "ana" } },
      { update_subtask: { subtask_id: "a", status: "SUBTASK_STATUS_IN_PROGRESS" } },
    ],
  });
  return story;
}

describe("every RPC", () => {
  it("appends the events it promises, versions gapless, payloads as sent, the hash chain intact", async () => {
    const story = newStory();
    const results: { command: string; result: CommandResult }[] = [];
    const run = async (command: string, request: Message) => {
      const result = await ok(command, { story_id: story, ...request });
      results.push({ command, result });
      return result;
    };

    const created = await run("CreateContext", {
      expected_version: 0,
      command_id: "create-1",
      title: "Checkout redesign",
      description: "Make paying simple",
    });
    expect(created).toEqual({ version: 1, event_ids: [expect.any(String)], deduplicated: false });
    expect((await run("AddSubtask", { subtask_id: "api", title: "API" })).version).toBe(2);
    expect(
      (await run("AddSubtask", { subtask_id: "ui", title: "UI", depends_on: ["api"] })).version,
    ).toBe(3);
    expect(
      (
        await run("AddDecision", {
          decision_id: "rest",
          title: "Use REST",
          rationale: "Everyone knows it",
          made_by: "ana",
          alternatives: ["gRPC", "GraphQL"],
          affects_subtask_ids: ["api"],
        })
      ).version,
    ).toBe(4);
    await run("AddDecision", { decision_id: "grpc", title: "Use gRPC", made_by: "bo" });
    expect(
      (await run("SupersedeDecision", { decision_id: "rest", superseded_by_decision_id: "grpc" }))
        .version,
    ).toBe(6);
    expect(
      (
        await run("UpdateSubtask", {
          subtask_id: "api",
          status: "SUBTASK_STATUS_IN_PROGRESS",
          assignee: "cy",
        })
      ).version,
    ).toBe(7);
    await run("AddSubtask", { subtask_id: "docs", title: "Docs" });
    expect(
      (await run("AddSubtaskDependency", { subtask_id: "docs", depends_on_subtask_id: "ui" }))
        .version,
    ).toBe(9);
    const applied = await run("ApplyChanges", {
      expected_version: 9,
      command_id: "batch-1",
      changes: [
        { add_subtask: { subtask_id: "tests", title: "Tests", depends_on: ["api"] } },
        { update_subtask: { subtask_id: "tests", assignee: "dee" } },
        { add_decision: { decision_id: "vitest", title: "Vitest", made_by: "dee" } },
      ],
    });
    expect(applied.version).toBe(12);
    expect(applied.event_ids).toHaveLength(3);
    expect((await run("ArchiveContext", { reason: "shipped" })).version).toBe(13);

    const stored = await events(story);
    expect(stored.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(stored.map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
      "SubtaskAdded",
      "DecisionAdded",
      "DecisionAdded",
      "DecisionSuperseded",
      "SubtaskUpdated",
      "SubtaskAdded",
      "SubtaskDependencyAdded",
      "SubtaskAdded",
      "SubtaskUpdated",
      "DecisionAdded",
      "ContextArchived",
    ]);
    // Each response names exactly the events its call stored, in order.
    expect(stored.map((e) => e.eventId)).toEqual(results.flatMap((r) => r.result.event_ids));
    expect(results.every((r) => !r.result.deduplicated)).toBe(true);
    expect(
      stored.every(
        (e) =>
          e.storyId === story &&
          e.schemaVersion ===
            currentSchemaVersion[e.eventType as keyof typeof currentSchemaVersion],
      ),
    ).toBe(true);
    expect(verifyChain(stored.map((e) => e.envelope))).toEqual({ intact: true, events: 13 });

    const payloads = stored.map((e) => e.data.value);
    expect(payloads[0]).toMatchObject({
      title: "Checkout redesign",
      description: "Make paying simple",
    });
    expect(payloads[2]).toMatchObject({ subtaskId: "ui", title: "UI", dependsOn: ["api"] });
    expect(payloads[3]).toMatchObject({
      decisionId: "rest",
      title: "Use REST",
      rationale: "Everyone knows it",
      madeBy: "ana",
      alternatives: ["gRPC", "GraphQL"],
      affectsSubtaskIds: ["api"],
    });
    expect(payloads[5]).toMatchObject({ decisionId: "rest", supersededByDecisionId: "grpc" });
    expect(payloads[6]).toMatchObject({ subtaskId: "api", status: 2, assignee: "cy" });
    expect(payloads[8]).toMatchObject({ subtaskId: "docs", dependsOnSubtaskId: "ui" });
    // UpdateSubtask without a status keeps the current one (TODO) and carries both values.
    expect(payloads[10]).toMatchObject({ subtaskId: "tests", status: 1, assignee: "dee" });
    expect(payloads[12]).toMatchObject({ reason: "shipped" });

    expect(stored[0]?.envelope.commandId).toBe("create-1");
    const batch = stored.slice(9, 12).map((e) => e.envelope);
    expect(batch.map((e) => e.commandId)).toEqual(["batch-1", "batch-1", "batch-1"]);
    expect(batch.map((e) => e.commandEventIndex)).toEqual([0, 1, 2]);
    // A call without command_id still gets one (generated), shared by nothing else.
    const generated = stored.map((e) => e.envelope.commandId).filter((_, i) => i > 0 && i < 9);
    expect(generated.every((id) => id !== "")).toBe(true);
    expect(new Set(generated).size).toBe(generated.length);
  });
});

describe("request validation", () => {
  const invalid = async (method: string, request: Message) => {
    const reply = await send(method, request);
    const s = statusOf(reply);
    expect(s.code, s.message).toBe(status.INVALID_ARGUMENT);
    return { message: s.message, violations: violationsOf(s.trailers) };
  };

  // Each request is sent for an existing story (version 1), which must stay untouched.
  const cases: {
    name: string;
    method: string;
    request: (story: string) => Message;
    field: string;
    ruleId: string;
  }[] = [
    {
      name: "a story_id that is not a subject token",
      method: "CreateContext",
      request: () => ({ story_id: "bad.story", title: "T" }),
      field: "story_id",
      ruleId: "string.pattern",
    },
    {
      name: "a title over 200 characters",
      method: "AddSubtask",
      request: (story) => ({ story_id: story, subtask_id: "s", title: "x".repeat(201) }),
      field: "title",
      ruleId: "string.max_len",
    },
    {
      name: "a rationale over 10,000 characters",
      method: "AddDecision",
      request: (story) => ({
        story_id: story,
        decision_id: "d",
        title: "D",
        made_by: "ana",
        rationale: "r".repeat(10_001),
      }),
      field: "rationale",
      ruleId: "string.max_len",
    },
    {
      name: "an ApplyChanges with more than 100 changes",
      method: "ApplyChanges",
      request: (story) => ({
        story_id: story,
        changes: Array.from({ length: 101 }, (_, i) => ({
          add_subtask: { subtask_id: `s${i}`, title: "S" },
        })),
      }),
      field: "changes",
      ruleId: "repeated.max_items",
    },
    {
      name: "an empty title",
      method: "AddDecision",
      request: (story) => ({ story_id: story, decision_id: "d", title: "", made_by: "ana" }),
      field: "title",
      ruleId: "string.min_len",
    },
    {
      name: "a command_id with a space",
      method: "AddSubtask",
      request: (story) => ({
        story_id: story,
        command_id: "no spaces",
        subtask_id: "s",
        title: "S",
      }),
      field: "command_id",
      ruleId: "string.pattern",
    },
    {
      name: "duplicate affects_subtask_ids",
      method: "AddDecision",
      request: (story) => ({
        story_id: story,
        decision_id: "d",
        title: "D",
        made_by: "ana",
        affects_subtask_ids: ["s", "s"],
      }),
      field: "affects_subtask_ids",
      ruleId: "repeated.unique",
    },
    {
      name: "an UpdateSubtask with neither status nor assignee",
      method: "UpdateSubtask",
      request: (story) => ({ story_id: story, subtask_id: "s" }),
      field: "",
      ruleId: "update_subtask.changes_something",
    },
    {
      name: "a status outside the enum",
      method: "UpdateSubtask",
      request: (story) => ({ story_id: story, subtask_id: "s", status: 99 }),
      field: "status",
      ruleId: "enum.defined_only",
    },
    {
      name: "a subtask depending on itself",
      method: "AddSubtaskDependency",
      request: (story) => ({ story_id: story, subtask_id: "s", depends_on_subtask_id: "s" }),
      field: "",
      ruleId: "add_subtask_dependency.not_self",
    },
    {
      name: "an ApplyChanges without changes",
      method: "ApplyChanges",
      request: (story) => ({ story_id: story, changes: [] }),
      field: "changes",
      ruleId: "repeated.min_items",
    },
    {
      name: "an ApplyChanges with a change without a case",
      method: "ApplyChanges",
      request: (story) => ({
        story_id: story,
        changes: [{ add_subtask: { subtask_id: "s", title: "S" } }, {}],
      }),
      field: "changes[1].change",
      ruleId: "required",
    },
  ];

  it.each(cases)("answers INVALID_ARGUMENT to $name, naming the field", async (c) => {
    const story = await createStory();
    const { message, violations } = await invalid(c.method, c.request(story));
    expect(violations).toEqual([{ field: c.field, ruleId: c.ruleId, message: expect.any(String) }]);
    if (c.field !== "") expect(message).toContain(c.field);
    expect(message).toContain(c.ruleId);
    expect(await versionOf(story)).toBe(1);
  });

  it("lists every violated field of one request", async () => {
    const { violations } = await invalid("AddDecision", {
      story_id: "-starts-with-dash",
      decision_id: "",
      title: "",
      made_by: "",
    });
    // An empty decision_id breaks two rules (min_len and pattern): one violation each.
    expect(new Set(violations.map((v) => v.field))).toEqual(
      new Set(["decision_id", "made_by", "story_id", "title"]),
    );
    expect(violations.filter((v) => v.field === "decision_id").map((v) => v.ruleId)).toEqual([
      "string.min_len",
      "string.pattern",
    ]);
  });
});

describe("domain errors", () => {
  const failed = async (method: string, request: Message) => statusOf(await send(method, request));

  it("answers NOT_FOUND for an unknown story or an unknown subtask", async () => {
    const unknown = await failed("AddSubtask", {
      story_id: newStory(),
      subtask_id: "s",
      title: "S",
    });
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(unknown.message).toMatch(/does not exist/);

    const story = await createStory();
    const subtask = await failed("UpdateSubtask", {
      story_id: story,
      subtask_id: "ghost",
      status: "SUBTASK_STATUS_IN_PROGRESS",
    });
    expect(subtask.code).toBe(status.NOT_FOUND);
    expect(subtask.message).toContain('subtask "ghost"');
    expect(await versionOf(story)).toBe(1);
  });

  it("answers ALREADY_EXISTS for a second CreateContext and a taken decision id", async () => {
    const story = await createStory();
    const again = await failed("CreateContext", { story_id: story, title: "Again" });
    expect(again.code).toBe(status.ALREADY_EXISTS);

    await ok("AddDecision", { story_id: story, decision_id: "d", title: "D", made_by: "ana" });
    const taken = await failed("AddDecision", {
      story_id: story,
      decision_id: "d",
      title: "D again",
      made_by: "bo",
    });
    expect(taken.code).toBe(status.ALREADY_EXISTS);
    expect(taken.message).toContain('decision "d"');
    expect(await versionOf(story)).toBe(2);
  });

  it("answers FAILED_PRECONDITION with the rule in the x-rule trailer", async () => {
    const story = await storyWithWork();
    const version = await versionOf(story);
    const cases: { method: string; request: Message; rule: string }[] = [
      {
        method: "AddSubtaskDependency",
        request: { story_id: story, subtask_id: "a", depends_on_subtask_id: "b" },
        rule: "dependency_cycle",
      },
      {
        method: "UpdateSubtask",
        request: { story_id: story, subtask_id: "b", status: "SUBTASK_STATUS_DONE" },
        rule: "invalid_status_transition",
      },
    ];
    for (const c of cases) {
      const s = await failed(c.method, c.request);
      expect(s.code, s.message).toBe(status.FAILED_PRECONDITION);
      expect(s.trailers.get("x-rule")).toEqual([c.rule]);
    }

    // b is IN_PROGRESS, a is not DONE yet: b cannot be DONE.
    await ok("UpdateSubtask", {
      story_id: story,
      subtask_id: "b",
      status: "SUBTASK_STATUS_IN_PROGRESS",
    });
    const notDone = await failed("UpdateSubtask", {
      story_id: story,
      subtask_id: "b",
      status: "SUBTASK_STATUS_DONE",
    });
    expect(notDone.code).toBe(status.FAILED_PRECONDITION);
    expect(notDone.trailers.get("x-rule")).toEqual(["dependencies_not_done"]);
    expect(notDone.message).toContain('"a" is IN_PROGRESS');

    await ok("SupersedeDecision", {
      story_id: story,
      decision_id: "d1",
      superseded_by_decision_id: "d2",
    });
    const superseded = await failed("SupersedeDecision", {
      story_id: story,
      decision_id: "d1",
      superseded_by_decision_id: "d2",
    });
    expect(superseded.code).toBe(status.FAILED_PRECONDITION);
    expect(superseded.trailers.get("x-rule")).toEqual(["decision_not_active"]);

    await ok("ArchiveContext", { story_id: story, reason: "done" });
    const archived = await failed("AddSubtask", { story_id: story, subtask_id: "c", title: "C" });
    expect(archived.code).toBe(status.FAILED_PRECONDITION);
    expect(archived.trailers.get("x-rule")).toEqual(["story_archived"]);

    expect(await versionOf(story)).toBe(version + 3);
  });
});

describe("optimistic concurrency", () => {
  const expectAborted = (reply: Reply, expected: number, actual: number) => {
    const s = statusOf(reply);
    expect(s.code, s.message).toBe(status.ABORTED);
    expect(s.message).toContain(`version ${actual}`);
    expect(s.message).toContain(`expected version ${expected}`);
    expect(s.trailers.get("x-expected-version")).toEqual([String(expected)]);
    expect(s.trailers.get("x-actual-version")).toEqual([String(actual)]);
  };

  it("answers ABORTED with both versions for a stale expected_version", async () => {
    const story = await createStory();
    await ok("AddSubtask", { story_id: story, subtask_id: "s", title: "S", expected_version: 1 });
    const stale = await send("AddSubtask", {
      story_id: story,
      subtask_id: "t",
      title: "T",
      expected_version: 1,
    });
    expectAborted(stale, 1, 2);
    const ahead = await send("ArchiveContext", { story_id: story, expected_version: 7 });
    expectAborted(ahead, 7, 2);
    const missing = await send("CreateContext", {
      story_id: story,
      title: "T",
      expected_version: 0,
    });
    expectAborted(missing, 0, 2);
    expect(await versionOf(story)).toBe(2);
  });

  it("refuses a stale multi-event ApplyChanges as a whole", async () => {
    const story = await createStory();
    await ok("AddSubtask", { story_id: story, subtask_id: "s", title: "S" });
    const stale = await send("ApplyChanges", {
      story_id: story,
      expected_version: 1,
      changes: [
        { add_subtask: { subtask_id: "t", title: "T" } },
        { add_subtask: { subtask_id: "u", title: "U" } },
        { add_decision: { decision_id: "d", title: "D", made_by: "ana" } },
      ],
    });
    expectAborted(stale, 1, 2);
    expect((await events(story)).map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
    ]);
  });
});

describe("ApplyChanges", () => {
  it("stores nothing when its third change breaks a rule", async () => {
    const story = await storyWithWork();
    const before = await events(story);
    const reply = await send("ApplyChanges", {
      story_id: story,
      changes: [
        { add_subtask: { subtask_id: "c", title: "C" } },
        {
          add_decision: {
            decision_id: "d3",
            title: "D3",
            made_by: "ana",
            affects_subtask_ids: ["c"],
          },
        },
        { add_subtask_dependency: { subtask_id: "a", depends_on_subtask_id: "b" } },
        { add_subtask: { subtask_id: "e", title: "E" } },
      ],
    });
    const s = statusOf(reply);
    expect(s.code).toBe(status.FAILED_PRECONDITION);
    expect(s.trailers.get("x-rule")).toEqual(["dependency_cycle"]);
    const after = await events(story);
    expect(after.map((e) => e.eventId)).toEqual(before.map((e) => e.eventId));
    // The refused batch left no trace in the service's state either: the same ids are still free.
    const retried = await ok("ApplyChanges", {
      story_id: story,
      changes: [
        { add_subtask: { subtask_id: "c", title: "C" } },
        {
          add_decision: {
            decision_id: "d3",
            title: "D3",
            made_by: "ana",
            affects_subtask_ids: ["c"],
          },
        },
      ],
    });
    expect(retried.version).toBe(before.length + 2);
  });
});

describe("idempotency by command_id", () => {
  it("returns the first result again and appends nothing", async () => {
    const story = await createStory();
    const request = { story_id: story, command_id: "add-s", subtask_id: "s", title: "S" };
    const first = await ok("AddSubtask", request);
    const second = await ok("AddSubtask", request);
    expect(first).toEqual({ version: 2, event_ids: [expect.any(String)], deduplicated: false });
    expect(second).toEqual({ ...first, deduplicated: true });
    expect(await versionOf(story)).toBe(2);
  });

  it("still deduplicates after other commands came in between", async () => {
    const story = await createStory();
    const request = {
      story_id: story,
      command_id: "batch",
      changes: [
        { add_subtask: { subtask_id: "s", title: "S" } },
        { add_subtask: { subtask_id: "t", title: "T", depends_on: ["s"] } },
      ],
    };
    const first = await ok("ApplyChanges", request);
    await ok("AddDecision", { story_id: story, decision_id: "d", title: "D", made_by: "ana" });
    await ok("UpdateSubtask", { story_id: story, subtask_id: "s", assignee: "bo" });
    const again = await ok("ApplyChanges", request);
    expect(again).toEqual({ version: 3, event_ids: first.event_ids, deduplicated: true });
    expect(await versionOf(story)).toBe(5);
  });

  /** The status of a call refused for reusing a command id, checked to name the id. */
  const reused = async (method: string, request: Message & { command_id: string }) => {
    const s = statusOf(await send(method, request));
    expect(s.code, s.message).toBe(status.ALREADY_EXISTS);
    expect(s.trailers.get("x-rule")).toEqual(["command_id_reused"]);
    expect(s.message).toContain(`command_id "${request.command_id}" was already used`);
    return s.message;
  };

  it("refuses a command_id reused by another method: ArchiveContext archives nothing", async () => {
    const story = await createStory();
    const first = await ok("AddSubtask", {
      story_id: story,
      command_id: "key-1",
      subtask_id: "s",
      title: "S",
    });

    const message = await reused("ArchiveContext", {
      story_id: story,
      command_id: "key-1",
      reason: "done",
    });

    expect(message).toContain("by a AddSubtask request, not ArchiveContext");
    expect((await events(story)).map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
    ]);
    // The same request as the first still answers its result; a new id archives.
    expect(
      await ok("AddSubtask", { story_id: story, command_id: "key-1", subtask_id: "s", title: "S" }),
    ).toEqual({ ...first, deduplicated: true });
    expect(
      (await ok("ArchiveContext", { story_id: story, command_id: "key-2", reason: "done" }))
        .version,
    ).toBe(3);
  });

  it("refuses a command_id reused by the same method with other content", async () => {
    const story = await createStory();
    const request = { story_id: story, command_id: "add", subtask_id: "s", title: "S" };
    const first = await ok("AddSubtask", request);

    const message = await reused("AddSubtask", { ...request, title: "Another title" });
    await reused("AddSubtask", { ...request, subtask_id: "t" });

    expect(message).toContain("by a AddSubtask request with other content");
    expect(await ok("AddSubtask", request)).toEqual({ ...first, deduplicated: true });
    expect(await versionOf(story)).toBe(2);
  });

  it("refuses an ApplyChanges whose changes differ, and deduplicates the same ones", async () => {
    const story = await createStory();
    const changes = [
      { add_subtask: { subtask_id: "s", title: "S" } },
      {
        add_decision: { decision_id: "d", title: "D", made_by: "ana", affects_subtask_ids: ["s"] },
      },
    ];
    const request = { story_id: story, command_id: "batch", changes };
    const first = await ok("ApplyChanges", request);

    await reused("ApplyChanges", { ...request, changes: changes.slice(0, 1) });
    await reused("ApplyChanges", { ...request, changes: [changes[0], changes[0]] });
    // The change as its own RPC is another request.
    await reused("AddSubtask", {
      story_id: story,
      command_id: "batch",
      subtask_id: "s",
      title: "S",
    });
    expect(await ok("ApplyChanges", request)).toEqual({ ...first, deduplicated: true });
    expect(await versionOf(story)).toBe(3);
  });

  it("deduplicates a retry that pins another expected_version (not part of the request)", async () => {
    const story = await createStory();
    const request = { story_id: story, command_id: "pin", subtask_id: "s", title: "S" };
    const first = await ok("AddSubtask", { ...request, expected_version: 1 });
    await ok("AddSubtask", { story_id: story, subtask_id: "t", title: "T" });
    expect(await ok("AddSubtask", { ...request, expected_version: 3 })).toEqual({
      ...first,
      deduplicated: true,
    });
    // An UNSPECIFIED status is no status: the same request as one without it.
    const update = { story_id: story, command_id: "upd", subtask_id: "s", assignee: "bo" };
    const updated = await ok("UpdateSubtask", update);
    expect(await ok("UpdateSubtask", { ...update, status: "SUBTASK_STATUS_UNSPECIFIED" })).toEqual({
      ...updated,
      deduplicated: true,
    });
  });

  it("tells the same request from another after a restart with the story cache off", async () => {
    const story = await createStory();
    const request = { story_id: story, command_id: "restart", subtask_id: "s", title: "S" };
    const first = await ok("AddSubtask", request);
    // Another process on the same stream, which has never seen the story: it rebuilds the
    // command's outcome, name and fingerprint from the stored events, on every call.
    const restarted = await startCommandHarness({
      natsUrl: stack().natsUrl,
      stream: h.stream,
      env: { STORY_CACHE_SIZE: "0" },
    });
    try {
      const again = (m: string, r: Message) => call(restarted.client, m, r);
      expect(resultOf(await again("AddSubtask", request))).toEqual({
        ...first,
        deduplicated: true,
      });
      const other = statusOf(await again("AddSubtask", { ...request, title: "Other" }));
      expect(other.code).toBe(status.ALREADY_EXISTS);
      const method = statusOf(await again("ArchiveContext", { ...request, reason: "" }));
      expect(method.code).toBe(status.ALREADY_EXISTS);
      expect(method.message).toContain("by a AddSubtask request, not ArchiveContext");
    } finally {
      await restarted.stop();
    }
    expect(await versionOf(story)).toBe(2);
  });

  it("answers the first result to a command_id of an event stored without a fingerprint", async () => {
    // Written before fingerprints existed: the id alone, as every command was deduplicated then.
    const story = await createStory();
    const legacy = await h.store.append(
      storyId(story),
      [{ data: eventData.subtaskAdded({ subtaskId: "s", title: "S" }) }],
      streamVersion(1),
      { commandId: "old-key" },
    );
    expect(legacy.events[0]?.envelope.commandName).toBe("");

    const answer = await ok("ArchiveContext", { story_id: story, command_id: "old-key" });

    expect(answer).toEqual({
      version: 2,
      event_ids: [legacy.events[0]?.eventId],
      deduplicated: true,
    });
    expect(await versionOf(story)).toBe(2);
  });

  it("deduplicates a repeated CreateContext instead of answering ALREADY_EXISTS", async () => {
    const story = newStory();
    const request = { story_id: story, command_id: "create", title: "T", expected_version: 0 };
    const first = await ok("CreateContext", request);
    expect(await ok("CreateContext", request)).toEqual({ ...first, deduplicated: true });
  });
});

describe("correlation", () => {
  it("writes x-correlation-id and x-causation-id into the events and echoes the correlation id", async () => {
    const story = newStory();
    const reply = await send(
      "ApplyChanges",
      {
        story_id: story,
        changes: [
          { create_context: { title: "T" } },
          { add_subtask: { subtask_id: "s", title: "S" } },
        ],
      },
      { headers: { "x-correlation-id": "corr-42", "x-causation-id": "evt:41" } },
    );
    resultOf(reply);
    expect(reply.headers.get("x-correlation-id")).toEqual(["corr-42"]);
    const stored = await events(story);
    expect(stored.map((e) => [e.envelope.correlationId, e.envelope.causationId])).toEqual([
      ["corr-42", "evt:41"],
      ["corr-42", "evt:41"],
    ]);
  });

  it("echoes the correlation id on a failed call too, so its logs can be found", async () => {
    const sent = await send(
      "AddSubtask",
      { story_id: newStory(), subtask_id: "s", title: "S" },
      { headers: { "x-correlation-id": "corr-failed" } },
    );
    expect(statusOf(sent).code).toBe(status.NOT_FOUND);
    expect(sent.trailers.get("x-correlation-id")).toEqual(["corr-failed"]);

    const generated = await send("AddSubtask", {
      story_id: newStory(),
      subtask_id: "s",
      title: "S",
    });
    expect(statusOf(generated).code).toBe(status.NOT_FOUND);
    expect(generated.trailers.get("x-correlation-id")[0]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("generates a correlation id when none is sent", async () => {
    const story = newStory();
    const reply = await send("CreateContext", { story_id: story, title: "T" });
    resultOf(reply);
    const [echoed] = reply.headers.get("x-correlation-id");
    expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    const [event] = await events(story);
    expect(event?.envelope.correlationId).toBe(echoed);
    expect(event?.envelope.causationId).toBe("");
  });
});
