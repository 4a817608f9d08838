import type { StoryId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  type ChainBreak,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  eventHash,
  eventSubject,
  type StoredEvent,
  type StoredMessage,
  storedEnvelopeBytes,
  storySubjects,
} from "@ctx/event-store";
import { connectTestNats, runCtx, stack } from "@ctx/test-support";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fourEventStory, insiderStream } from "./testing/insider-stream.ts";
import { pythonVerifyAll } from "./testing/python-verifier.ts";

// Issue #25: `ctx audit verify` recomputes every story's hash chain from the bytes the stream
// holds. Each way of tampering with stored events is done here as someone with NATS rights would
// (purging a story and publishing it again changed, deleting a message, publishing another story's
// event on its subject), and each is found, named, and makes ctx exit 1.

/** A stored message and the event type it is (the last token of its subject). */
interface TypedBytes {
  readonly eventType: string;
  readonly data: Uint8Array;
}

// The same tampering, on histories written in either envelope version.
for (const envelopeVersion of [1, 2] as const) {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let settings: EventStreamSettings;
  let store: EventStore;
  let env: Record<string, string>;

  beforeAll(async () => {
    nc = await connectTestNats();
    jsm = await jetstreamManager(nc);
    settings = await insiderStream(jsm, `AUDIT_V${envelopeVersion}`);
    store = createEventStore(nc, { names: settings, envelopeVersion });
    env = {
      ...stack().natsEnv,
      EVENT_STREAM: settings.stream,
      EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
      EVENT_PARTITIONS: String(settings.partitions),
      LOG_LEVEL: "silent",
    };
  });

  afterAll(async () => {
    await jsm?.streams.delete(settings.stream).catch(() => undefined);
    await nc?.close();
  });

  const writtenStory = (label: string) => fourEventStory(store, label);

  /**
   * Rewrites a story as someone with NATS rights can: purges it and publishes `messages` again, each
   * on the subject of the event type it is.
   */
  async function rewrite(id: StoryId, messages: readonly TypedBytes[]): Promise<void> {
    await jsm.streams.purge(settings.stream, { filter: storySubjects(settings, id) });
    const js = jetstream(nc);
    for (const { eventType, data } of messages) {
      await js.publish(eventSubject(settings, id, eventType), data);
    }
  }

  /**
   * The story's stored messages, their events as the store reads them, and a changed copy of one of
   * them (`rehash`: hashed again, as its writer would have).
   */
  async function stored(id: StoryId) {
    const messages = await store.storyMessages(id);
    const events = await store.readStored(id);
    const typed = (i: number): TypedBytes => ({
      eventType: (events[i] as StoredEvent).eventType,
      data: (messages[i] as StoredMessage).data,
    });
    return {
      messages,
      events,
      bytes: messages.map((_, i) => typed(i)),
      changed(index: number, rehash: boolean): TypedBytes {
        const envelope = { ...(events[index] as StoredEvent).envelope };
        envelope.payload = eventData.subtaskAdded({ subtaskId: "t0", title: "rewritten" });
        if (rehash) envelope.hash = eventHash(envelope);
        return { eventType: "SubtaskAdded", data: storedEnvelopeBytes(envelope) };
      },
    };
  }

  interface Verified {
    readonly code: number | null;
    readonly result: { stories: number; messages: number; breaks: ChainBreak[] };
  }

  async function verify(...args: string[]): Promise<Verified> {
    const run = await runCtx(
      ["audit", "verify", ...args, "--json"],
      { ...process.env, ...env },
      60_000,
    );
    return { code: run.code, result: JSON.parse(run.stdout) as Verified["result"] };
  }

  const kinds = (v: Verified) => v.result.breaks.map((b) => [b.kind, b.version]);

  describe(`ctx audit verify, events in envelope version ${envelopeVersion}`, () => {
    it("finds nothing wrong with stories as the store wrote them, and exits 0", async () => {
      const id = await writtenStory("intact");
      const v = await verify("--story", id);
      expect(v.code).toBe(0);
      expect(v.result).toMatchObject({ stories: 1, messages: 4, breaks: [] });
    });

    it("finds an altered payload, with the hash its content has and the hash stored", async () => {
      const id = await writtenStory("altered");
      const s = await stored(id);
      await rewrite(id, [s.bytes[0], s.changed(1, false), s.bytes[2], s.bytes[3]] as TypedBytes[]);
      const v = await verify("--story", id);
      expect(v.code).toBe(1);
      expect(kinds(v)).toEqual([["altered", 2]]);
      const [found] = v.result.breaks;
      expect(found?.actual).toBe(
        Buffer.from((s.events[1] as StoredEvent).envelope.hash).toString("hex"),
      );
      // The whole SHA-256 in version 1, its first 16 bytes in version 2.
      expect(found?.expected).toMatch(envelopeVersion === 1 ? /^[0-9a-f]{64}$/ : /^[0-9a-f]{32}$/);
      expect(found?.expected).not.toBe(found?.actual);
    });

    it("finds an event altered and hashed again, where the next event links to it", async () => {
      const id = await writtenStory("rehashed");
      const s = await stored(id);
      await rewrite(id, [s.bytes[0], s.changed(1, true), s.bytes[2], s.bytes[3]] as TypedBytes[]);
      expect(kinds(await verify("--story", id))).toEqual([["altered", 3]]);
    });

    it("finds a removed event", async () => {
      const id = await writtenStory("removed");
      const s = await stored(id);
      await jsm.streams.deleteMessage(settings.stream, (s.messages[1] as StoredMessage).seq, true);
      const v = await verify("--story", id);
      expect(kinds(v)).toEqual([["missing", 3]]);
      expect(v.result.breaks[0]?.sequence).toBe((s.messages[2] as StoredMessage).seq);
    });

    it("finds reordered events", async () => {
      const id = await writtenStory("reordered");
      const s = await stored(id);
      await rewrite(id, [s.bytes[0], s.bytes[2], s.bytes[1], s.bytes[3]] as TypedBytes[]);
      expect(kinds(await verify("--story", id))).toEqual([
        ["missing", 3],
        ["reordered", 2],
      ]);
    });

    it("finds another story's event stored on a story's subject", async () => {
      const id = await writtenStory("target");
      const other = await stored(await writtenStory("source"));
      await jetstream(nc).publish(
        eventSubject(settings, id, "SubtaskAdded"),
        (other.bytes[3] as TypedBytes).data,
      );
      const v = await verify("--story", id);
      // A version 1 envelope names its story; a version 2 one does not (its subject does), and
      // its hash, which covers the story, says only that it is no link of this story's chain.
      expect(kinds(v)).toEqual([[envelopeVersion === 1 ? "foreign-story" : "reordered", 4]]);
      expect(v.result.breaks[0]).toMatchObject({ storyId: id });
      if (envelopeVersion === 1) expect(v.result.breaks[0]).toMatchObject({ expected: id });
    });

    it("with --all, verifies every story of the stream and lists every break", async () => {
      const v = await verify("--all");
      expect(v.code).toBe(1);
      expect(v.result.stories).toBe(7);
      const moved = envelopeVersion === 1 ? "foreign-story" : "reordered";
      expect(v.result.breaks.map((b) => b.kind).sort()).toEqual(
        ["altered", "altered", moved, "missing", "missing", "reordered"].sort(),
      );
      // In stream order.
      const sequences = v.result.breaks.map((b) => b.sequence);
      expect(sequences).toEqual([...sequences].sort((a, b) => a - b));

      // The independent verifier, from the bytes the query service hands out, finds the same.
      const python = await pythonVerifyAll(settings);
      expect(python.code).toBe(1);
      expect(python.result.stories).toBe(7);
      const found = (breaks: readonly { kind: string; sequence: number; version: number }[]) =>
        breaks.map((b) => [b.kind, b.sequence, b.version]);
      expect(found(python.result.breaks)).toEqual(found(v.result.breaks));
    });

    it("says how it is used when given neither --story nor --all (exit 2)", async () => {
      const run = await runCtx(["audit", "verify"], { ...process.env, ...env }, 30_000);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("--story <id> or --all");
    });
  });
}
