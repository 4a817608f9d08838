import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ContextEventData, fold, type StoryId, toContextMessage } from "@ctx/domain";
import { ExpectedVersion, type RecordedEvent } from "@ctx/event-store";
import type { GetContextResponse } from "@ctx/proto";
import { storyHistories } from "@ctx/snapshots/testing";
import { eventually } from "@ctx/test-support";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  newStory,
  type QueryStack,
  type RunningQuery,
  startQueryStack,
} from "./testing/query-stack.ts";

// Property: for random valid histories appended through the event store, GetContextAtTime at every
// event's time and between, and GetContextAtVersion at every version, equal the fold of the events
// up to that point: with snapshots every 3 versions (the snapshotter run to completion) and without.

let s: QueryStack;
let withSnapshots: RunningQuery;
let withoutSnapshots: RunningQuery;

beforeAll(async () => {
  s = await startQueryStack();
  withSnapshots = await s.startQuery({ SNAPSHOT_INTERVAL: "3" });
  withoutSnapshots = await s.startQuery({ SNAPSHOTS: "off", SNAPSHOTTER: "off" });
});

afterAll(async () => {
  await s?.stop();
});

/** Appends a history, each event stamped at least 2 ms after the previous one and near now. */
async function append(
  story: StoryId,
  appends: readonly (readonly ContextEventData[])[],
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let last = 0;
  for (const group of appends) {
    const events = group.map((data) => {
      last = Math.max(Date.now(), last + 2);
      return { data, occurredAt: new Date(last) };
    });
    out.push(...(await s.store.append(story, events, ExpectedVersion.Any)).events);
  }
  return out;
}

async function codeOf(call: Promise<unknown>): Promise<Code | "OK"> {
  try {
    await call;
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

function expectState(
  answer: GetContextResponse,
  story: StoryId,
  events: readonly RecordedEvent[],
): void {
  expect(answer.version).toBe(events.length);
  expect(answer.context).toEqual(toContextMessage(fold(story, events)));
  expect(answer.asOf && timestampDate(answer.asOf)).toEqual(events[events.length - 1]?.occurredAt);
}

/** A counter of the query service's /metrics, summed over its labels that match. */
async function metric(app: RunningQuery, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${app.app.opsPort}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(name) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
}

describe("temporal queries", () => {
  it("equal the fold of the events up to every time and version, with and without snapshots", async () => {
    await fc.assert(
      fc.asyncProperty(storyHistories({ maxEvents: 25 }), async (appends) => {
        const story = newStory();
        const history = await append(story, appends);
        const snapshotter = withSnapshots.app.snapshotter;
        await eventually(async () => expect(await snapshotter?.lag()).toBe(0), { timeout: 30_000 });
        const times = history.map((e) => e.occurredAt.getTime());
        const probes = [...times.flatMap((t) => [t, t + 1]), Date.now() + 3_600_000];
        for (const { client } of [withSnapshots, withoutSnapshots]) {
          const before = new Date((times[0] as number) - 1);
          const notYet = client.getContextAtTime({
            storyId: story,
            timestamp: timestampFromDate(before),
          });
          expect(await codeOf(notYet)).toBe(Code.NotFound);
          for (const t of probes) {
            const answer = await client.getContextAtTime({
              storyId: story,
              timestamp: timestampFromDate(new Date(t)),
            });
            const end = history.findIndex((e) => e.occurredAt.getTime() > t);
            expectState(answer, story, end < 0 ? history : history.slice(0, end));
          }
          for (let v = 1; v <= history.length; v++) {
            const answer = await client.getContextAtVersion({ storyId: story, version: v });
            expectState(answer, story, history.slice(0, v));
          }
          const past = client.getContextAtVersion({ storyId: story, version: history.length + 1 });
          expect(await codeOf(past)).toBe(Code.OutOfRange);
        }
      }),
      { numRuns: 10 },
    );
    // Snapshots were used by the one service, never by the other.
    const hits = (app: RunningQuery) =>
      metric(app, "ctx_query_temporal_events_folded_count", 'snapshot="hit"');
    expect(await hits(withSnapshots)).toBeGreaterThan(0);
    expect(await hits(withoutSnapshots)).toBe(0);
  });
});
