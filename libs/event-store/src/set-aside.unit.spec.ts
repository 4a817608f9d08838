import { create, type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { ContextEventSchema, SetAsideMessageSchema, SubtaskAddedSchema } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { contextEventUpcaster } from "./codec.ts";
import { type RecordedEvent, verifyChain } from "./index.ts";
import {
  planSetAside,
  type SetAsideIndex,
  type StoredMessage,
  setAsideEntry,
} from "./set-aside.ts";
import { sha256 } from "./sha256.ts";
import { envelopeAsWritten } from "./testing/index.ts";

// What a set-aside request comes to, from a story's stored messages: the version each message
// held, where the chain goes on, and what is refused.

const story = "s-1";
const at = new Date("2026-05-06T07:08:09.000Z");

/** A story's stored messages being written: envelopes chained as the store chains them. */
function storyStream() {
  const messages: StoredMessage[] = [];
  let seq = 10;
  let version = 0;
  let hash: Uint8Array = new Uint8Array(0);
  const put = (type: string, data: Uint8Array) => {
    seq += 1;
    messages.push({ seq, subject: `ctx.events.2.${story}.${type}`, data, time: at });
    return seq;
  };
  const envelope = (
    of: string,
    v: number,
    prev: Uint8Array,
    schemaVersion = 1,
    payloadSchema: DescMessage = SubtaskAddedSchema,
    payload: Message = create(SubtaskAddedSchema, { subtaskId: `t${v}`, title: "t" }),
  ) =>
    envelopeAsWritten(of, v, prev, {
      eventType: "SubtaskAdded",
      schemaVersion,
      payloadSchema,
      payload,
      occurredAt: at,
    });
  return {
    messages,
    /** The story's next event, chained onto the one before. */
    event(schemaVersion = 1) {
      version += 1;
      const e = envelope(story, version, hash, schemaVersion);
      hash = e.hash;
      return put("SubtaskAdded", toBinary(ContextEventSchema, e));
    },
    garbage: () => put("SubtaskAdded", new Uint8Array([0xff, 0xff, 3])),
    /** Another story's envelope on this story's subject. */
    foreign: () =>
      put("SubtaskAdded", toBinary(ContextEventSchema, envelope("s-2", version + 1, hash))),
    /** A second message at the story's current version. */
    repeat: () => put("SubtaskAdded", toBinary(ContextEventSchema, envelope(story, version, hash))),
    get hash() {
      return hash;
    },
  };
}

const plan = (messages: readonly StoredMessage[], requested: number[], earlier?: SetAsideIndex) =>
  planSetAside(story, messages, earlier ?? new Map(), requested, contextEventUpcaster);

describe("planSetAside", () => {
  it("given garbage, another story's envelope or a repeated version, then it holds no version and the chain ends where it did", () => {
    const s = storyStream();
    s.event();
    s.event();
    const hash = s.hash;
    const bad = [s.garbage(), s.foreign(), s.repeat()];
    const result = plan(s.messages, bad);
    expect(result.added.map((e) => [Number(e.sequence), e.version])).toEqual(
      bad.map((seq) => [seq, 0]),
    );
    expect(result.added.map((e) => e.problem)).toEqual([
      expect.stringMatching(/undecodable protobuf/),
      expect.stringMatching(/envelope names story "s-2"/),
      expect.stringMatching(/version 2 repeats/),
    ]);
    expect(result).toMatchObject({ version: 2, lastSequence: bad[2] });
    expect(Buffer.from(result.hash)).toEqual(Buffer.from(hash));
    expect(result.added[0]?.sha256).toEqual(sha256(s.messages[2]?.data as Uint8Array));
  });

  it("given an event of a schema no upcaster reads, then it keeps its version and the chain goes on through it", () => {
    const s = storyStream();
    s.event();
    const unreadable = s.event(99);
    s.event();
    const result = plan(s.messages, [unreadable]);
    expect(result.added.map((e) => [Number(e.sequence), e.version])).toEqual([[unreadable, 2]]);
    expect(result.version).toBe(3);
    expect(Buffer.from(result.hash)).toEqual(Buffer.from(s.hash));
    expect(result.verdicts.map((v) => v.status)).toEqual(["event", "set-aside", "event"]);
  });

  it("refuses a readable event, a sequence not of the story, and a request that leaves an unreadable message", () => {
    const s = storyStream();
    const readable = s.event();
    const one = s.garbage();
    const two = s.garbage();
    expect(() => plan(s.messages, [readable])).toThrow(/version 1 of story s-1, and readable/);
    expect(() => plan(s.messages, [999])).toThrow(/no stored message at sequence 999/);
    expect(() => plan(s.messages, [one])).toThrow(
      new RegExp(`more messages no reader can read.*${two} \\(`),
    );
    expect(plan(s.messages, [one, two]).added).toHaveLength(2);
  });

  it("passes over what an earlier repair set aside, and only those exact bytes", () => {
    const s = storyStream();
    s.event();
    const bad = s.garbage();
    const entry = create(SetAsideMessageSchema, {
      sequence: BigInt(bad),
      sha256: sha256(s.messages[1]?.data as Uint8Array),
      version: 0,
      problem: "garbage",
    });
    const earlier: SetAsideIndex = new Map([[bad, entry]]);
    const later = s.garbage();
    const result = plan(s.messages, [later], earlier);
    expect(result.entries.map((e) => Number(e.sequence))).toEqual([bad, later]);
    expect(() => plan(s.messages, [bad], earlier)).toThrow(/set aside already/);
    expect(plan(s.messages, [], earlier).verdicts.map((v) => v.status)).toEqual([
      "event",
      "set-aside",
      "unreadable",
    ]);
    // The same sequence with other bytes is not what the repair set aside.
    expect(setAsideEntry(earlier, bad, new Uint8Array([1]))).toBeUndefined();
    expect(setAsideEntry(earlier, bad, s.messages[1]?.data as Uint8Array)).toBe(entry);
  });
});

describe("verifyChain over set-aside events", () => {
  it("accepts a set-aside link only when a later EventsSetAside lists it with its bytes' SHA-256", () => {
    const s = storyStream();
    s.event();
    const unreadable = s.event(99);
    const { added, hash } = plan(s.messages, [unreadable]);
    const entry = added[0] as NonNullable<(typeof added)[0]>;
    const [first] = contextEventUpcaster.decode(
      s.messages[0]?.data as Uint8Array,
      11,
      s.messages[0]?.subject as string,
    ) as [RecordedEvent];
    const placeholder = {
      envelope: create(ContextEventSchema, {
        storyId: story,
        version: 2,
        eventType: "SubtaskAdded",
        prevHash: first.envelope.hash,
        hash,
      }),
      setAside: entry,
    };
    const repairWith = (listed: object) => {
      const schema = ContextEventSchema.field.eventsSetAside.message as DescMessage;
      return envelopeAsWritten(story, 3, hash, {
        eventType: "EventsSetAside",
        schemaVersion: 1,
        payloadSchema: schema,
        payload: create(schema, { reason: "r", setAside: [listed] }),
        occurredAt: at,
      });
    };
    expect(verifyChain([first, placeholder, repairWith(entry)])).toEqual({
      intact: true,
      events: 3,
    });
    expect(verifyChain([first, placeholder])).toMatchObject({ intact: false, version: 2 });
    const otherBytes = { ...entry, sha256: new Uint8Array(32) };
    expect(verifyChain([first, placeholder, repairWith(otherBytes)])).toMatchObject({
      intact: false,
      version: 2,
      reason: expect.stringMatching(/no EventsSetAside after it lists it/),
    });
    // Its envelope alone (no setAside) is an event whose content does not hash: altered.
    expect(verifyChain([first.envelope, placeholder.envelope])).toMatchObject({
      intact: false,
      version: 2,
    });
  });
});
