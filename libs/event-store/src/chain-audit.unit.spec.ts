import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ContextEventData, currentSchemaVersion, eventTypeOf } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import { ContextEventSchema, EventsSetAsideSchema } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import { type AuditedMessage, ChainAuditor, chainFields } from "./chain-audit.ts";
import { encodeWithHash, eventHash } from "./hash-chain.ts";
import { sha256 } from "./sha256.ts";
import { storedEventHash } from "./stored-hash.ts";

const names = { stream: "EVENTS", subjectPrefix: "ctx.events" };
const subject = (story: string, type = "SubtaskAdded") => `ctx.events.3.${story}.${type}`;

/** A story's events as the store writes them, one stream sequence each from `firstSequence`. */
function story(id: string, payloads: readonly ContextEventData[], firstSequence = 1) {
  let prevHash: Uint8Array = new Uint8Array(0);
  return payloads.map((data, i): AuditedMessage => {
    const eventType = eventTypeOf(data);
    const envelope = create(ContextEventSchema, {
      eventId: `${id}-${i + 1}`,
      storyId: id,
      version: i + 1,
      occurredAt: timestampFromDate(new Date(1_700_000_000_000 + i)),
      eventType,
      schemaVersion: currentSchemaVersion[eventType],
      prevHash,
      payload: data,
    });
    const bytes = encodeWithHash(envelope);
    prevHash = new Uint8Array(envelope.hash);
    return { seq: firstSequence + i, subject: subject(id, eventType), data: bytes };
  });
}

const payloads = (n: number): ContextEventData[] => [
  eventData.contextCreated({ title: "A story" }),
  ...Array.from({ length: n - 1 }, (_, i) =>
    eventData.subtaskAdded({ subtaskId: `t${i}`, title: `Subtask ${i}` }),
  ),
];

/** Re-encodes a stored message with a change; `rehash`: its hash made to match again. */
function tamper(
  m: AuditedMessage,
  change: (e: ReturnType<typeof decode>) => void,
  rehash = false,
): AuditedMessage {
  const envelope = decode(m);
  change(envelope);
  if (rehash) envelope.hash = eventHash(envelope);
  return { ...m, data: toBinary(ContextEventSchema, envelope) };
}
const decode = (m: AuditedMessage) => fromBinary(ContextEventSchema, m.data);

function audit(messages: readonly AuditedMessage[]) {
  const auditor = new ChainAuditor(names);
  for (const m of messages) auditor.add(m);
  return auditor
    .finish()
    .map(({ kind, sequence, version, storyId }) => ({ kind, sequence, version, storyId }));
}

describe("the hash of a stored event", () => {
  it("is what the writer computed: the stored bytes without the hash field, after prev_hash", () => {
    for (const m of story("s-1", payloads(5))) {
      const envelope = decode(m);
      expect(storedEventHash(m.data, envelope.prevHash, "s-1")).toEqual(envelope.hash);
      expect(storedEventHash(m.data, envelope.prevHash, "s-1")).toEqual(eventHash(envelope));
    }
  });

  it("reads the chain's fields straight from the wire bytes, as protobuf-es decodes them", () => {
    for (const m of story("s-1", payloads(3))) {
      const envelope = decode(m);
      expect(chainFields(m.data)).toEqual({
        storyId: envelope.storyId,
        version: envelope.version,
        prevHash: envelope.prevHash,
        hash: envelope.hash,
        setAside: [],
      });
    }
    const repair = create(ContextEventSchema, {
      storyId: "s-1",
      version: 4,
      payload: {
        case: "eventsSetAside",
        value: create(EventsSetAsideSchema, {
          setAside: [
            { sequence: 7n, sha256: Uint8Array.of(1, 2), version: 0 },
            { sequence: 9n, sha256: Uint8Array.of(3), version: 2 },
          ],
        }),
      },
    });
    expect(chainFields(toBinary(ContextEventSchema, repair))?.setAside).toEqual([
      { sequence: 7, sha256: Uint8Array.of(1, 2) },
      { sequence: 9, sha256: Uint8Array.of(3) },
    ]);
    // A chain field of another wire type, a story id that is not UTF-8: no envelope.
    expect(chainFields(Uint8Array.of(0x1a, 0x01, 0x00))).toBeUndefined(); // version as bytes
    expect(chainFields(Uint8Array.of(0x12, 0x01, 0xff))).toBeUndefined(); // story id 0xff
  });

  it("takes out the hash field and nothing else; malformed bytes, or the field twice, give none", () => {
    const [m] = story("s-1", payloads(1)) as [AuditedMessage];
    const envelope = decode(m);
    const unhashed = toBinary(ContextEventSchema, { ...envelope, hash: new Uint8Array(0) });
    expect(storedEventHash(m.data, envelope.prevHash, "s-1")).toEqual(
      sha256(envelope.prevHash, unhashed),
    );
    // Without the field, the bytes as they are.
    expect(storedEventHash(unhashed, envelope.prevHash, "s-1")).toEqual(
      sha256(envelope.prevHash, unhashed),
    );
    expect(
      storedEventHash(m.data.subarray(0, m.data.length - 1), envelope.prevHash, "s-1"),
    ).toBeUndefined();
    expect(storedEventHash(Uint8Array.of(0x0b), new Uint8Array(0), "s-1")).toBeUndefined(); // a group
    expect(storedEventHash(Uint8Array.of(0xff), new Uint8Array(0), "s-1")).toBeUndefined();
    const twice = Uint8Array.of(...m.data, 0x62, 32, ...envelope.hash);
    expect(storedEventHash(twice, envelope.prevHash, "s-1")).toBeUndefined();
  });
});

