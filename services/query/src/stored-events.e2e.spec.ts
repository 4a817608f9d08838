import { execFile } from "node:child_process";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { StoryId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  decodeStoredEvent,
  eventSubject,
  type StoredEvent,
  storedEnvelopeBytes,
} from "@ctx/event-store";
import { ContextAuditService, type StoredEventMessage } from "@ctx/proto";
import { runCtx, runVerifyChain, stack, testAuth } from "@ctx/test-support";
import { jetstream, type StoredMsg } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandClient,
  newStory,
  type QueryClient,
  type QueryStack,
  startQueryStack,
} from "./testing/query-stack.ts";

// Issue #25: ListStoredEvents gives a story's messages exactly as stored, so that an auditor can
// verify the story's hash chain without trusting the service: tools/audit/verify_chain.py (Python,
// standard library only) does, here against real stories, and it finds the same breaks as
// `ctx audit verify` in a story someone tampered with.

const repoRoot = join(import.meta.dirname, "../../..");
let s: QueryStack;
let command: CommandClient;
let query: QueryClient;
let queryUrl: string;

beforeAll(async () => {
  s = await startQueryStack();
  command = (await s.startCommand()).client;
  const started = await s.startQuery({ SNAPSHOTS: "off", SNAPSHOTTER: "off" });
  query = started.client;
  queryUrl = started.baseUrl;
});

afterAll(async () => {
  await s?.stop();
});

/** A story of `subtasks` + 1 events, written through the command service. */
async function commandedStory(subtasks: number): Promise<StoryId> {
  const id = newStory();
  await command.createContext({ storyId: id, title: "Audited" });
  for (let i = 0; i < subtasks; i++) {
    await command.addSubtask({ storyId: id, subtaskId: `t${i}`, title: `Subtask ${i}` });
  }
  return id;
}

/** Every page of ListStoredEvents, `pageSize` at a time. */
async function allPages(id: string, pageSize: number) {
  const pages: StoredEventMessage[][] = [];
  let after = 0n;
  do {
    const page = await query.listStoredEvents({ storyId: id, afterSequence: after, pageSize });
    pages.push(page.messages);
    after = page.nextAfterSequence;
  } while (after !== 0n);
  return pages;
}

interface Verdict {
  readonly code: number | null;
  readonly result: {
    messages: number;
    version: number;
    hash: string;
    breaks: { sequence: number; version: number; kind: string }[];
  };
}

/** The independent verifier, run as an auditor runs it. */
const pythonVerify = (id: string, ...extra: string[]) =>
  runVerifyChain<Verdict["result"]>(queryUrl, ["--story", id, ...extra]);

describe("ListStoredEvents", () => {
  it("gives every message of a story as stored, page by page, in stream order", async () => {
    const id = await commandedStory(4);
    const pages = await allPages(id, 2);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    const messages = pages.flat();
    const versions = messages.map(
      (m) => decodeStoredEvent(m.data, Number(m.sequence), m.subject).version,
    );
    expect(versions).toEqual([1, 2, 3, 4, 5]);
    for (const m of messages) {
      const stored = (await s.jsm.direct.getMessage(s.settings.stream, {
        seq: Number(m.sequence),
      })) as StoredMsg;
      expect(Buffer.from(m.data)).toEqual(Buffer.from(stored.data));
      expect(m.subject).toBe(stored.subject);
    }
    // Past the end: an empty last page.
    const last = messages[messages.length - 1] as StoredEventMessage;
    const after = await query.listStoredEvents({ storyId: id, afterSequence: last.sequence });
    expect(after).toMatchObject({ messages: [], nextAfterSequence: 0n });
  });

  it("answers an empty last page past the stream's end, and INVALID_ARGUMENT past 2^53", async () => {
    const id = await commandedStory(1);
    const far = await query.listStoredEvents({
      storyId: id,
      afterSequence: BigInt(Number.MAX_SAFE_INTEGER),
    });
    expect(far).toMatchObject({ messages: [], nextAfterSequence: 0n });
    const error = await query
      .listStoredEvents({ storyId: id, afterSequence: 2n ** 63n })
      .catch((e) => e);
    expect(ConnectError.from(error).code).toBe(Code.InvalidArgument);
  });

  it("answers NOT_FOUND for a story without messages", async () => {
    const error = await query.listStoredEvents({ storyId: newStory() }).catch((e) => e);
    expect(ConnectError.from(error).code).toBe(Code.NotFound);
  });
});

