import { statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { eventData } from "@ctx/domain/testing";
import {
  type ChainBreak,
  checkpointNames,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  eventHash,
  eventSubject,
  signCheckpoint,
  storedEnvelopeBytes,
  storySubjects,
} from "@ctx/event-store";
import { AuditCheckpointSchema } from "@ctx/proto";
import { connectTestNats, runCtx, stack } from "@ctx/test-support";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fourEventStory, insiderStream } from "./testing/insider-stream.ts";
import { pythonVerifyAll } from "./testing/python-verifier.ts";

// Issue #25: signed checkpoints. `ctx audit checkpoint` signs what the event stream holds (a stream
// hash over every message, HMAC-SHA256 with a key from a folder), and `ctx audit verify --all`
// checks the stream against every checkpoint: a story rewritten and re-hashed after a checkpoint,
// whose own chain verifies, and messages removed at a story's end, are found; so is a checkpoint
// no key signed. The streams here let deletes and purges through, as a stream an insider recreated
// would.

let nc: NatsConnection;
let jsm: JetStreamManager;
const streams: string[] = [];

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  for (const name of streams) await jsm?.streams.delete(name).catch(() => undefined);
  await nc?.close();
});

interface Stream {
  readonly settings: EventStreamSettings;
  readonly store: EventStore;
  ctx(...args: string[]): ReturnType<typeof runCtx>;
}

/** An event stream of its own, without deny_delete and deny_purge, and ctx pointed at it. */
async function stream(): Promise<Stream> {
  const settings = await insiderStream(jsm, "CKPT");
  streams.push(settings.stream, checkpointNames(settings).stream);
  const env = {
    ...process.env,
    ...stack().natsEnv,
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    LOG_LEVEL: "silent",
  };
  return {
    settings,
    store: createEventStore(nc, { names: settings }),
    ctx: (...args) => runCtx(args, env, 60_000),
  };
}

const writtenStory = (s: Stream, label: string) => fourEventStory(s.store, label);

async function keysWith(...ids: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ctx-audit-keys-"));
  for (const id of ids) {
    const made = await runCtx(
      ["audit", "keygen", "--keys", dir, "--key-id", id],
      process.env,
      30_000,
    );
    expect(made.code, made.stderr).toBe(0);
  }
  return dir;
}

interface Verified {
  readonly code: number;
  readonly result: {
    checkpoints: { found: number; matched: number; signaturesChecked: boolean };
    breaks: ChainBreak[];
  };
}

/**
 * `ctx audit verify --all --keys` over the stream; and the independent verifier (Python, through
 * the query service) must come to the same verdict: the same breaks, the same checkpoint counts.
 */
async function verifyAll(s: Stream, keys: string): Promise<Verified> {
  const run = await s.ctx("audit", "verify", "--all", "--keys", keys, "--json");
  const verified = { code: run.code, result: JSON.parse(run.stdout) as Verified["result"] };
  const python = await pythonVerifyAll(s.settings, "--keys", keys);
  expect(python.code, "the Python verifier's exit code").toBe(verified.code);
  const found = (breaks: readonly { kind: string; sequence: number }[]) =>
    breaks.map((b) => [b.kind, b.sequence]);
  expect(found(python.result.breaks)).toEqual(found(verified.result.breaks));
  const { found: count, matched, signatures_checked } = python.result.checkpoints;
  expect({ found: count, matched, signaturesChecked: signatures_checked }).toEqual(
    verified.result.checkpoints,
  );
  return verified;
}

async function checkpoint(s: Stream, keys: string, ...extra: string[]) {
  const run = await s.ctx("audit", "checkpoint", "--keys", keys, ...extra, "--json");
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as {
    written: boolean;
    messages: number;
    hashed: number;
    keyId: string;
  };
}

