import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { ConfigError, createLogger } from "@ctx/config";
import { type StoryId, storyId } from "@ctx/domain";
import {
  type ChainBreak,
  checkEventSignature,
  commandSnapshotNames,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  eventSubject,
  loadKeyFolder,
  provisionCommandSnapshotStream,
  provisionEventStream,
  SIGNATURE_HEADER,
} from "@ctx/event-store";
import { testStreamSettings } from "@ctx/event-store/testing";
import { ContextCommandService } from "@ctx/proto";
import {
  connectTestNats,
  runCtx,
  sendTestToken,
  stack,
  testAuth,
  uniqueName,
} from "@ctx/test-support";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishForgedEvent } from "./testing/insider-stream.ts";
import { pythonVerifyAll } from "./testing/python-verifier.ts";

// Issue #25: signed events. With EVENT_SIGNING_KEY_FILE the command service signs every event it
// appends (HMAC-SHA256 of its hash, in its Ctx-Signature header), so that someone who can write the
// stream but does not hold the key cannot add an event unseen, even after the last checkpoint: an
// unsigned event after signed ones of its story, or one signed with another key, is a break for
// `ctx audit verify --event-keys` and for the independent verifier alike.

const logger = createLogger({ name: "audit-signing", level: "silent", pretty: false });

let nc: NatsConnection;
let jsm: JetStreamManager;
let settings: EventStreamSettings;
let store: EventStore;
let keys: string;
let env: Record<string, string>;
const stoppers: (() => Promise<void>)[] = [];
let commands: ReturnType<typeof createClient<typeof ContextCommandService>>;

function ctx(...args: string[]) {
  return runCtx(args, env, 60_000);
}