describe("ContextAuditService", () => {
  const audit = (authorization?: string) =>
    createClient(
      ContextAuditService,
      createGrpcTransport({
        baseUrl: queryUrl,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", authorization ?? testAuth().authorization);
            return next(req);
          },
        ],
      }),
    );

  it("gives the whole stream as stored, page by page, to an auditor", async () => {
    await commandedStory(2);
    await commandedStory(1);
    const auditor = audit(`Bearer ${testAuth().sign({ roles: ["auditor"] })}`);
    const messages: StoredEventMessage[] = [];
    let after = 0n;
    do {
      const page = await auditor.listStreamMessages({ afterSequence: after, pageSize: 3 });
      expect(page.messages.length).toBeLessThanOrEqual(3);
      messages.push(...page.messages);
      after = page.nextAfterSequence;
    } while (after !== 0n);
    const info = await s.jsm.streams.info(s.settings.stream);
    expect(messages.map((m) => Number(m.sequence))).toEqual(
      Array.from({ length: info.state.last_seq }, (_, i) => i + 1),
    );
    for (const m of messages.slice(-3)) {
      const stored = (await s.jsm.direct.getMessage(s.settings.stream, {
        seq: Number(m.sequence),
      })) as StoredMsg;
      expect(Buffer.from(m.data)).toEqual(Buffer.from(stored.data));
      expect(m.subject).toBe(stored.subject);
    }
    // No checkpoint was ever signed on this stream: none, not an error.
    expect(await auditor.listAuditCheckpoints({})).toMatchObject({
      checkpoints: [],
      nextAfterSequence: 0n,
    });
  });

  it("is refused to a reader (PERMISSION_DENIED): it hands out every story at once", async () => {
    const reader = audit(`Bearer ${testAuth().sign({ roles: ["reader"] })}`);
    for (const call of [
      () => reader.listStreamMessages({}),
      () => reader.listAuditCheckpoints({}),
    ]) {
      const error = await call().catch((e) => e);
      expect(ConnectError.from(error).code).toBe(Code.PermissionDenied);
    }
  });
});

describe("the independent verifier (tools/audit/verify_chain.py)", () => {
  it("finds a commanded story intact, with the head the store has", async () => {
    const id = await commandedStory(6);
    const verdict = await pythonVerify(id, "--page-size", "3");
    expect(verdict.code).toBe(0);
    const head = await s.store.head(id);
    expect(verdict.result).toMatchObject({
      messages: 7,
      version: 7,
      hash: Buffer.from(head?.hash ?? []).toString("hex"),
      breaks: [],
    });
  });

  it("finds the breaks of a tampered story, the same ones ctx audit verify finds", async () => {
    const id = await commandedStory(3);
    const other = await commandedStory(1);
    const js = jetstream(s.nc);
    const story = await s.store.storyMessages(id);
    const last = ((await s.store.readStored(id))[3] as StoredEvent).envelope;
    const publish = (data: Uint8Array) =>
      js.publish(eventSubject(s.settings, id, "SubtaskAdded"), data);
    // Another story's event on its subject; one of its own events again; and a next version
    // whose content does not match its hash (a forged event with a copied hash).
    await publish(((await s.store.storyMessages(other))[1] as { data: Uint8Array }).data);
    await publish((story[1] as { data: Uint8Array }).data);
    const forged = {
      ...last,
      version: 5,
      prevHash: last.hash,
      payload: eventData.subtaskAdded({ subtaskId: "forged", title: "Forged" }),
    };
    await publish(storedEnvelopeBytes(forged));

    const verdict = await pythonVerify(id);
    expect(verdict.code).toBe(1);
    const found = verdict.result.breaks.map((b) => [b.kind, b.version]);
    // The commands wrote envelope version 2, which names no story: another story's event is no
    // link of this chain where it stands (a version 1 envelope would show as foreign-story).
    expect(found).toEqual([
      ["reordered", 2],
      ["reordered", 2],
      ["altered", 5],
    ]);

    const ctx = await runCtx(
      ["audit", "verify", "--story", id, "--json"],
      {
        ...process.env,
        ...stack().natsEnv,
        EVENT_STREAM: s.settings.stream,
        EVENT_SUBJECT_PREFIX: s.settings.subjectPrefix,
        EVENT_PARTITIONS: String(s.settings.partitions),
      },
      60_000,
    );
    expect(ctx.code).toBe(1);
    const audited = JSON.parse(ctx.stdout) as Verdict["result"];
    expect(audited.breaks.map((b) => [b.kind, b.version, b.sequence])).toEqual(
      verdict.result.breaks.map((b) => [b.kind, b.version, b.sequence]),
    );
  });

  it("says why when it cannot ask the service (exit 2)", async () => {
    const verdict = await new Promise<number | null>((resolve) => {
      execFile(
        "python3",
        [join(repoRoot, "tools/audit/verify_chain.py"), "--url", queryUrl, "--story", "s-1"],
        { env: { ...process.env, CTX_TOKEN: "" } },
        (error) => resolve(error ? (typeof error.code === "number" ? error.code : null) : 0),
      );
    });
    // Without a token the service answers UNAUTHENTICATED.
    expect(verdict).toBe(2);
  });
});
