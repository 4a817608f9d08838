import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { createLogger } from "@ctx/config";
import { type StoryId, storyId } from "@ctx/domain";
import {
  commandSnapshotNames,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  eventSubject,
  provisionCommandSnapshotStream,
  provisionEventStream,
} from "@ctx/event-store";
import { appendAsWritten, envelopeAsWritten } from "@ctx/event-store/testing";
import {
  ContextCommandService,
  ContextCreatedSchema,
  ContextEventSchema,
  ContextQueryService,
  SubtaskAddedSchema,
} from "@ctx/proto";
import { loadQueryConfig, startQueryApp } from "@ctx/query-service";
import {
  type CtxRun,
  connectTestNats,
  runCtx,
  sendTestToken,
  stack,
  storeEnv,
  testAuth,
  uniqueName,
} from "@ctx/test-support";
import {
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishForgedEvent } from "./testing/insider-stream.ts";

// Issue #20, defect 6: one bad stored event blocked a story for good. Schema version 99 made every
// read and command on the story FAILED_PRECONDITION, garbage bytes DATA_LOSS, an invalid story id
// inside the envelope INTERNAL (a RangeError). Now no answer is INTERNAL, every one names the
// message's stream sequence (message and trailer), and an operator brings the story back with
// `ctx stories repair`, recorded in the story's stream and visible in its history.

const logger = createLogger({ name: "stories-repair-e2e", level: "silent", pretty: false });

let nc: NatsConnection;
let jsm: JetStreamManager;
let settings: EventStreamSettings;
let parkedStream: string;
let store: EventStore;
let env: Record<string, string>;
const stoppers: (() => Promise<void>)[] = [];
/** The ops (metrics) addresses of the command and query services. */
const opsPorts: number[] = [];
let commands: ReturnType<typeof createClient<typeof ContextCommandService>>;
let queries: ReturnType<typeof createClient<typeof ContextQueryService>>;

beforeAll(async () => {
  const s = stack();
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  const name = uniqueName("REPAIR");
  settings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: 4,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  parkedStream = `${name}_PARKED`;
  await provisionEventStream(jsm, settings);
  await provisionCommandSnapshotStream(jsm, commandSnapshotNames(settings));
  store = createEventStore(nc, { names: settings });
  env = {
    ...s.natsEnv,
    // ctx runs as the operator's Valkey user.
    ...storeEnv(s, "ctx"),
    READ_MODEL_NAMESPACE: uniqueName("repair"),
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    PARKED_STREAM: parkedStream,
    PARKED_SUBJECT_PREFIX: parkedStream.toLowerCase(),
    SHUTDOWN_GRACE_MS: "2000",
    LOG_LEVEL: "silent",
    ...testAuth().env,
  };
  const command = await startCommandApp(
    loadCommandConfig({ ...env, COMMAND_LISTEN: "127.0.0.1:0", COMMAND_OPS_LISTEN: "127.0.0.1:0" }),
    logger,
  );
  stoppers.push(() => command.stop());
  opsPorts.push(command.opsPort);
  // No read models are written here: the query service answers from the event stream.
  const query = await startQueryApp(
    loadQueryConfig({
      ...env,
      QUERY_LISTEN: "127.0.0.1:0",
      QUERY_OPS_LISTEN: "127.0.0.1:0",
      SNAPSHOTS: "off",
      SNAPSHOTTER: "off",
    }),
    logger,
  );
  stoppers.push(() => query.stop());
  opsPorts.push(query.opsPort);
  commands = createClient(
    ContextCommandService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${command.rpcPort}`,
      interceptors: [sendTestToken],
    }),
  );
  queries = createClient(
    ContextQueryService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${query.rpcPort}`,
      interceptors: [sendTestToken],
    }),
  );
});