describe("signed checkpoints", () => {
  it("sign the stream as it grows, across a key rotation, and the stream verifies against them", async () => {
    const s = await stream();
    await writtenStory(s, "first");
    await writtenStory(s, "second");
    const keys = await keysWith("k1");
    expect(statSync(join(keys, "k1")).mode & 0o777).toBe(0o600);

    expect(await checkpoint(s, keys)).toMatchObject({
      written: true,
      messages: 8,
      hashed: 8,
      keyId: "k1",
    });
    // Nothing new: nothing written.
    expect(await checkpoint(s, keys)).toMatchObject({ written: false, messages: 8, hashed: 0 });

    // A new key: the old one stays in the folder to verify what it signed.
    await writtenStory(s, "third");
    const rotated = await runCtx(
      ["audit", "keygen", "--keys", keys, "--key-id", "k2"],
      process.env,
      30_000,
    );
    expect(rotated.code).toBe(0);
    expect(await checkpoint(s, keys, "--key-id", "k2")).toMatchObject({
      written: true,
      messages: 12,
      hashed: 4,
      keyId: "k2",
    });

    const v = await verifyAll(s, keys);
    expect(v.code).toBe(0);
    expect(v.result.checkpoints).toEqual({ found: 2, matched: 2, signaturesChecked: true });
    expect(v.result.breaks).toEqual([]);
  });

  it("with --min-events, sign every N events, or once the last checkpoint is --max-age old", async () => {
    const s = await stream();
    await writtenStory(s, "one");
    const keys = await keysWith("k1");
    // The first checkpoint is always written.
    expect(await checkpoint(s, keys, "--min-events", "5")).toMatchObject({
      written: true,
      messages: 4,
    });
    await writtenStory(s, "two");
    const early = await checkpoint(s, keys, "--min-events", "5");
    expect(early).toMatchObject({ written: false, messages: 4, hashed: 0 });
    expect((early as { waiting?: string }).waiting).toMatch(
      /^4 message\(s\) since the last checkpoint/,
    );
    await writtenStory(s, "three");
    expect(await checkpoint(s, keys, "--min-events", "5")).toMatchObject({
      written: true,
      messages: 12,
      hashed: 8,
    });
    await writtenStory(s, "four");
    expect(await checkpoint(s, keys, "--min-events", "100", "--max-age", "1h")).toMatchObject({
      written: false,
    });
    // Signed at a whole second: two seconds later it is surely a second old.
    await new Promise((r) => setTimeout(r, 2_100));
    expect(await checkpoint(s, keys, "--min-events", "100", "--max-age", "1s")).toMatchObject({
      written: true,
      messages: 16,
    });
    expect((await verifyAll(s, keys)).result.checkpoints).toEqual({
      found: 3,
      matched: 3,
      signaturesChecked: true,
    });
  });

  it("find a story rewritten and re-hashed after a checkpoint, whose own chain verifies", async () => {
    const s = await stream();
    const id = await writtenStory(s, "rewritten");
    await writtenStory(s, "untouched");
    const keys = await keysWith("k1");
    await checkpoint(s, keys);

    // The insider changes version 2 and hashes the whole story again, so that every link holds.
    const stored = await s.store.readStored(id);
    await jsm.streams.purge(s.settings.stream, { filter: storySubjects(s.settings, id) });
    let prevHash: Uint8Array = new Uint8Array(0);
    for (const event of stored) {
      const envelope = { ...event.envelope };
      if (envelope.version === 2) {
        envelope.payload = eventData.subtaskAdded({ subtaskId: "t0", title: "rewritten" });
      }
      envelope.prevHash = prevHash;
      envelope.hash = eventHash(envelope);
      prevHash = envelope.hash;
      await jetstream(nc).publish(
        eventSubject(s.settings, id, envelope.eventType),
        storedEnvelopeBytes(envelope),
      );
    }

    const story = await s.ctx("audit", "verify", "--story", id);
    expect(story.code, "the story's own chain cannot show it").toBe(0);
    const v = await verifyAll(s, keys);
    expect(v.code).toBe(1);
    expect(v.result.breaks.map((b) => b.kind)).toEqual(["checkpoint"]);
    expect(v.result.checkpoints).toMatchObject({ found: 1, matched: 0 });
  });

  it("find the last event of a story removed after a checkpoint", async () => {
    const s = await stream();
    const id = await writtenStory(s, "truncated");
    const keys = await keysWith("k1");
    await checkpoint(s, keys);
    const stored = await s.store.storyMessages(id);
    await jsm.streams.deleteMessage(s.settings.stream, stored[3]?.seq ?? 0, true);

    expect((await s.ctx("audit", "verify", "--story", id)).code).toBe(0);
    const v = await verifyAll(s, keys);
    expect(v.code).toBe(1);
    expect(v.result.breaks).toMatchObject([{ kind: "checkpoint", sequence: stored[3]?.seq }]);
  });

  it("report a checkpoint no key of the folder signed, and sign nothing after it", async () => {
    const s = await stream();
    await writtenStory(s, "forged");
    const keys = await keysWith("k1");
    await checkpoint(s, keys);
    // A checkpoint written by someone with NATS rights but not the key.
    await writtenStory(s, "more");
    const last = (await jsm.streams.info(s.settings.stream)).state;
    const forged = signCheckpoint(
      s.settings.stream,
      { sequence: last.last_seq, messages: last.messages, hash: new Uint8Array(32) },
      { id: "k1", secret: new TextEncoder().encode("x".repeat(40)) },
    );
    await jetstream(nc).publish(
      checkpointNames(s.settings).subject,
      toBinary(AuditCheckpointSchema, forged),
    );

    const v = await verifyAll(s, keys);
    expect(v.code).toBe(1);
    expect(v.result.breaks.map((b) => b.kind)).toEqual(["checkpoint-signature"]);
    expect(v.result.checkpoints).toMatchObject({ found: 2, matched: 1 });
    const refused = await s.ctx("audit", "checkpoint", "--keys", keys);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("not signed by any of the keys given");
  });
});