function commandConfig(extra: Record<string, string>) {
  return loadCommandConfig({
    ...stack().natsEnv,
    ...testAuth().env,
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    COMMAND_LISTEN: "127.0.0.1:0",
    COMMAND_OPS_LISTEN: "127.0.0.1:0",
    SHUTDOWN_GRACE_MS: "1000",
    LOG_LEVEL: "silent",
    ...extra,
  });
}

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  // Forging takes no more than publishing: a stream provisioned as usual, which the command service
  // accepts.
  settings = testStreamSettings(uniqueName("SIGNED"));
  await provisionEventStream(jsm, settings);
  await provisionCommandSnapshotStream(jsm, commandSnapshotNames(settings));
  store = createEventStore(nc, { names: settings });
  keys = join(await mkdtemp(join(tmpdir(), "ctx-event-keys-")), "keys");
  env = {
    ...process.env,
    ...stack().natsEnv,
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    LOG_LEVEL: "silent",
  } as Record<string, string>;
  expect((await ctx("audit", "keygen", "--keys", keys, "--key-id", "events-1")).code).toBe(0);
  const app = await startCommandApp(
    commandConfig({ EVENT_SIGNING_KEY_FILE: join(keys, "events-1") }),
    logger,
  );
  stoppers.push(() => app.stop());
  commands = createClient(
    ContextCommandService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${app.rpcPort}`,
      interceptors: [sendTestToken],
    }),
  );
});

afterAll(async () => {
  for (const stop of stoppers) await stop().catch(() => undefined);
  await jsm?.streams.delete(settings.stream).catch(() => undefined);
  await jsm?.streams.delete(commandSnapshotNames(settings).stream).catch(() => undefined);
  await nc?.close();
});

async function signedStory(): Promise<StoryId> {
  const id = storyId(uniqueName("signed"));
  await commands.createContext({ storyId: id, title: "Signed" });
  await commands.addSubtask({ storyId: id, subtaskId: "t1", title: "One" });
  await commands.applyChanges({
    storyId: id,
    changes: [
      { change: { case: "addSubtask", value: { subtaskId: "t2", title: "Two" } } },
      { change: { case: "addSubtask", value: { subtaskId: "t3", title: "Three" } } },
    ],
  });
  return id;
}

/** An event after the story's head, hashed by the rule (anyone can), signed as given. */
const forge = (id: StoryId, signature?: string) =>
  publishForgedEvent(nc, store, id, signature === undefined ? {} : { signature });

interface Verified {
  readonly code: number;
  readonly result: {
    eventSignatures: { signed: number; unsigned: number; checked: boolean };
    breaks: ChainBreak[];
  };
}

async function verifyStory(id: string): Promise<Verified> {
  const run = await ctx("audit", "verify", "--story", id, "--event-keys", keys, "--json");
  return { code: run.code, result: JSON.parse(run.stdout) as Verified["result"] };
}

describe("signed events", () => {
  it("are signed by the command service with its key, every one, batches included", async () => {
    const id = await signedStory();
    const messages = await store.storyMessages(id);
    expect(messages).toHaveLength(4);
    const eventKeys = loadKeyFolder(keys);
    for (const m of messages) {
      const stored = await jsm.direct.getMessage(settings.stream, { seq: m.seq });
      const signature = stored?.header.get(SIGNATURE_HEADER) ?? "";
      expect(signature).toMatch(/^events-1:[A-Za-z0-9_-]{43}$/);
      const { hash } = (await store.readAt(m.seq))?.envelope ?? { hash: new Uint8Array(0) };
      expect(checkEventSignature(signature, hash, eventKeys).verdict).toBe("valid");
    }
    const v = await verifyStory(id);
    expect(v.code).toBe(0);
    expect(v.result.eventSignatures).toEqual({ signed: 4, unsigned: 0, checked: true });
  });

  it("find an event added without the key: unsigned, or signed with a key not given, or a forged signature", async () => {
    const unsigned = await signedStory();
    const unsignedAt = await forge(unsigned);
    const otherKey = await signedStory();
    const otherKeyAt = await forge(otherKey, `events-0:${"A".repeat(43)}`);
    const wrongMac = await signedStory();
    const wrongMacAt = await forge(wrongMac, `events-1:${"A".repeat(43)}`);

    const found = async (id: string) =>
      (await verifyStory(id)).result.breaks.map((b) => [b.kind, b.sequence]);
    expect(await found(unsigned)).toEqual([["unsigned", unsignedAt]]);
    expect(await found(otherKey)).toEqual([["signature", otherKeyAt]]);
    expect(await found(wrongMac)).toEqual([["signature", wrongMacAt]]);
    // Without the keys, the unsigned event is still found; the signatures are not checked.
    const unchecked = await ctx("audit", "verify", "--story", wrongMac, "--json");
    expect(JSON.parse(unchecked.stdout).breaks).toEqual([]);
    expect(JSON.parse(unchecked.stdout).eventSignatures.checked).toBe(false);

    // The whole stream, by ctx and by the independent verifier: the same breaks.
    const all = await ctx("audit", "verify", "--all", "--event-keys", keys, "--json");
    expect(all.code).toBe(1);
    const ours = (JSON.parse(all.stdout) as Verified["result"]).breaks.map((b) => [
      b.kind,
      b.sequence,
    ]);
    expect(ours).toEqual([
      ["unsigned", unsignedAt],
      ["signature", otherKeyAt],
      ["signature", wrongMacAt],
    ]);
    const python = await pythonVerifyAll(settings, "--event-keys", keys);
    expect(python.code).toBe(1);
    expect(python.result.breaks.map((b) => [b.kind, b.sequence])).toEqual(ours);
  });

  it("take a repair by ctx as it is: unsigned without the key, signed with it", async () => {
    const repairOf = async (withKey: boolean) => {
      const id = await signedStory();
      const garbage = await jetstream(nc).publish(
        eventSubject(settings, id, "SubtaskAdded"),
        new Uint8Array([0x0a, 0xff, 0xff]),
      );
      const repaired = await runCtx(
        ["stories", "repair", "--story", id, "--sequence", String(garbage.seq), "--reason", "test"],
        { ...env, ...(withKey ? { EVENT_SIGNING_KEY_FILE: join(keys, "events-1") } : {}) },
        60_000,
      );
      expect(repaired.code, repaired.stderr).toBe(0);
      return id;
    };
    const unsignedRepair = await verifyStory(await repairOf(false));
    expect(unsignedRepair.code).toBe(0);
    expect(unsignedRepair.result.eventSignatures).toEqual({
      signed: 4,
      unsigned: 1,
      checked: true,
    });
    const signedRepair = await verifyStory(await repairOf(true));
    expect(signedRepair.code).toBe(0);
    expect(signedRepair.result.eventSignatures).toEqual({ signed: 5, unsigned: 0, checked: true });
  });

  it("refuses to start on a key file that is missing or too short, naming the variable", async () => {
    await expect(
      startCommandApp(commandConfig({ EVENT_SIGNING_KEY_FILE: join(keys, "nope") }), logger),
    ).rejects.toThrow(ConfigError);
    await expect(
      startCommandApp(commandConfig({ EVENT_SIGNING_KEY_FILE: join(keys, "nope") }), logger),
    ).rejects.toThrow(/EVENT_SIGNING_KEY_FILE/);
  });
});
