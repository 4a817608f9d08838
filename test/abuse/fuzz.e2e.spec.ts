import { create, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyByteMutations, byteMutationArb, encode, mutatedArb } from "./support/mutate.ts";
import {
  type Protocol,
  protocols,
  type RawClient,
  type RawReply,
  rawClient,
} from "./support/raw-rpc.ts";

// Thousands of mutated requests, generated from valid ones, on every RPC of both services and over
// every protocol they speak (gRPC-Web and Connect over HTTP/2 and HTTP/1.1 alike): whatever a client sends, the answer is a well-formed response with a
// status code that says what was wrong (never INTERNAL or UNKNOWN), the services keep serving, and
// their memory stays bounded. Seeded, so a failure replays.

const SEED = 20_261_206;
const CALLS = Number(process.env.ABUSE_FUZZ_CALLS ?? 4_000);
const IN_FLIGHT = 8;

let s: QueryStack;
let command: RawClient;
let query: RawClient;
let commandCheck: () => Promise<void>;
let queryCheck: () => Promise<void>;
const story = newStory();
const other = newStory();

beforeAll(async () => {
  s = await startQueryStack();
  const c = await s.startCommand();
  const q = await s.startQuery();
  command = rawClient(c.baseUrl);
  query = rawClient(q.baseUrl);
  await c.client.createContext({ storyId: story, title: "Fuzzed story" });
  await c.client.addSubtask({ storyId: story, subtaskId: "t-1", title: "First" });
  await c.client.addSubtask({
    storyId: story,
    subtaskId: "t-2",
    title: "Second",
    dependsOn: ["t-1"],
  });
  await c.client.addDecision({
    storyId: story,
    decisionId: "d-1",
    title: "Use NATS",
    madeBy: "lead",
    affectsSubtaskIds: ["t-1"],
  });
  await s.project(story);
  commandCheck = async () => {
    const r = await c.client.createContext({ storyId: newStory(), title: "still serving" });
    expect(r.result?.version).toBe(1);
  };
  queryCheck = async () => {
    const r = await q.client.getContext({ storyId: story });
    expect(r.version).toBe(4);
  };
}, 120_000);

afterAll(async () => {
  command?.close();
  query?.close();
  await s?.stop();
});

/** A valid request of each method, about the story the suite created. */
function validRequest(method: DescMethod): MessageShape<DescMessage> {
  const at = timestampFromDate(new Date());
  const init: Record<string, Record<string, unknown>> = {
    CreateContext: { storyId: newStory(), title: "T", description: "D" },
    AddDecision: {
      storyId: story,
      decisionId: "d-9",
      title: "T",
      madeBy: "me",
      alternatives: ["a"],
    },
    SupersedeDecision: { storyId: story, decisionId: "d-1", supersededByDecisionId: "d-9" },
    AddSubtask: { storyId: story, subtaskId: "t-9", title: "T", dependsOn: ["t-1"] },
    UpdateSubtask: { storyId: story, subtaskId: "t-1", status: 2, assignee: "me" },
    AddSubtaskDependency: { storyId: story, subtaskId: "t-2", dependsOnSubtaskId: "t-1" },
    ArchiveContext: { storyId: other, reason: "done" },
    ApplyChanges: { storyId: story, changes: [] },
    GetContext: { storyId: story },
    GetContextAtTime: { storyId: story, timestamp: at },
    GetContextAtVersion: { storyId: story, version: 2 },
    ListEvents: { storyId: story, fromVersion: 1, pageSize: 10 },
    ListStoredEvents: { storyId: story, afterSequence: 0n, pageSize: 10 },
    DiffContext: {
      storyId: story,
      from: { point: { case: "version", value: 1 } },
      to: { point: { case: "time", value: at } },
    },
    GetAffectedSubtasks: { storyId: story, decisionId: "d-1" },
    GetBlockers: { storyId: story, subtaskId: "t-2" },
    WatchContext: { storyId: story },
  };
  return create(method.input, (init[method.name] ?? {}) as never);
}

const methods: readonly DescMethod[] = [
  ...ContextCommandService.methods,
  ...ContextQueryService.methods,
];
const seeds = [story, other, "t-1", "t-2", "d-1", "d-9", "cmd-1", "lead"];

interface Case {
  readonly method: DescMethod;
  readonly protocol: Protocol;
  /** Over HTTP/1.1 (browsers, curl): gRPC-Web and Connect only. */
  readonly http1: boolean;
  readonly body: Uint8Array;
  readonly broken: boolean;
}

const caseArb: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom(...methods), fc.constantFrom(...protocols), fc.boolean())
  .chain(([method, protocol, http1]) =>
    fc
      .tuple(
        mutatedArb(method.input, validRequest(method), seeds),
        fc.option(fc.array(byteMutationArb, { minLength: 1, maxLength: 3 }), { freq: 3 }),
      )
      .map(([message, mutations]) => {
        const bytes = encode(method.input, message, protocol === "connect+json");
        return {
          method,
          protocol,
          http1: http1 && protocol !== "grpc",
          body: mutations ? applyByteMutations(bytes, mutations) : bytes,
          broken: mutations !== null,
        };
      }),
  );

/** What a server may answer a mutated request with: anything but "the server failed". */
const serverFaults = new Set([2 /* UNKNOWN */, 13 /* INTERNAL */, -1 /* no status at all */]);

describe("fuzzed requests on every RPC and protocol", () => {
  it(`answer ${CALLS} mutated requests with well-formed, non-INTERNAL statuses`, async () => {
    const cases = fc.sample(caseArb, { numRuns: CALLS, seed: SEED });
    const rssBefore = process.memoryUsage().rss;
    const tally = new Map<string, number>();
    const faults: { method: string; protocol: string; broken: boolean; reply: RawReply }[] = [];
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++] as Case;
        const client = c.method.parent === ContextCommandService ? command : query;
        const streaming = c.method.methodKind === "server_streaming";
        const reply = await client.call({
          path: `/${c.method.parent.typeName}/${c.method.name}`,
          protocol: c.protocol,
          body: c.body,
          streaming,
          timeoutMs: streaming ? 300 : 10_000,
          http1: c.http1,
        });
        const over = c.http1 ? `${c.protocol} (HTTP/1.1)` : c.protocol;
        const key = `${over} ${reply.code}`;
        tally.set(key, (tally.get(key) ?? 0) + 1);
        if (serverFaults.has(reply.code) || reply.malformed.length > 0) {
          faults.push({ method: c.method.name, protocol: over, broken: c.broken, reply });
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    console.log(
      `fuzz: ${cases.length} calls; statuses by protocol: ${JSON.stringify(Object.fromEntries([...tally].sort()))}; RSS +${rssGrowthMb.toFixed(0)} MB`,
    );
    const kinds = new Map<string, number>();
    for (const f of faults) {
      // Numbers in the details (lengths, field numbers) apart, one entry per kind of fault.
      const detail = ([...f.reply.malformed].join("; ") || f.reply.message.slice(0, 80)).replace(
        /\d+/g,
        "N",
      );
      const key = `${f.method} over ${f.protocol}${f.broken ? " (broken bytes)" : ""}: ${f.reply.code} ${detail}`;
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(kinds)).toEqual({});
    // Requests were up to a few MB; the services hold nothing of them afterwards.
    expect(rssGrowthMb).toBeLessThan(512);
    await commandCheck();
    await queryCheck();
  }, 600_000);
});