afterAll(async () => {
  for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
  await jsm?.streams.delete(settings.stream).catch(() => undefined);
  await jsm?.streams.delete(commandSnapshotNames(settings).stream).catch(() => undefined);
  await jsm?.streams.delete(parkedStream).catch(() => undefined);
  await nc?.close();
});

/** Runs `bin/ctx` as an operator would, on this test's stream. */
function ctx(...args: string[]): Promise<CtxRun> {
  return runCtx(args, { ...process.env, ...env }, 30_000);
}

/** What a call failed with (undefined when it did not). */
async function failure(call: Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await call;
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

async function newStoryWithTwoEvents(): Promise<StoryId> {
  const id = storyId(uniqueName("story"));
  await commands.createContext({ storyId: id, title: "Checkout" });
  await commands.addSubtask({ storyId: id, subtaskId: "s1", title: "Pay" });
  return id;
}

/** The three ways of issue #20: each stores one message on the story's subject, past the store. */
const corruptions = {
  "schema version 99": async (id: StoryId) => {
    await appendAsWritten(nc, store, id, [
      {
        eventType: "SubtaskAdded",
        schemaVersion: 99,
        payloadSchema: SubtaskAddedSchema,
        payload: create(SubtaskAddedSchema, { subtaskId: "s99", title: "from the future" }),
        occurredAt: new Date(),
      },
    ]);
    return (await jsm.streams.info(settings.stream)).state.last_seq;
  },
  "garbage bytes": async (id: StoryId) =>
    (
      await jetstream(nc).publish(
        eventSubject(settings, id, "SubtaskAdded"),
        new Uint8Array([0x0a, 0xff, 0xff, 0x01, 0x02]),
      )
    ).seq,
  "an invalid story id in the envelope": async (id: StoryId) => {
    const envelope = envelopeAsWritten("-not a story-", 3, new Uint8Array(0), {
      eventType: "ContextCreated",
      schemaVersion: 1,
      payloadSchema: ContextCreatedSchema,
      payload: create(ContextCreatedSchema, { title: "forged" }),
      occurredAt: new Date(),
    });
    return (
      await jetstream(nc).publish(
        eventSubject(settings, id, "ContextCreated"),
        toBinary(ContextEventSchema, envelope),
      )
    ).seq;
  },
  // Issue #25: an envelope that reads well, on the right subject, after the story's head, whose
  // hash is not its content's. The command service used to chain the next event onto it.
  "a forged event with an all-zero hash": (id: StoryId) =>
    publishForgedEvent(nc, store, id, { hash: new Uint8Array(32) }),
} as const;

describe("a story blocked by one bad stored message", () => {
  it.each([
    ["schema version 99", Code.FailedPrecondition],
    ["garbage bytes", Code.DataLoss],
    ["an invalid story id in the envelope", Code.DataLoss],
    ["a forged event with an all-zero hash", Code.DataLoss],
  ] as const)(
    "given %s, then every read and command fails with code %i naming the message, and ctx stories repair brings the story back, on the record",
    async (kind, code) => {
      const id = await newStoryWithTwoEvents();
      const sequence = await corruptions[kind](id);
      const raw = (await jsm.direct.getMessage(settings.stream, { seq: sequence })) as StoredMsg;

      // Every call that has to read past the message (versions before it still read).
      const calls = {
        AddSubtask: () => commands.addSubtask({ storyId: id, subtaskId: "s2", title: "Ship" }),
        GetContext: () => queries.getContext({ storyId: id }),
        GetContextAtTime: () =>
          queries.getContextAtTime({ storyId: id, timestamp: timestampFromDate(new Date()) }),
        ListEvents: () => queries.listEvents({ storyId: id }),
      };
      for (const [method, call] of Object.entries(calls)) {
        const error = await failure(call());
        expect(error?.code, method).toBe(code);
        expect(error?.message, method).toMatch(
          new RegExp(`stream message ${sequence} of story ${id}`),
        );
        expect(error?.metadata.get("x-stream-sequence"), method).toBe(String(sequence));
      }

      // The whole stream's stats say a message cannot be read (the stories of the tests before
      // this one are repaired already).
      const stats = await ctx("events", "stats");
      expect(stats.code).toBe(1);
      expect(stats.stdout).toMatch(/UNREADABLE/);

      // The audit finds bytes that are no link of the story's chain, until they are set aside
      // (below); an event of an unknown schema version is a sound link no reader can read.
      const audited = await ctx("audit", "verify", "--story", id);
      if (kind === "schema version 99") {
        expect(audited.code).toBe(0);
      } else {
        expect(audited.code).toBe(1);
        expect(audited.stdout).toContain(`stream message ${sequence} (`);
      }

      const checked = await ctx("stories", "check", "--story", id);
      expect(checked.code).toBe(1);
      expect(checked.stdout).toMatch(new RegExp(`${sequence} .*UNREADABLE`));
      expect(checked.stdout).toContain(`--sequence ${sequence}`);

      const repaired = await ctx(
        "stories",
        "repair",
        "--story",
        id,
        "--sequence",
        String(sequence),
        "--reason",
        `bad bytes from a test (${kind})`,
        "--operator",
        "e2e",
      );
      expect(repaired.stderr).toBe("");
      expect(repaired.code).toBe(0);
      expect(repaired.stdout).toMatch(new RegExp(`set aside stream message ${sequence}`));

      // Commands and reads work again; the repair is version 3 (4 when the bad event held a
      // version: a link of the chain, whose content no reader reads).
      const heldVersion =
        kind === "schema version 99" || kind === "a forged event with an all-zero hash";
      const repairVersion = heldVersion ? 4 : 3;
      const added = await commands.addSubtask({ storyId: id, subtaskId: "s2", title: "Ship" });
      expect(added.result?.version).toBe(repairVersion + 1);
      const context = await queries.getContext({ storyId: id });
      expect(context.version).toBe(repairVersion + 1);
      expect(context.context?.subtasks.map((s) => s.subtaskId)).toEqual(["s1", "s2"]);

      const history = await queries.listEvents({ storyId: id });
      const repair = history.events.find((e) => e.eventType === "EventsSetAside");
      expect(repair?.version).toBe(repairVersion);
      expect(repair?.payload.case).toBe("eventsSetAside");
      const value = repair?.payload.case === "eventsSetAside" ? repair.payload.value : undefined;
      expect(value?.reason).toBe(`bad bytes from a test (${kind})`);
      expect(value?.operator).toBe("e2e");
      expect(value?.setAside).toHaveLength(1);
      expect(value?.setAside[0]?.sequence).toBe(BigInt(sequence));
      expect(value?.setAside[0]?.version).toBe(heldVersion ? 3 : 0);
      expect(Buffer.from(value?.setAside[0]?.sha256 ?? [])).toEqual(
        createHash("sha256").update(raw.data).digest(),
      );

      // Never silent: both services count the set-aside message their reads passed over.
      for (const port of opsPorts) {
        const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        expect(metrics).toMatch(/^ctx_event_store_set_aside_read_total [1-9]/m);
      }

      const after = await ctx("stories", "check", "--story", id);
      expect(after.code).toBe(0);
      expect(after.stdout).toMatch(new RegExp(`${sequence} .*SET ASIDE`));
      // The repair is on the record: the story's chain is intact, the message set aside with it.
      const auditedAfter = await ctx("audit", "verify", "--story", id);
      expect(auditedAfter.stdout).toContain("every hash chain is intact");
      expect(auditedAfter.code).toBe(0);
      const statsAfter = await ctx("events", "stats");
      expect(statsAfter.stdout).toMatch(/set aside \(EventsSetAside\)/);
      expect(statsAfter.stdout).not.toMatch(/UNREADABLE/);
      expect(statsAfter.code).toBe(0);
    },
  );
});
