import { describe, expect, it } from "vitest";
import { eventStatsView, storyEventsView } from "./events.ts";
import { parkedListView, parkedReplayView } from "./parked.ts";
import { projectionsStatusView, rebuildView } from "./projections.ts";
import { storyCheckView } from "./stories.ts";
import { provisionedView } from "./streams.ts";

// Issue #24: each command's result is one structure; these views turn it into the text ctx has
// always printed (and say the exit code). --json prints the structure itself.

describe("events stats", () => {
  const stats = {
    stream: "EV",
    events: 4,
    kinds: [
      { type: "ContextCreated", schemaVersion: 1, count: 2, readAs: "current", unreadable: false },
      {
        type: "SubtaskAdded",
        schemaVersion: null,
        count: 2,
        readAs: "UNREADABLE (DataLossError): see ctx stories check",
        unreadable: true,
        first: "story s-1, stream message 3",
      },
    ],
  };

  it("is the table of kinds, and exits 1 when one cannot be read", () => {
    expect(eventStatsView.text(stats)).toEqual([
      "EV: 4 events",
      [
        "event type      schema  events  read as",
        "ContextCreated  v1      2       current",
        "SubtaskAdded    -       2       UNREADABLE (DataLossError): see ctx stories check; first: story s-1, stream message 3",
      ].join("\n"),
    ]);
    expect(eventStatsView.exitCode?.(stats)).toBe(1);
    expect(eventStatsView.exitCode?.({ ...stats, kinds: stats.kinds.slice(0, 1) })).toBe(0);
  });

  it("an empty stream is one line", () => {
    expect(eventStatsView.text({ stream: "EV", events: 0, kinds: [] })).toEqual(["EV: 0 events"]);
  });
});

describe("events list", () => {
  it("shows - for what was not recorded", () => {
    const [text] = storyEventsView.text({
      story: "s",
      events: [
        {
          version: 1,
          sequence: 5,
          occurredAt: "2026-01-01T00:00:00.000Z",
          type: "ContextCreated",
          schemaVersion: 2,
          setAside: false,
          principal: null,
          commandId: "c-1",
          correlationId: null,
        },
      ],
    });
    expect(text?.split("\n")[1]).toBe(
      "1        2026-01-01T00:00:00.000Z  ContextCreated v2  -          c-1         -",
    );
  });
});

describe("stories check", () => {
  const message = { sequence: 7, version: 2, type: "SubtaskAdded", status: "unreadable" as const };

  it("prints the repair to run and exits 1 when a message cannot be read", () => {
    const check = { story: "s", messages: [{ ...message, problem: "bad" }], unreadable: [7] };
    expect(storyCheckView.text(check).slice(1)).toEqual([
      "s: 1 message(s) no reader can read; the story is blocked until they are set aside:",
      '  ctx stories repair --story s --sequence 7 --reason "…"',
    ]);
    expect(storyCheckView.exitCode?.(check)).toBe(1);
  });

  it("exits 0 when every message reads", () => {
    const check = {
      story: "s",
      messages: [{ ...message, status: "event" as const }],
      unreadable: [],
    };
    expect(storyCheckView.text(check).at(-1)).toBe(
      "s: 1 messages, every one readable or set aside",
    );
    expect(storyCheckView.exitCode?.(check)).toBe(0);
  });
});

describe("parked", () => {
  it("list: says so when there are none", () => {
    expect(parkedListView.text({ parked: [] })).toEqual(["no parked events"]);
  });

  it("replay: exits 1 when a story still fails", () => {
    const replay = {
      stories: [
        { projection: "neo4j" as const, story: "a", version: 3 },
        { projection: "valkey" as const, story: "b", error: "boom" },
      ],
    };
    expect(parkedReplayView.text(replay)).toEqual([
      "neo4j: story a replayed up to version 3; its parked events are cleared",
      "valkey: story b still fails: boom",
    ]);
    expect(parkedReplayView.exitCode?.(replay)).toBe(1);
  });
});

describe("projections", () => {
  it("status: a table per projection, or why it is unavailable", () => {
    const text = projectionsStatusView.text({
      stream: "EV",
      events: 9,
      lastSequence: 12,
      projections: [
        {
          projection: "neo4j",
          generation: 2,
          lag: 1,
          parked: 0,
          replicas: 1,
          partitions: [
            { partition: 0, replica: "p-1", checkpoint: 11, ackFloor: 11, pending: 1 },
            { partition: 1, replica: null, checkpoint: 0, ackFloor: null, pending: null },
          ],
        },
        { projection: "valkey", unavailable: "connection refused" },
      ],
    });
    expect(text).toEqual([
      "EV: 9 events, last sequence 12",
      "",
      "neo4j: generation 2, lag 1 events, parked 0, replicas 1",
      [
        "partition  replica  checkpoint  ack floor  pending",
        "0          p-1      11          11         1",
        "1          -        0           -          -",
      ].join("\n"),
      "valkey: unavailable (connection refused)",
    ]);
  });

  it("rebuild: 130 when interrupted, the failure raised after the report", () => {
    const done = {
      projection: "neo4j" as const,
      generation: 3,
      events: 10,
      seconds: 1.25,
      switched: false,
      previousGeneration: 2,
    };
    expect(rebuildView.text({ rebuilds: [done], interrupted: true })).toEqual([
      "neo4j: rebuild of generation 3 interrupted after 10 events; run it again to resume",
    ]);
    expect(rebuildView.exitCode?.({ rebuilds: [done], interrupted: true })).toBe(130);
    const failed = {
      rebuilds: [{ projection: "valkey" as const, failed: "gone" }],
      interrupted: false,
    };
    expect(rebuildView.failure?.(failed)?.message).toBe("gone");
  });
});

describe("provision", () => {
  it("the event stream's line, then what is ready", () => {
    expect(
      provisionedView.text({
        eventStream: { name: "EV", events: 0, partitions: 16, replicas: 3, subjects: ["ev.>"] },
        ready: [
          { kind: "stream", name: "EV_PARKED" },
          { kind: "kv", name: "leases" },
        ],
      }),
    ).toEqual([
      "EV: 0 events, 16 partitions, replicas 3, subjects ev.>",
      "EV_PARKED: ready",
      "KV leases: ready",
    ]);
  });
});
