import { describe, expect, it } from "vitest";
import {
  CheckpointAuditor,
  checkpointSignature,
  type StoredCheckpoint,
  StreamHasher,
  signCheckpoint,
} from "./checkpoints.ts";

const key = { id: "k1", secret: new TextEncoder().encode("a".repeat(40)) };
const keys = new Map([[key.id, key.secret]]);
const messages = Array.from({ length: 6 }, (_, i) => ({
  seq: i + 1,
  subject: `ctx.events.${i % 4}.story-${i % 2}.SubtaskAdded`,
  data: Uint8Array.of(i, i + 1, i + 2),
}));

const hashOf = (ms: readonly (typeof messages)[number][]) => {
  const hasher = new StreamHasher();
  for (const m of ms) hasher.add(m);
  return hasher.state;
};

describe("the stream hash", () => {
  it("commits to every message's bytes, sequence and subject, in order", () => {
    const base = hashOf(messages);
    expect(base).toMatchObject({ sequence: 6, messages: 6 });
    expect(base.hash).toHaveLength(32);
    expect(hashOf(messages).hash).toEqual(base.hash);
    const changed = [
      messages.map((m, i) => (i === 2 ? { ...m, data: Uint8Array.of(9) } : m)),
      messages.map((m, i) => (i === 2 ? { ...m, subject: `${m.subject}x` } : m)),
      messages.map((m, i) => (i === 5 ? { ...m, seq: 7 } : m)),
      [messages[1], messages[0], ...messages.slice(2)] as typeof messages,
    ];
    for (const variant of changed) expect(hashOf(variant).hash).not.toEqual(base.hash);
  });

  it("goes on from a state as if it had hashed from the start", () => {
    const hasher = new StreamHasher(hashOf(messages.slice(0, 3)));
    for (const m of messages.slice(3)) hasher.add(m);
    expect(hasher.state).toEqual(hashOf(messages));
  });
});

describe("checkpoint signatures", () => {
  it("verify with the key that signed, and with no other; any changed field breaks them", () => {
    const checkpoint = signCheckpoint("EVENTS", hashOf(messages), key);
    expect(checkpointSignature(checkpoint, keys)).toBe("valid");
    expect(checkpointSignature(checkpoint, new Map([["k2", key.secret]]))).toBe("unknown-key");
    const other = new Map([[key.id, new TextEncoder().encode("b".repeat(40))]]);
    expect(checkpointSignature(checkpoint, other)).toBe("invalid");
    expect(checkpointSignature({ ...checkpoint, messages: 7n }, keys)).toBe("invalid");
    expect(checkpointSignature({ ...checkpoint, streamHash: new Uint8Array(32) }, keys)).toBe(
      "invalid",
    );
  });
});

describe("CheckpointAuditor", () => {
  const stored = (...cps: ReturnType<typeof signCheckpoint>[]): StoredCheckpoint[] =>
    cps.map((checkpoint, i) => ({ seq: i + 1, checkpoint }));

  it("matches a stream against every checkpoint of it", () => {
    const auditor = new CheckpointAuditor(
      stored(
        signCheckpoint("EVENTS", hashOf(messages.slice(0, 2)), key),
        signCheckpoint("EVENTS", hashOf(messages), key),
      ),
      keys,
    );
    for (const m of messages) auditor.add(m);
    expect(auditor.finish()).toEqual([]);
    expect(auditor.verified).toBe(2);
  });

  it("finds a stream that changed, or lost messages, after a checkpoint, and a forged one", () => {
    const signed = signCheckpoint("EVENTS", hashOf(messages.slice(0, 4)), key);
    const changed = new CheckpointAuditor(stored(signed), keys);
    for (const m of messages.map((m, i) => (i === 1 ? { ...m, data: Uint8Array.of(7) } : m))) {
      changed.add(m);
    }
    expect(changed.finish().map((b) => [b.kind, b.sequence])).toEqual([["checkpoint", 4]]);

    // Message 4 removed: the checkpoint at 4 is compared when message 5 arrives.
    const removed = new CheckpointAuditor(stored(signed), keys);
    for (const m of messages.filter((m) => m.seq !== 4)) removed.add(m);
    expect(removed.finish().map((b) => [b.kind, b.sequence])).toEqual([["checkpoint", 4]]);

    // The stream ends before the checkpoint.
    const cut = new CheckpointAuditor(stored(signed), keys);
    for (const m of messages.slice(0, 3)) cut.add(m);
    expect(cut.finish().map((b) => b.kind)).toEqual(["checkpoint"]);

    const forged = signCheckpoint("EVENTS", hashOf(messages), {
      id: "k1",
      secret: new TextEncoder().encode("c".repeat(40)),
    });
    const unsigned = new CheckpointAuditor(stored(forged), keys);
    for (const m of messages) unsigned.add(m);
    expect(unsigned.finish().map((b) => b.kind)).toEqual(["checkpoint-signature"]);
    // Without keys, the stream is still compared with what the checkpoint says.
    const unchecked = new CheckpointAuditor(stored(forged));
    for (const m of messages) unchecked.add(m);
    expect(unchecked.finish()).toEqual([]);
  });
});
