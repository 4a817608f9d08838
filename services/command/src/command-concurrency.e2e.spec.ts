import { storyId } from "@ctx/domain";
import { verifyChain } from "@ctx/event-store";
import { stack, uniqueName } from "@ctx/test-support";
import { type Client, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandHarness,
  call,
  commandClient,
  resultOf,
  startCommandHarness,
  statusOf,
} from "./testing/command-harness.ts";

// Many writers on one story, each pinning expected_version: the JetStream server decides who wins.
// Two service instances share the stream, so no in-process cache or lock can hide a lost update.

const CLIENTS = 6;
const CHANGES_PER_CLIENT = 4;

let first: CommandHarness;
let second: CommandHarness;

beforeAll(async () => {
  first = await startCommandHarness({ natsUrl: stack().natsUrl });
  second = await startCommandHarness({ natsUrl: stack().natsUrl, stream: first.stream });
});

afterAll(async () => {
  await second?.stop();
  await first?.stop();
});

interface Win {
  readonly client: number;
  readonly version: number;
  readonly eventId: string;
}

describe("parallel writers with expected_version", () => {
  it("let exactly one writer win each version, and lose no update", async () => {
    const story = uniqueName("story");
    const storyKey = storyId(story);
    resultOf(await call(first.client, "CreateContext", { story_id: story, title: "Contended" }));

    // Each writer has a channel (HTTP/2 connection) of its own, to one of the two instances.
    const clients: Client[] = Array.from({ length: CLIENTS }, (_, i) =>
      commandClient((i % 2 === 0 ? first : second).address),
    );
    let aborted = 0;
    const writer = async (index: number, client: Client): Promise<Win[]> => {
      const wins: Win[] = [];
      let version = (await first.store.head(storyKey))?.version ?? 0;
      for (let change = 0; change < CHANGES_PER_CLIENT; ) {
        const reply = await call(client, "AddSubtask", {
          story_id: story,
          expected_version: version,
          command_id: `writer-${index}-change-${change}`,
          subtask_id: `w${index}-c${change}`,
          title: `Change ${change} of writer ${index}`,
        });
        if (reply.ok) {
          const result = resultOf(reply);
          expect(result.version).toBe(version + 1);
          expect(result.deduplicated).toBe(false);
          wins.push({ client: index, ...only(result) });
          version = result.version;
          change += 1;
          continue;
        }
        const s = statusOf(reply);
        expect(s.code, s.message).toBe(status.ABORTED);
        aborted += 1;
        // The trailer says where the story is; never behind what this writer expected.
        const [actual] = s.trailers.get("x-actual-version");
        expect(Number(actual)).toBeGreaterThan(version);
        version = (await first.store.head(storyKey))?.version ?? 0;
      }
      return wins;
    };
    try {
      const wins = (await Promise.all(clients.map((client, i) => writer(i, client)))).flat();
      const total = CLIENTS * CHANGES_PER_CLIENT;

      // One win per version 2..total+1: no version was taken twice, none was skipped.
      expect(wins.map((w) => w.version).sort((a, b) => a - b)).toEqual(
        Array.from({ length: total }, (_, i) => i + 2),
      );
      expect(aborted).toBeGreaterThan(0);

      const stored = await first.store.read(storyKey);
      expect(stored.map((e) => e.version)).toEqual(
        Array.from({ length: total + 1 }, (_, i) => i + 1),
      );
      expect(verifyChain(stored.map((e) => e.envelope))).toEqual({
        intact: true,
        events: total + 1,
      });
      // Every writer's every change is there, once, where its response said.
      const byVersion = new Map(stored.map((e) => [e.version as number, e]));
      for (const win of wins) {
        const event = byVersion.get(win.version);
        expect(event?.eventId).toBe(win.eventId);
        expect(event?.envelope.commandId).toMatch(new RegExp(`^writer-${win.client}-change-\\d$`));
      }
      const subtasks = stored
        .slice(1)
        .map((e) => (e.data.case === "subtaskAdded" ? e.data.value.subtaskId : ""));
      expect(new Set(subtasks)).toEqual(
        new Set(
          Array.from(
            { length: total },
            (_, i) => `w${Math.floor(i / CHANGES_PER_CLIENT)}-c${i % CHANGES_PER_CLIENT}`,
          ),
        ),
      );
    } finally {
      for (const client of clients) client.close();
    }
  });
});

function only(result: { version: number; event_ids: readonly string[] }) {
  expect(result.event_ids).toHaveLength(1);
  return { version: result.version, eventId: result.event_ids[0] as string };
}