describe("ChainAuditor", () => {
  it("finds no break in intact stories, interleaved in stream order", () => {
    const a = story("a", payloads(4), 1);
    const b = story("b", payloads(3), 10);
    const auditor = new ChainAuditor(names);
    for (const m of [a[0], b[0], a[1], b[1], a[2], b[2], a[3]] as AuditedMessage[]) auditor.add(m);
    expect(auditor.finish()).toEqual([]);
    expect({ messages: auditor.messages, stories: auditor.stories }).toEqual({
      messages: 7,
      stories: 2,
    });
  });

  it("finds an altered payload: the content no longer hashes to its stored hash", () => {
    const s = story("s", payloads(4));
    s[1] = tamper(s[1] as AuditedMessage, (e) => {
      e.payload = eventData.subtaskAdded({ subtaskId: "t0", title: "Rewritten" });
    });
    const [found] = (() => {
      const auditor = new ChainAuditor(names);
      for (const m of s) auditor.add(m);
      return auditor.finish();
    })();
    expect(found).toMatchObject({ kind: "altered", sequence: 2, version: 2, storyId: "s" });
    expect(found?.actual).toBe(Buffer.from(decode(s[1] as AuditedMessage).hash).toString("hex"));
    expect(found?.expected).toMatch(/^[0-9a-f]{64}$/);
    expect(found?.expected).not.toBe(found?.actual);
  });

  it("finds an event changed and hashed again, at the next event, which was written after another", () => {
    const s = story("s", payloads(4));
    s[1] = tamper(
      s[1] as AuditedMessage,
      (e) => {
        e.principal = "jwt:mallory";
      },
      true,
    );
    expect(audit(s)).toEqual([{ kind: "altered", sequence: 3, version: 3, storyId: "s" }]);
  });

  it("finds removed events (a gap in the versions)", () => {
    const s = story("s", payloads(5));
    expect(audit([s[0], s[1], s[4]] as AuditedMessage[])).toEqual([
      { kind: "missing", sequence: 5, version: 5, storyId: "s" },
    ]);
  });

  it("finds an event stored again after later versions, or moved", () => {
    const s = story("s", payloads(4));
    const again = { ...(s[1] as AuditedMessage), seq: 9 };
    expect(audit([...s, again])).toEqual([
      { kind: "reordered", sequence: 9, version: 2, storyId: "s" },
    ]);
    // Versions 2 and 3 swapped in the stream: 3 skips 2, then 2 comes late.
    const swapped = [s[0], s[2], s[1], s[3]].map((m, i) => ({
      ...(m as AuditedMessage),
      seq: i + 1,
    }));
    expect(audit(swapped)).toEqual([
      { kind: "missing", sequence: 2, version: 3, storyId: "s" },
      { kind: "reordered", sequence: 3, version: 2, storyId: "s" },
    ]);
  });

  it("finds another story's event on a story's subject, and bytes that are no envelope", () => {
    const s = story("s", payloads(3));
    const other = story("other", payloads(2));
    const foreign = { ...(other[1] as AuditedMessage), seq: 4, subject: subject("s") };
    const junk = { seq: 5, subject: subject("s"), data: Uint8Array.of(0xff, 0xff) };
    expect(audit([...s, foreign, junk])).toEqual([
      { kind: "foreign-story", sequence: 4, version: 2, storyId: "s" },
      { kind: "unreadable", sequence: 5, version: 0, storyId: "s" },
    ]);
  });

  it("does not count a message an operator set aside, which a later EventsSetAside lists by its bytes", () => {
    const s = story("s", payloads(2));
    const junk = { seq: 3, subject: subject("s"), data: Uint8Array.of(0xff, 0xff) };
    const repair = (digest: Uint8Array) => {
      const previous = decode(s[1] as AuditedMessage);
      const envelope = create(ContextEventSchema, {
        eventId: "s-repair",
        storyId: "s",
        version: 3,
        eventType: "EventsSetAside",
        schemaVersion: 1,
        prevHash: previous.hash,
        payload: {
          case: "eventsSetAside",
          value: create(EventsSetAsideSchema, {
            reason: "junk",
            setAside: [{ sequence: 3n, sha256: digest, version: 0, problem: "not an envelope" }],
          }),
        },
      });
      return { seq: 4, subject: subject("s", "EventsSetAside"), data: encodeWithHash(envelope) };
    };
    expect(audit([...s, junk, repair(sha256(junk.data))])).toEqual([]);
    // An entry whose digest is not of those bytes vouches for nothing.
    expect(audit([...s, junk, repair(sha256(Uint8Array.of(1)))])).toEqual([
      { kind: "unreadable", sequence: 3, version: 0, storyId: "s" },
    ]);
  });
});
